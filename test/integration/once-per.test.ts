import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createRedis } from '../../src/redis/connection';
import { createOncePer } from '../../src/redis/rate-limit';

// Once per window per id, across processes: two gateways hearing the same refused robot tell it once.

const gatewayA = createRedis(inject('redisUrl'), 'worker');
const gatewayB = createRedis(inject('redisUrl'), 'worker');
afterAll(async () => {
  gatewayA.disconnect();
  gatewayB.disconnect();
});

describe('once per window, whichever process asks first', () => {
  it('one of two processes may act; again once the window has passed', async () => {
    const prefix = `once-${randomUUID()}`;
    const keyOf = (id: string) => `${prefix}:${id}`;
    const [a, b] = [createOncePer(gatewayA, keyOf, 300), createOncePer(gatewayB, keyOf, 300)];
    const first = await Promise.all([a('robot-1'), b('robot-1')]);
    expect(first.filter(Boolean)).toHaveLength(1);
    expect(await b('robot-2')).toBe(true);
    expect(await a('robot-1')).toBe(false);
    await new Promise((r) => setTimeout(r, 350));
    expect(await b('robot-1')).toBe(true);
  });
});
