import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roundsReceived, startTestSystem, waitFor, type TestSystem } from '../support/system';

// interval 1 s, max misses 2: a silent device is disconnected at the close of its 3rd missed round.
let s: TestSystem;
beforeAll(async () => {
  s = await startTestSystem({ intervalSeconds: 1, maxMisses: 2 });
});
afterAll(async () => s.close());

describe('health-check rounds', () => {
  it('broadcasts one HEALTHCHECK per round with its number, interval and time', async () => {
    const { device } = await s.device();
    await waitFor(() => roundsReceived(device).length >= 3, 10_000, 'three rounds');
    const rounds = roundsReceived(device);
    for (let i = 1; i < rounds.length; i++) expect(rounds[i]!.round).toBe(rounds[i - 1]!.round + 1);
    for (const r of rounds) {
      expect(r.intervalSeconds).toBe(1);
      expect(Number.isNaN(Date.parse(r.issuedAt))).toBe(false);
    }
    const gaps = rounds.slice(1).map((r, i) => Date.parse(r.issuedAt) - Date.parse(rounds[i]!.issuedAt));
    for (const g of gaps) {
      expect(g).toBeGreaterThan(700);
      expect(g).toBeLessThan(1600);
    }
  });

  it('connects a device within one round of its first heartbeat, publishing DEVICE_CONNECTED', async () => {
    const { device, id } = await s.device();
    await waitFor(() => device.heartbeatsSent >= 1, 5000, 'first heartbeat');
    const firstAt = device.lastHeartbeatAt!;
    await s.waitStatus(id, 'CONNECTED', 1500);
    await waitFor(() => s.eventsOf(id, 'DEVICE_CONNECTED').length === 1, 3000, 'DEVICE_CONNECTED');
    const res = await request(s.callback).get(`/devices/${id}`).set(s.admin);
    const body = res.body as { status: string; lastHeartbeatAt: string; currentSessionId: string };
    expect(body.status).toBe('CONNECTED');
    expect(Date.parse(body.lastHeartbeatAt)).toBeGreaterThanOrEqual(firstAt - 1000);
    expect(body.currentSessionId).toBe(s.eventsOf(id, 'DEVICE_CONNECTED')[0]!.sessionId);
  });

  it('disconnects a silent device at the close of miss max+1, never a round earlier, then reconnects it', async () => {
    const { device, id } = await s.device();
    await s.waitStatus(id, 'CONNECTED', 5000);
    await waitFor(() => roundsReceived(device).length >= 2, 5000, 'rounds');
    // Go silent right after answering round r.
    const r = roundsReceived(device).at(-1)!.round;
    await waitFor(() => device.heartbeatsSent > 0 && device.received.length > 0, 1000, 'answered');
    await new Promise((res) => setTimeout(res, 300));
    device.silent = true;
    const lastHeartbeat = device.lastHeartbeatAt!;

    // Still connected through rounds r+1 .. r+3 being issued (misses 1..3 not yet closed).
    await waitFor(() => roundsReceived(device).some((x) => x.round === r + 3), 6000, `round ${r + 3}`);
    expect(await s.status(id)).toBe('CONNECTED');
    // Disconnected at the close of round r+3 (when r+4 is issued).
    await waitFor(() => roundsReceived(device).some((x) => x.round === r + 4), 3000, `round ${r + 4}`);
    await s.waitStatus(id, 'DISCONNECTED', 1500);
    const issued4 = Date.parse(roundsReceived(device).find((x) => x.round === r + 4)!.issuedAt);

    await waitFor(() => s.eventsOf(id, 'DEVICE_DISCONNECTED').length === 1, 3000, 'DEVICE_DISCONNECTED');
    const event = s.eventsOf(id, 'DEVICE_DISCONNECTED')[0]!;
    expect(event).toMatchObject({ reason: 'MISSED_HEARTBEATS', missedRounds: 3 });
    const decidedAt = Date.parse(event.occurredAt as string);
    expect(decidedAt).toBeGreaterThanOrEqual(issued4 - 50);
    // Detection bound: between (max+1) and (max+2) intervals (+ evaluation latency) after the last heartbeat.
    expect(decidedAt - lastHeartbeat).toBeGreaterThanOrEqual(3 * 1000 - 300);
    expect(decidedAt - lastHeartbeat).toBeLessThanOrEqual(4 * 1000 + 500);

    const sessions = await request(s.callback).get(`/devices/${id}/sessions`).set(s.admin);
    expect((sessions.body as { sessions: unknown[] }).sessions[0]).toMatchObject({
      endReason: 'MISSED_HEARTBEATS',
      roundsMissed: 3,
      lastRoundHeard: r,
    });

    // It comes back: a new session and a new DEVICE_CONNECTED.
    device.silent = false;
    await s.waitStatus(id, 'CONNECTED', 3000);
    await waitFor(() => s.eventsOf(id, 'DEVICE_CONNECTED').length === 2, 3000, 'second DEVICE_CONNECTED');
    const after = (await request(s.callback).get(`/devices/${id}/sessions`).set(s.admin)).body as {
      sessions: { id: string; endedAt: string | null }[];
    };
    expect(after.sessions).toHaveLength(2);
    expect(after.sessions[0]!.endedAt).toBeNull();
    expect(after.sessions[0]!.id).not.toBe(after.sessions[1]!.id);
    // The client channel saw this device's events once each, in the order they happened.
    expect(s.eventsOf(id).map((e) => e.type)).toEqual([
      'DEVICE_REGISTERED',
      'DEVICE_CONNECTED',
      'DEVICE_DISCONNECTED',
      'DEVICE_CONNECTED',
    ]);
    expect(new Set(s.eventsOf(id).map((e) => e.eventId)).size).toBe(4);
  });

  it('accepts heartbeats as text frames and with a round echo; a stale echo does not count', async () => {
    const text = await s.device({ textFrames: true });
    const echo = await s.device({ echoRound: true });
    await s.waitStatus(text.id, 'CONNECTED', 5000);
    await s.waitStatus(echo.id, 'CONNECTED', 5000);
    const stale = await s.device();
    stale.device.silent = true;
    await waitFor(() => roundsReceived(stale.device).length >= 2, 5000, 'rounds');
    stale.device.heartbeat(); // a plain one connects it
    await s.waitStatus(stale.id, 'CONNECTED', 3000);
    // From now on it only echoes an old round: those heartbeats must not keep it alive.
    const old = roundsReceived(stale.device)[0]!.round;
    const timer = setInterval(
      () => stale.device.sendRaw(JSON.stringify({ type: 'HEARTBEAT', token: stale.reg.token, round: old })),
      300,
    );
    try {
      await s.waitStatus(stale.id, 'DISCONNECTED', 8000);
    } finally {
      clearInterval(timer);
    }
    expect(await s.status(text.id)).toBe('CONNECTED');
    expect(await s.status(echo.id)).toBe('CONNECTED');
    const metrics =
      await s.gateways[0]!.metrics.registry.getSingleMetricAsString('rollcall_heartbeats_total');
    expect(metrics).toMatch(/result="stale"[^\n]* [1-9]/);
  });

  it('deleting a connected device ends its session with reason DELETED', async () => {
    const { id } = await s.device();
    await s.waitStatus(id, 'CONNECTED', 5000);
    expect((await request(s.callback).delete(`/devices/${id}`).set(s.admin)).status).toBe(204);
    const session = (await s.db('connection_sessions').where({ device_id: id }).first()) as {
      end_reason: string;
    };
    expect(session.end_reason).toBe('DELETED');
    await waitFor(() => s.eventsOf(id, 'DEVICE_DELETED').length === 1, 3000, 'DEVICE_DELETED');
    expect(s.eventsOf(id, 'DEVICE_DISCONNECTED')[0]).toMatchObject({ reason: 'DELETED' });
    const effects = (await s.db('effects').where({ device_id: id }).pluck('kind')) as string[];
    expect(effects.sort()).toEqual(['abort-task', 'stop-analysis-streams', 'stop-recording']);
  });
});
