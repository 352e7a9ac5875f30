import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { envSchema } from '../../src/config';
import { ROUTES } from '../../src/http/openapi';
import { exportedMetricNames } from '../support/metric-names';

// The docs' facts that can be checked are: every route in the API doc, every environment variable in
// the configuration doc, every metric in the operations doc, and every doc the README points to.

const read = (file: string) => readFileSync(file, 'utf8');
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('the docs say what the code does', () => {
  it('docs/api.md lists every route the service serves', () => {
    const doc = read('docs/api.md');
    const missing = ROUTES.map(
      (r) => `${r.method.toUpperCase()} ${r.path.replace(/\{(\w+)\}/g, ':$1')}`,
    ).filter((route) => !new RegExp('`' + escape(route) + '[`?\\s]').test(doc));
    expect(missing).toEqual([]);
  });

  it('docs/configuration.md names every environment variable', () => {
    const doc = read('docs/configuration.md');
    expect(Object.keys(envSchema.shape).filter((name) => !doc.includes('`' + name + '`'))).toEqual([]);
  });

  it('docs/operations.md names every metric the service exports', async () => {
    const names = await exportedMetricNames();
    const doc = read('docs/operations.md');
    expect(names.filter((n) => n.startsWith('rollcall_') && !doc.includes(n))).toEqual([]);
  });

  it('every doc the README links to exists, and every doc is linked from it', () => {
    const readme = read('README.md');
    const linked = [...readme.matchAll(/\]\((docs\/[^)#]+)\)/g)].map((m) => m[1]!);
    expect(linked.length).toBeGreaterThan(5);
    for (const file of linked) expect(() => read(file), file).not.toThrow();
    const docs = readdirSync('docs')
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`);
    expect(docs.filter((d) => !linked.includes(d))).toEqual([]);
  });
});
