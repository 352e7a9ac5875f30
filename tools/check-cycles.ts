// Fails when relative imports form a cycle in src/, jobs/, workers/ or packages/: between files, or between
// folders (src/<folder>, jobs, workers), where a cycle of files can hide.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

// The project to check (a test points it at a fixture).
const base = resolve(process.argv[2] ?? '.');
const roots = ['src', 'jobs', 'workers', 'packages'].map((r) => join(base, r)).filter((r) => existsSync(r));
const files = roots.flatMap(function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : path.endsWith('.ts') ? [resolve(path)] : [];
  });
});
const known = new Set(files);

function resolveImport(from: string, spec: string): string | undefined {
  const base = resolve(dirname(from), spec);
  return [base, `${base}.ts`, join(base, 'index.ts')].find((c) => known.has(c));
}

/** Relative imports of each file; `withTypes` counts `import type` too. */
function importGraph(withTypes: boolean): Map<string, string[]> {
  const pattern = withTypes
    ? /^\s*(?:import|export)\s+[^'"]*?from\s+'(\.[^']+)'/gm
    : /^\s*(?:import|export)\s+(?!type\b)[^'"]*?from\s+'(\.[^']+)'/gm;
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const targets = [...readFileSync(file, 'utf8').matchAll(pattern)].map((m) => resolveImport(file, m[1]!));
    graph.set(
      file,
      targets.filter((t): t is string => t !== undefined),
    );
  }
  return graph;
}
// Between files, `import type` is erased at run time and cannot create a load-order cycle; between
// folders it counts: a folder that needs another's types depends on it.
const edges = importGraph(false);

function cyclesOf(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const state = new Map<string, 'active' | 'done'>();
  const cycles: string[][] = [];
  function visit(node: string, stack: string[]) {
    if (state.get(node) === 'done') return;
    if (state.get(node) === 'active') {
      cycles.push([...stack.slice(stack.indexOf(node)), node]);
      return;
    }
    state.set(node, 'active');
    for (const next of graph.get(node) ?? []) visit(next, [...stack, node]);
    state.set(node, 'done');
  }
  for (const node of graph.keys()) visit(node, []);
  return cycles;
}

/** A file's folder: src/<first folder> (src for files directly in it), jobs or workers. */
function folderOf(file: string): string {
  const [root, sub] = relative(base, file).split(sep);
  return root === 'src' && sub !== undefined && !sub.endsWith('.ts') ? `src/${sub}` : root!;
}
const folders = new Map<string, string[]>();
for (const [file, targets] of importGraph(true)) {
  const from = folderOf(file);
  const next = new Set(folders.get(from));
  for (const t of targets) if (folderOf(t) !== from) next.add(folderOf(t));
  folders.set(from, [...next]);
}

const fileCycles = cyclesOf(edges).map((c) => c.map((f) => relative(base, f)));
const folderCycles = cyclesOf(folders);
for (const c of fileCycles) console.error(`import cycle: ${c.join(' -> ')}`);
for (const c of folderCycles) console.error(`folder import cycle: ${c.join(' -> ')}`);
if (fileCycles.length + folderCycles.length > 0) process.exit(1);
console.log(`no import cycles among ${files.length} files and ${folders.size} folders`);
