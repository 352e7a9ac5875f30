// Fails when relative imports form a cycle in src/, jobs/ or workers/.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const roots = ['src', 'jobs', 'workers'];
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

const edges = new Map<string, string[]>();
for (const file of files) {
  const text = readFileSync(file, 'utf8');
  const targets: string[] = [];
  // `import type` is erased at run time and cannot create a load-order cycle.
  for (const m of text.matchAll(/^\s*(?:import|export)\s+(?!type\b)[^'"]*?from\s+'(\.[^']+)'/gm)) {
    const target = resolveImport(file, m[1]!);
    if (target) targets.push(target);
  }
  edges.set(file, targets);
}

const state = new Map<string, 'active' | 'done'>();
const cycles: string[][] = [];
function visit(file: string, stack: string[]) {
  if (state.get(file) === 'done') return;
  if (state.get(file) === 'active') {
    cycles.push([...stack.slice(stack.indexOf(file)), file]);
    return;
  }
  state.set(file, 'active');
  for (const next of edges.get(file) ?? []) visit(next, [...stack, file]);
  state.set(file, 'done');
}
for (const file of files) visit(file, []);

if (cycles.length > 0) {
  for (const c of cycles)
    console.error(`import cycle: ${c.map((f) => relative(process.cwd(), f)).join(' -> ')}`);
  process.exit(1);
}
console.log(`no import cycles among ${files.length} files`);
