import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { createDeviceBuses } from '../../src/gateway/device-buses';
import { createLinkMeter } from '../../src/gateway/link-meter';
import { createRoundOpener } from '../../src/gateway/round-opener';
import { createLogger } from '../../src/logger';
import { healthcheck } from '../../src/moth/codec';
import { createRedis, type RedisClient } from '../../src/redis/connection';
import { redisKeys } from '../../src/redis/keys';
import { createRounds } from '../../src/redis/rounds';
import { uniquePrefix } from '../support/database';
import { holdOwnBuses } from '../support/buses';

// A round's HEALTHCHECKs take a while to go out on thousands of buses (seconds, on a loaded machine).
// The robots that did not answer the last round they were asked in (arriving, coming back) are asked
// first: an answering robot has rounds to spare, one waiting to connect has none.

let redis: RedisClient;
let wss: WebSocketServer;
beforeAll(async () => {
  redis = createRedis(inject('redisUrl'), 'producer');
  wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
  wss.on('connection', (ws: WebSocket) => ws.on('error', () => {}));
  await new Promise((r) => wss.once('listening', r));
});
afterAll(async () => {
  redis.disconnect();
  for (const ws of wss.clients) ws.terminate();
  await new Promise<void>((r) => wss.close(() => r()));
});

describe('the order of a round’s HEALTHCHECKs', () => {
  it('asks the robots that did not answer their last round first, then the others', async () => {
    const logger = createLogger('silent');
    const buses = createDeviceBuses({
      shards: 1,
      busPath: (busId) => `/pang/ws/meb?channel=instant&name=device-management&source=base&track=${busId}`,
      sharedBusPath: undefined,
      moth: {
        url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}`,
        frameGapMs: 0,
        pingSeconds: 20,
        logger,
      },
      onFrame: () => true,
      onBus: () => {},
    });
    try {
      const devices = await holdOwnBuses(buses, 40);

      const meter = createLinkMeter({});
      const order: string[] = [];
      const opener = createRoundOpener({
        id: 'gw-test',
        records: { intervalMultiples: async () => new Map() },
        rounds: createRounds(redis, redisKeys(uniquePrefix()), 1),
        buses,
        spreadMs: 50,
        logger,
        broke: () => {},
        asked: (deviceId, round, at) => {
          if (round === 2) order.push(deviceId);
          meter.asked(deviceId, round, at);
        },
        answeredLast: (deviceId) => meter.answeredLast(deviceId),
      });
      await opener.open(healthcheck(1, 2, new Date()));
      // Every other robot answered round 1; the rest (arriving, say) did not.
      const answering = new Set<string>(devices.filter((_, i) => i % 2 === 0).map((d) => d.deviceId));
      meter.answered([...answering].map((deviceId) => ({ deviceId, round: 1, at: performance.now() })));

      await opener.open(healthcheck(2, 2, new Date()));
      expect(order).toHaveLength(devices.length);
      expect(order.slice(0, 20).every((id) => !answering.has(id))).toBe(true);
      expect(order.slice(20).every((id) => answering.has(id))).toBe(true);
    } finally {
      await buses.stop();
    }
  });
});
