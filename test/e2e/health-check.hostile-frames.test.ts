import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayMetric, startTestSystem, waitFor, type TestSystem } from '../support/system';

let s: TestSystem;
beforeAll(async () => {
  s = await startTestSystem({ intervalSeconds: 1, maxMisses: 2 });
});
afterAll(async () => s.close());

const counter = (result: string) => gatewayMetric(s, 'rollcall_heartbeats_total', { result });

/** The track of a device's own bus. */
const busOf = (d: { reg: { channels: { deviceManagement: string } } }) =>
  new URL(d.reg.channels.deviceManagement, 'ws://x').searchParams.get('track')!;

describe('malformed and hostile frames on the device channel', () => {
  it('are dropped and counted; answering devices stay connected', async () => {
    const healthy = await s.device();
    await s.waitStatus(healthy.id, 'CONNECTED', 5000);
    // Attackers on buses of their own, each sending no faster than Moth relays without loss (one
    // track carries about 250 frames a second): what arrives is what the gateway must survive.
    const attackers = await Promise.all(Array.from({ length: 10 }, () => s.device()));
    for (const a of attackers) a.device.silent = true;
    const attacker = attackers[0]!;
    await waitFor(
      async () =>
        (await Promise.all(attackers.map((a) => s.hub.members('device-management', 'base', busOf(a))))).every(
          (n) => n === 2,
        ),
      5000,
      'attacker buses held',
    );
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
    // Random bytes; JSON of every shape, with wrong types where a heartbeat has fields; and a flood
    // of well-formed heartbeats with tokens nobody holds.
    const samples = fc.sample(fc.uint8Array({ minLength: 0, maxLength: 512 }), 200);
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
    const frames: (string | Buffer)[] = [
      ...hostile,
      ...samples.map((b) => Buffer.from(b)),
      ...shapes.map((v) => Buffer.from(JSON.stringify(v))),
      ...Array.from({ length: 2000 }, (_, i) =>
        Buffer.from(JSON.stringify({ type: 'HEARTBEAT', token: `forged-${i}` })),
      ),
    ];
    for (let i = 0; i < frames.length; i += attackers.length) {
      frames.slice(i, i + attackers.length).forEach((f, k) => attackers[k]!.device.sendRaw(f));
      await new Promise((r) => setTimeout(r, 5));
    }
    // A text frame starting with REXT must not disturb anything either: the hub drops it, as it must
    // (one kind crashes the real server).
    attacker.device.sendRaw('REXT {"op":"crash"}', false);

    await waitFor(
      // Moth may still lose a few when this busy process stalls; nearly all must arrive and be counted.
      async () => (await counter('unknown_token')) - unknownBefore >= 1900,
      10_000,
      'forged tokens counted',
    );
    expect((await counter('malformed')) - malformedBefore).toBeGreaterThanOrEqual(hostile.length - 1);
    // Another two rounds pass and the honest device is still connected; the attacker never connected.
    const sent = healthy.device.heartbeatsSent;
    await waitFor(() => healthy.device.heartbeatsSent >= sent + 2, 5000, 'two more heartbeats');
    expect(await s.status(healthy.id)).toBe('CONNECTED');
    for (const a of attackers) expect(await s.status(a.id)).toBe('DISCONNECTED');
    expect((await s.hub.stats()).extendedDropped).toBe(1);
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
