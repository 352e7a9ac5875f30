import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger';
import { createLoop } from '../../src/streams/loop';

const logger = createLogger('silent', 'test');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a loop that gathers', () => {
  it('takes what wakes it every 2 ms in a pass per 50 ms, the first after a quiet spell at once', async () => {
    const starts: number[] = [];
    let more = false;
    const loop = createLoop({
      name: 'test',
      pollMs: 60_000,
      gatherMs: 50,
      logger,
      pass: async () => {
        starts.push(Date.now());
        return more;
      },
    });
    loop.start();
    await sleep(200);
    // A quiet spell is over: the first wake runs a pass at once.
    const woken = Date.now();
    loop.wake();
    await sleep(45);
    expect(starts).toHaveLength(2);
    expect(starts[1]! - woken).toBeLessThan(40);
    // Wakes every 2 ms for 300 ms (longer on a loaded machine): a pass at most every 50 ms.
    const waking = Date.now();
    for (let i = 0; i < 150; i++) {
      loop.wake();
      await sleep(2);
    }
    await sleep(60);
    const during = starts.slice(1);
    expect(during.length).toBeGreaterThanOrEqual(2);
    expect(during.length).toBeLessThanOrEqual(Math.floor((Date.now() - waking) / 50) + 2);
    for (let i = 1; i < during.length; i++) expect(during[i]! - during[i - 1]!).toBeGreaterThanOrEqual(48);
    // A pass that left more work waiting is followed at once.
    more = true;
    loop.wake();
    await sleep(150);
    more = false;
    expect(starts.length - 1 - during.length).toBeGreaterThan(6);
    await loop.stop();
  });
});
