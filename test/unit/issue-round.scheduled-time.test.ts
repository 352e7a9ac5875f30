import { describe, expect, it } from 'vitest';
import { scheduledTime } from '../../jobs/issue-round';

describe('scheduledTime', () => {
  it('reads the tick time BullMQ puts at the end of a scheduler job id', () => {
    expect(scheduledTime({ id: 'repeat:health-check-rounds:1795580878506', timestamp: 1, delay: 0 })).toBe(
      1795580878506,
    );
  });
  it('falls back to timestamp + delay', () => {
    expect(scheduledTime({ id: 'manual', timestamp: 1000, delay: 50 })).toBe(1050);
  });
});
