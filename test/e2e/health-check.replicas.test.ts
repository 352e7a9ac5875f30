import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roundsReceived, startTestSystem, waitFor, type TestSystem } from '../support/system';

let s: TestSystem;
beforeAll(async () => {
  s = await startTestSystem({ intervalSeconds: 1, maxMisses: 2, gateways: 2, workers: 3 });
});
afterAll(async () => s.close());

describe('three workers and two gateways', () => {
  it('give one HEALTHCHECK per round and one DEVICE_DISCONNECTED per disconnect', async () => {
    const alive = await Promise.all([s.device(), s.device(), s.device()]);
    const dying = await Promise.all([s.device(), s.device()]);
    for (const d of [...alive, ...dying]) await s.waitStatus(d.id, 'CONNECTED', 5000);
    for (const d of dying) d.device.silent = true;
    for (const d of dying) await s.waitStatus(d.id, 'DISCONNECTED', 8000);
    // Let a few more rounds pass to catch any duplicate decision.
    const watcher = alive[0].device;
    const seen = roundsReceived(watcher).length;
    await waitFor(() => roundsReceived(watcher).length >= seen + 3, 6000, 'three more rounds');

    for (const d of alive) {
      const numbers = roundsReceived(d.device).map((r) => r.round);
      expect(new Set(numbers).size).toBe(numbers.length);
      for (let i = 1; i < numbers.length; i++) expect(numbers[i]).toBe(numbers[i - 1]! + 1);
      expect(await s.status(d.id)).toBe('CONNECTED');
      expect(s.eventsOf(d.id, 'DEVICE_DISCONNECTED')).toHaveLength(0);
    }
    for (const d of dying) {
      const ids = new Set(s.eventsOf(d.id, 'DEVICE_DISCONNECTED').map((e) => e.eventId));
      expect(ids.size).toBe(1);
      expect(await s.db('connection_sessions').where({ device_id: d.id })).toHaveLength(1);
    }
    // Both gateways heard every heartbeat: duplicate ingestion did not create sessions.
    for (const d of alive)
      expect(await s.db('connection_sessions').where({ device_id: d.id })).toHaveLength(1);
  });
});
