import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { closeServer, listen } from '../../src/http/server';
import { SECRET } from '../support/app';
import { startTestSystem, type TestSystem } from '../support/system';

let s: TestSystem;
let server: Server;
let api: string;
beforeAll(async () => {
  s = await startTestSystem({ intervalSeconds: 1, maxMisses: 1, env: { LINK_REPORT_SECONDS: '1' } });
  const bound = await listen(s.app, '127.0.0.1', 0);
  server = bound.server;
  api = `http://127.0.0.1:${bound.port}`;
});
afterAll(async () => {
  await closeServer(server);
  await s.close();
});

function fleet(args: string[]): Promise<{ code: number | null; out: string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'tools/fleet.ts', '--api', api, '--moth', s.config.MOTH_URL, ...args],
    {
      env: { PATH: process.env.PATH, DEVICE_SECRET_KEY: SECRET, ADMIN_TOKEN: s.config.ADMIN_TOKEN },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, out })));
}

describe('fleet simulator CLI', () => {
  it('registers a fleet, answers rounds like robots, lets some go silent, shows live counts and a summary', async () => {
    const tokens = join(mkdtempSync(join(inject('runDir'), 'fleet-')), 'tokens.json');
    const run = await fleet([
      '--devices',
      '6',
      '--silent',
      '2',
      '--silent-after',
      '2',
      '--duration',
      '7',
      '--prefix',
      'sim',
      '--tokens',
      tokens,
    ]);
    expect(run.code).toBe(0);
    expect(run.out).toMatch(/devices 6 \| answering \d/);
    expect(run.out).toMatch(/server: \d+ connected, \d+ disconnected/);
    expect(run.out).toContain('summary');
    expect(run.out).toContain('healthy 4, silent 2, flapping 0, slow 0');
    const saved = JSON.parse(readFileSync(tokens, 'utf8')) as { id: string; token: string }[];
    expect(saved).toHaveLength(6);
    const statuses = await Promise.all(saved.map((d) => s.status(d.id)));
    expect(statuses.filter((x) => x === 'DISCONNECTED')).toHaveLength(2);
    // Reusing the saved tokens registers nothing new.
    const before = (await s.db('devices').count<{ n: string }[]>('* as n'))[0]!.n;
    const again = await fleet(['--devices', '6', '--duration', '2', '--tokens', tokens]);
    expect(again.code).toBe(0);
    expect((await s.db('devices').count<{ n: string }[]>('* as n'))[0]!.n).toBe(before);
  }, 40_000);

  it('speaks protocol v2, puts robots in groups and says goodbye: its robots live on proofs, one leaves on purpose', async () => {
    const tokens = join(mkdtempSync(join(inject('runDir'), 'fleet-')), 'tokens.json');
    const run = await fleet([
      '--devices',
      '3',
      '--protocol',
      'v2',
      '--goodbye',
      '1',
      '--silent-after',
      '3',
      '--duration',
      '5',
      '--groups',
      'sim-a,sim-b',
      '--prefix',
      'v2sim',
      '--tokens',
      tokens,
    ]);
    expect(run.code).toBe(0);
    const saved = JSON.parse(readFileSync(tokens, 'utf8')) as { id: string }[];
    // Connected on proofs (the run is over: they may be disconnected again by now).
    const rows = await s
      .db('devices')
      .whereIn(
        'id',
        saved.map((d) => d.id),
      )
      .select<{ connected_at: Date | null; proofs_since: Date | null; group_name: string }[]>(
        'connected_at',
        'proofs_since',
        'group_name',
      );
    expect(rows).toHaveLength(3);
    expect(rows.map((r) => r.group_name).sort()).toEqual(['sim-a', 'sim-a', 'sim-b']);
    for (const r of rows) {
      expect(r.connected_at).not.toBeNull();
      expect(r.proofs_since).not.toBeNull();
    }
    // One of them said goodbye (with a goodbye proof) after 3 s: a planned end, not a failure.
    const planned = await s
      .db('connection_sessions')
      .whereIn(
        'device_id',
        saved.map((d) => d.id),
      )
      .where({ end_reason: 'PLANNED' })
      .pluck('device_id');
    expect(planned).toHaveLength(1);
    expect(run.out).toContain('goodbye 1');
  }, 30_000);

  it('simulates slow and lossy links: the service measures them as told', async () => {
    const tokens = join(mkdtempSync(join(inject('runDir'), 'fleet-')), 'tokens.json');
    const run = await fleet(
      [
        '--devices',
        '3',
        '--latency',
        '1:300',
        '--loss',
        '1:0.4',
        '--duration',
        '14',
        '--prefix',
        'linksim',
      ].concat(['--tokens', tokens]),
    );
    expect(run.code).toBe(0);
    expect(run.out).toContain('latency +300 ms 1, loss 0.4 1');
    const [latent, lossy, healthy] = (JSON.parse(readFileSync(tokens, 'utf8')) as { id: string }[]).map(
      (d) => d.id,
    );
    const links = await s
      .db('device_links')
      .select<{ device_id: string; p50_ms: number; miss_share: number; answered: number }[]>();
    const link = (id: string) => links.find((l) => l.device_id === id)!;
    expect(link(latent!).p50_ms).toBeGreaterThanOrEqual(300);
    expect(link(latent!).miss_share).toBe(0);
    expect(link(healthy!).p50_ms).toBeLessThan(100);
    expect(link(healthy!).miss_share).toBe(0);
    // Two rounds in five unanswered, never two in a row: lossy, yet never disconnected for it.
    expect(link(lossy!).answered).toBeGreaterThanOrEqual(5);
    expect(link(lossy!).miss_share).toBeGreaterThan(0.25);
    expect(link(lossy!).miss_share).toBeLessThan(0.55);
    const failures = await s
      .db('connection_sessions')
      .where({ device_id: lossy!, end_reason: 'MISSED_HEARTBEATS' });
    expect(failures).toEqual([]);
  }, 40_000);

  it('refuses bad options with the usage', async () => {
    const run = await fleet(['--devices', '2', '--silent', '3']);
    expect(run.code).toBe(2);
    expect(run.out).toContain('usage: npm run fleet');
  });
});
