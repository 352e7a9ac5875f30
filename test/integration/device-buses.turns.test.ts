import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { newToken } from '../../src/domain/credentials';
import { createDeviceBuses } from '../../src/gateway/device-buses';
import { createLogger } from '../../src/logger';
import { holdOwnBuses } from '../support/buses';
import { waitFor } from '../support/system';

// Thousands of robots on buses of their own can all be readable at once. A turn of the event loop
// must still end soon (lease renewals, rounds and the ops endpoint run between turns), and every bus
// must get its turn at reading.

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** A Moth relaying a babbling robot on every bus: each socket gets the same frame as fast as it drains. */
async function floodingMoth(frame: Buffer): Promise<string> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
  wss.on('connection', (ws: WebSocket) => {
    ws.on('error', () => {});
    // A burst at a time, so one socket does not keep this loop for itself.
    const pump = () => {
      if (ws.readyState !== ws.OPEN) return;
      if (ws.bufferedAmount < 16 * 1024) for (let k = 0; k < 64; k++) ws.send(frame, { binary: true });
      setTimeout(pump, 1);
    };
    pump();
  });
  await new Promise((r) => wss.once('listening', r));
  cleanup.push(() => {
    for (const ws of wss.clients) ws.terminate();
    return new Promise<void>((r) => wss.close(() => r()));
  });
  return `ws://127.0.0.1:${(wss.address() as { port: number }).port}`;
}

describe('device buses: reading thousands of busy sessions', () => {
  it(
    'a turn takes no more than its share of frames, and every bus is read in turn',
    { timeout: 60_000 },
    async () => {
      const frame = Buffer.from(JSON.stringify({ type: 'HEARTBEAT', token: newToken() }));
      const url = await floodingMoth(frame);
      const budget = 2000;
      const heard = new Map<string, number>();
      let turnFrames = 0;
      let taken = 0;
      const buses = createDeviceBuses({
        shards: 1,
        busPath: (busId) => `/pang/ws/meb?channel=instant&name=device-management&source=base&track=${busId}`,
        sharedBusPath: undefined,
        moth: { url, frameGapMs: 0, pingSeconds: 20, logger: createLogger('silent') },
        // As the ingestion answers: false once this turn has taken its share.
        onFrame: (_data, deviceId) => {
          heard.set(deviceId!, (heard.get(deviceId!) ?? 0) + 1);
          if (taken++ === 0) setImmediate(() => (taken = 0));
          turnFrames++;
          return taken <= budget;
        },
        onBus: () => {},
      });
      cleanup.push(() => buses.stop());
      const devices = await holdOwnBuses(buses, 100);

      // Frames handled between two checks of the event loop, until every bus has been read three times
      // more: a bus left out of the turns would never be.
      let most = 0;
      let running = true;
      const check = () => {
        most = Math.max(most, turnFrames);
        turnFrames = 0;
        if (running) setImmediate(check);
      };
      await waitFor(() => heard.size === devices.length, 10_000, 'every bus heard');
      heard.clear();
      turnFrames = 0;
      setImmediate(check);
      const reads = (d: { deviceId: string }) => (heard.get(d.deviceId) ?? 0) / oneRead;
      const oneRead = Math.ceil((64 * 1024) / frame.length);
      await waitFor(() => devices.every((d) => reads(d) >= 3), 25_000, 'every bus read three times more');
      running = false;

      // Its share, and beyond it at most the rest of the read being parsed when the share ran out (64
      // KiB of frames), once in the checks after a poll for I/O and once in the poll.
      expect(most).toBeGreaterThan(budget / 2);
      expect(most).toBeLessThanOrEqual(budget + 2 * oneRead);
      // None far more often than the others.
      const counts = devices.map((d) => heard.get(d.deviceId) ?? 0);
      expect(Math.max(...counts)).toBeLessThan(3 * Math.min(...counts));
    },
  );
});
