// Import rules `npm run lint` enforces with dependency-cruiser: no cycle between files (type-only
// imports count: a cycle of types still makes two modules one), and the layers below, each importing
// only the ones before it, so no two folders can depend on each other either.

/** From the bottom: a layer imports only those listed before it (and itself). */
const LAYERS = [
  'src/domain', // the rules, pure: imports nothing of ours
  'src/config',
  'src/logger',
  'src/metrics',
  'src/integrations', // TGDM and Mantis over HTTP
  'src/moth', // the Moth protocol and the embedded hub
  'src/db',
  'src/redis',
  'src/settings-service',
  'src/streams',
  'src/bootstrap',
  'src/dev',
  'src/queues',
  'src/operations', // one business operation each, owning its transaction
  'src/effects',
  'src/gateway',
  'src/http',
  'jobs', // BullMQ processors, over the operations
  'workers', // the roles' wiring: the only place that imports jobs/
];
const pathOf = (layers) => `^(${layers.join('|')})(/|\\.ts$)`;

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A cycle, even of types only, makes two modules one: neither can be read or changed alone.',
      from: {},
      to: { circular: true },
    },
    ...LAYERS.slice(0, -1).map((layer, i) => ({
      name: `layers: ${layer}`,
      severity: 'error',
      comment: `${layer} imports only the layers below it (.dependency-cruiser.cjs)`,
      from: { path: pathOf([layer]) },
      to: { path: pathOf(LAYERS.slice(i + 1)) },
    })),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
