// A round's HEALTHCHECKs leave spread over the spread, on the clock: a gateway whose event loop is
// late (busy reading a storm's answers) sends more at each step, so the round still goes out within
// about the spread, not one step per turn of the loop.
import { afterEach, describe, expect, it } from 'vitest';
import { sendSpread, type SpreadTarget } from '../../src/gateway/spread';

const ROBOTS = 400;
const SPREAD_MS = 500;

/** The other work of a busy gateway: every turn of the loop is held this long. */
function holdTheLoop(ms: number): () => void {
  const timer = setInterval(() => {
    const until = performance.now() + ms;
    while (performance.now() < until);
  }, 1);
  return () => clearInterval(timer);
}

async function spreadOver(robots: number): Promise<{ handedAt: number[]; sent: number; failed: number }> {
  const handedAt: number[] = [];
  const targets: SpreadTarget[] = Array.from({ length: robots }, (_, i) => [
    `robot-${i}`,
    () => (i === 3 ? Promise.reject(new Error('session closed')) : Promise.resolve()),
  ]);
  const start = performance.now();
  const { sent, failed } = await sendSpread(targets, Buffer.from('{}'), SPREAD_MS, (_, at) =>
    handedAt.push(at - start),
  );
  return { handedAt, sent, failed };
}

describe('a spread of sends', () => {
  let release = () => {};
  afterEach(() => release());

  it('goes out within about the spread while every turn of the loop is 20 ms late', async () => {
    release = holdTheLoop(20);
    const { handedAt, sent, failed } = await spreadOver(ROBOTS);
    release();
    expect([sent, failed]).toEqual([ROBOTS - 1, 1]);
    // One step per turn of the loop would take 100 turns of 25 ms and more: 2.5 s.
    expect(handedAt.at(-1)).toBeLessThan(SPREAD_MS * 2);
    // Still spread: a step's worth first, the last not before most of the spread has passed.
    expect(handedAt.filter((at) => at === handedAt[0]).length).toBeLessThanOrEqual(ROBOTS / 100);
    expect(handedAt.at(-1)).toBeGreaterThan(SPREAD_MS * 0.8);
  });

  it('catches up a spread far behind over several turns of the loop, never all in one', async () => {
    release = holdTheLoop(100);
    const handedAt: number[] = [];
    const targets: SpreadTarget[] = Array.from({ length: 3000 }, (_, i) => [
      `robot-${i}`,
      () => Promise.resolve(),
    ]);
    const { sent } = await sendSpread(targets, Buffer.from('{}'), 50, (_, at) => handedAt.push(at));
    release();
    expect(sent).toBe(3000);
    const perTurn = new Map<number, number>();
    for (const at of handedAt) perTurn.set(at, (perTurn.get(at) ?? 0) + 1);
    // The whole spread was due after the first hold; it went in turns of at most 1,000.
    expect(Math.max(...perTurn.values())).toBe(1000);
  });

  it('hands each device its payload in order, once, and all at once when there is no spread', async () => {
    const handed: string[] = [];
    const targets: SpreadTarget[] = ['a', undefined, 'b'].map((id) => [id, () => Promise.resolve()]);
    const at = new Set<number>();
    const result = await sendSpread(targets, Buffer.from('{}'), 0, (id, t) => {
      handed.push(id);
      at.add(t);
    });
    expect(result).toEqual({ sent: 3, failed: 0 });
    expect(handed).toEqual(['a', 'b']);
    expect(at.size).toBe(1);
  });
});
