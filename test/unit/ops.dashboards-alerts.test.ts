import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportedMetricNames } from '../support/metric-names';

// The shipped Grafana dashboard and Prometheus alert rules: valid for promtool, the rules firing when
// they should (promtool test rules), and every rollcall metric they read one the service exports.

const promtool = spawnSync('promtool', ['--version']).status === 0;
// CI installs Debian's prometheus package (.ci/run); elsewhere the test says what is missing.
const runnable = promtool || Boolean(process.env.CI);
if (!runnable) console.warn('alert rule tests skipped: promtool is missing (apt-get install prometheus)');

const ALERTS = 'ops/prometheus/alerts.yml';
const dashboard = JSON.parse(readFileSync('ops/grafana/rollcall.json', 'utf8')) as {
  panels: { title: string; targets: { expr: string }[] }[];
};
const dashboardExprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));

/** Every metric name the service's roles export, histograms with their series. */
const exported = async () => new Set(await exportedMetricNames({ histogramSeries: true }));

const namesIn = (text: string) => [...new Set(text.match(/\brollcall_[a-z_]+\b/g) ?? [])];

const run = (args: string[], cwd?: string) => {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8' });
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
};

describe('shipped dashboards and alert rules', () => {
  it('read only metrics the service exports', async () => {
    const known = await exported();
    const used = [...namesIn(readFileSync(ALERTS, 'utf8')), ...dashboardExprs.flatMap(namesIn)];
    expect(used.length).toBeGreaterThan(15);
    expect(used.filter((n) => !known.has(n))).toEqual([]);
    // Every metric the service exports is on the dashboard.
    const drawn = new Set(dashboardExprs.flatMap(namesIn).map((n) => n.replace(/_(bucket|sum|count)$/, '')));
    const bases = [...known]
      .map((n) => n.replace(/_(bucket|sum|count)$/, ''))
      .filter((n) => n.startsWith('rollcall_'));
    expect(bases.filter((n) => !drawn.has(n))).toEqual([]);
  });

  it.skipIf(!runnable)(
    'promtool: the rules are valid and fire as their tests say; the dashboard queries parse',
    () => {
      const check = run(['check', 'rules', ALERTS]);
      expect(check.ok, check.output).toBe(true);
      const test = run(['test', 'rules', 'alerts.test.yml'], 'ops/prometheus');
      expect(test.ok, test.output).toBe(true);
      // Each panel query as a recording rule: promtool parses it.
      const dir = mkdtempSync(join(tmpdir(), 'dashboard-'));
      const rules = dashboardExprs.map(
        (expr, i) => `      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(expr)}`,
      );
      writeFileSync(
        join(dir, 'queries.yml'),
        `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`,
      );
      const parsed = run(['check', 'rules', join(dir, 'queries.yml')]);
      expect(parsed.ok, parsed.output).toBe(true);
    },
  );
});
