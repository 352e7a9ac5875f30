import { parentPort, workerData } from 'node:worker_threads';
import { MothHub, type HubOptions } from './hub';

// The thread behind ThreadedMothHub: one hub, driven by messages.
const hub = new MothHub(workerData as HubOptions);
parentPort!.on('message', (req: { id: number; op: string; args?: unknown[] }) => {
  const args = (req.args ?? []) as [string, string, string];
  const run = async (): Promise<unknown> => {
    switch (req.op) {
      case 'start':
        return { url: await hub.start(), port: hub.port };
      case 'stop':
        await hub.stop();
        return null;
      case 'stats':
        return { ...hub.stats };
      case 'members':
        return hub.members(...args);
      default:
        throw new Error(`unknown op ${req.op}`);
    }
  };
  run().then(
    (value) => parentPort!.postMessage({ id: req.id, ok: true, value }),
    (err: Error) => parentPort!.postMessage({ id: req.id, ok: false, error: err.message }),
  );
});
