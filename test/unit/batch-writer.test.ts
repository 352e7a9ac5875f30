// The ingest's batch writer: items gathered into batches, written a few at a time; once too many
// batches wait it is behind (reading stops) until all but one are written, each change told once.
import { describe, expect, it } from 'vitest';
import { createBatchWriter } from '../../src/gateway/batch-writer';
import { createLogger } from '../../src/logger';

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

function writerWith(write: (items: number[]) => Promise<void>, maxBatch = 2) {
  const told: boolean[] = [];
  const writer = createBatchWriter<number>({
    name: 'test batch',
    write,
    maxBatch,
    maxDelayMs: 5,
    onBackpressure: (behind) => told.push(behind),
    logger: createLogger('silent'),
  });
  return { writer, told };
}

describe('the batch writer', () => {
  it('writes full batches at once and the rest after the delay', async () => {
    const batches: number[][] = [];
    const { writer } = writerWith(async (items) => void batches.push(items), 3);
    for (const i of [1, 2, 3, 4]) writer.add(i);
    expect(batches).toEqual([]);
    await new Promise((r) => setTimeout(r, 30));
    expect(batches).toEqual([[1, 2, 3], [4]]);
  });

  it('is behind once more than 32 batches wait, and flowing again once all but one are written', async () => {
    const held = gate();
    let written = 0;
    const { writer, told } = writerWith(async () => {
      await held.opened;
      written++;
    }, 1);
    for (let i = 0; i < 32; i++) writer.add(i);
    expect(writer.mode()).toBe('flowing');
    writer.add(32);
    expect(writer.mode()).toBe('behind');
    for (let i = 33; i < 40; i++) writer.add(i);
    expect(told).toEqual([true]);
    held.open();
    await writer.flush();
    expect(written).toBe(40);
    expect(writer.mode()).toBe('flowing');
    expect(told).toEqual([true, false]);
  });

  it('goes on after a failed write', async () => {
    const batches: number[][] = [];
    const { writer } = writerWith(async (items) => {
      if (items[0] === 1) throw new Error('Redis is away');
      batches.push(items);
    }, 1);
    writer.add(1);
    writer.add(2);
    await writer.flush();
    expect(batches).toEqual([[2]]);
  });

  it('writes nothing while items are still arriving, then all of them', async () => {
    const batches: number[][] = [];
    const arriving = gate();
    let late = true;
    const writer = createBatchWriter<number>({
      name: 'test batch',
      write: async (items) => void batches.push(items),
      maxBatch: 2,
      maxDelayMs: 5,
      arriving: () => (late ? arriving.opened : undefined),
      logger: createLogger('silent'),
    });
    writer.add(1);
    writer.add(2);
    const flushed = writer.flush();
    await new Promise((r) => setTimeout(r, 20));
    expect(batches).toEqual([]);
    writer.add(3);
    late = false;
    arriving.open();
    await flushed;
    expect(batches.flat()).toEqual([1, 2, 3]);
  });
});
