import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestSystem, waitFor, type TestSystem } from '../support/system';

let s: TestSystem;
beforeAll(async () => {
  s = await startTestSystem({ intervalSeconds: 1, maxMisses: 2 });
});
afterAll(async () => s.close());

const counter = async (result: string) => {
  const m = await s.gateways[0]!.metrics.registry.getSingleMetric('rollcall_heartbeats_total')!.get();
  return m.values.find((v) => v.labels.result === result)?.value ?? 0;
};

describe('malformed and hostile frames on the device channel', () => {
  it('are dropped and counted; answering devices stay connected', async () => {
    const healthy = await s.device();
    await s.waitStatus(healthy.id, 'CONNECTED', 5000);
    const attacker = await s.device();
    attacker.device.silent = true;
    const malformedBefore = await counter('malformed');
    const unknownBefore = await counter('unknown_token');
    const heapBefore = process.memoryUsage().heapUsed;

    const hostile: (string | Buffer)[] = [
      'not json',
      '',
      '[]',
      'null',
      '{"type":"HEARTBEAT"}',
      '{"type":"HEARTBEAT","token":42}',
      '{"type":"HEARTBEAT","token":""}',
      `{"type":"HEARTBEAT","token":"${'x'.repeat(600)}"}`,
      '{"type":"HEARTBEAT","token":"nope","round":-1}',
      '{"type":"HEARTBEAT","token":"nope","round":"7"}',
      '{"type":7}',
      `${'['.repeat(5000)}${']'.repeat(5000)}`,
      Buffer.alloc(200_000, 0x7b),
      Buffer.from([0xff, 0xfe, 0x00, 0x01]),
    ];
    for (const frame of hostile) {
      attacker.device.sendRaw(frame);
      await new Promise((r) => setTimeout(r, 3));
    }
    // Random bytes; JSON of every shape, with wrong types where a heartbeat has fields; and a flood
    // of well-formed heartbeats with tokens nobody holds.
    const samples = fc.sample(fc.uint8Array({ minLength: 0, maxLength: 512 }), 200);
    for (const bytes of samples) attacker.device.sendRaw(Buffer.from(bytes));
    const shapes = fc.sample(
      fc.oneof(
        fc.jsonValue({ maxDepth: 4 }),
        fc.record(
          {
            type: fc.oneof(fc.constant('HEARTBEAT'), fc.jsonValue({ maxDepth: 2 })),
            token: fc.jsonValue({ maxDepth: 2 }),
            round: fc.jsonValue({ maxDepth: 2 }),
          },
          { requiredKeys: [] },
        ),
      ),
      300,
    );
    for (const v of shapes) attacker.device.sendRaw(Buffer.from(JSON.stringify(v)));
    for (let i = 0; i < 2000; i++)
      attacker.device.sendRaw(JSON.stringify({ type: 'HEARTBEAT', token: `forged-${i}` }));
    // A text frame starting with REXT must not disturb anything either.
    attacker.device.sendRaw('REXT {"op":"crash"}', false);

    await waitFor(
      async () => (await counter('unknown_token')) - unknownBefore >= 2000,
      10_000,
      'forged tokens counted',
    );
    expect((await counter('malformed')) - malformedBefore).toBeGreaterThanOrEqual(hostile.length - 1);
    // Another two rounds pass and the honest device is still connected; the attacker never connected.
    const sent = healthy.device.heartbeatsSent;
    await waitFor(() => healthy.device.heartbeatsSent >= sent + 2, 5000, 'two more heartbeats');
    expect(await s.status(healthy.id)).toBe('CONNECTED');
    expect(await s.status(attacker.id)).toBe('DISCONNECTED');
    expect(s.gateways[0]!.clientChannel.isOpen).toBe(true);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(200 * 1024 * 1024);
  });

  it('a rotated token stops counting at once', async () => {
    const d = await s.device();
    await s.waitStatus(d.id, 'CONNECTED', 5000);
    const { default: request } = await import('supertest');
    const res = await request(s.callback).post(`/devices/${d.id}/token`).set(s.admin);
    expect(res.status).toBe(200);
    // The device keeps answering with the old token: it must be disconnected like a silent one.
    await s.waitStatus(d.id, 'DISCONNECTED', 8000);
  });
});
