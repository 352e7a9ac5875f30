// The ingest's memory of the round open now: one round only, so a revoked token that misses its
// revocation notice still records nothing past the round.
import { describe, expect, it } from 'vitest';
import { createRoundMemory } from '../../src/gateway/round-memory';

const decoded = (frame: Buffer) => ({ frame, tokenHash: 'h', round: undefined, proven: false });

describe("the round's memory", () => {
  it('holds one round: turning to another forgets every device', () => {
    const memory = createRoundMemory<{ deviceId: string | undefined }>();
    memory.turnTo(7);
    memory.record('a', 7, 'h');
    memory.hold('b', { deviceId: 'b' });
    memory.keepFrame('a', decoded(Buffer.from('x')));
    memory.turnTo(7);
    expect(memory.recorded('a')).toBe('h');
    memory.turnTo(8);
    expect([memory.recorded('a'), memory.pending('b'), memory.lastFrame('a')]).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
  });

  it('keeps a credential only for the round it remembers', () => {
    const memory = createRoundMemory<{ deviceId: string | undefined }>();
    memory.turnTo(8);
    memory.record('a', 7, 'h');
    expect(memory.recorded('a')).toBeUndefined();
  });

  it('lets a settled heartbeat go only when it is the one held', () => {
    const memory = createRoundMemory<{ deviceId: string | undefined }>();
    const first = { deviceId: 'a' };
    const second = { deviceId: 'a' };
    memory.hold('a', second);
    memory.settle([first]);
    expect(memory.pending('a')).toBe(second);
    memory.settle([second]);
    expect(memory.pending('a')).toBeUndefined();
  });

  it('keeps a copy of the frame, and forgets it on goodbye but not on revocation', () => {
    const memory = createRoundMemory<{ deviceId: string | undefined }>();
    const read = Buffer.from('heartbeat');
    memory.keepFrame('a', decoded(read));
    read.fill(0);
    expect(memory.lastFrame('a')!.frame.toString()).toBe('heartbeat');
    memory.record('a', 0, 'h');
    memory.revoked('a');
    expect(memory.recorded('a')).toBeUndefined();
    expect(memory.lastFrame('a')).toBeDefined();
    memory.forgetDevice('a');
    expect(memory.lastFrame('a')).toBeUndefined();
  });
});
