import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger';
import { createLoop } from '../../src/streams/loop';

const logger = createLogger('silent', 'test');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a loop backing off from failures', () => {
  it('waits out its backoff when woken, and runs at once when told what failed is back', async () => {
    let down = true;
    let passes = 0;
    const loop = createLoop({
      name: 'test',
      pollMs: 100,
      maxBackoffMs: 60_000,
      logger,
      pass: async () => {
        passes++;
        if (down) throw new Error('down');
        return false;
      },
    });
    loop.start();
    // Failures 1..5 at 0, 0.2, 0.6, 1.4 and 3.0 s (backoffs doubling from 0.2 s); the next at 6.2 s.
    await sleep(3600);
    const failed = passes;
    expect(failed).toBe(5);
    down = false;
    loop.wake();
    await sleep(300);
    expect(passes).toBe(failed);
    loop.retryNow();
    await sleep(50);
    expect(passes).toBe(failed + 1);
    await loop.stop();
  });
});
