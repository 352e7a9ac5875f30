// Which bus each robot is heard on is written one statement at a time, with everything that gathered
// meanwhile: a fleet arriving at once would otherwise fire one UPDATE per heartbeat batch, taking the
// pool and the rows from its own connects.
import { describe, expect, it } from 'vitest';
import { createBusMarks } from '../../src/gateway/heartbeat-records';

const settle = () => new Promise((resolve) => setTimeout(resolve, 10));

describe('bus marks', () => {
  it('writes one at a time, gathering the marks that came meanwhile, the last bus heard winning', async () => {
    const writes: { ids: string[]; bus: string }[] = [];
    let inFlight = 0;
    let most = 0;
    let release!: () => void;
    const mark = createBusMarks(async (ids, bus) => {
      writes.push({ ids: [...ids], bus });
      most = Math.max(most, ++inFlight);
      if (writes.length === 1) await new Promise<void>((resolve) => (release = resolve));
      inFlight--;
    });
    mark(['a', 'b'], 'own');
    mark(['c'], 'own');
    mark(['d'], 'shared');
    mark(['e'], 'own');
    // Heard on the shared bus, then on its own before being written: its own.
    mark(['d'], 'own');
    await settle();
    expect(writes).toEqual([{ ids: ['a', 'b'], bus: 'own' }]);
    release();
    await settle();
    expect(writes.slice(1)).toEqual([{ ids: ['c', 'e', 'd'], bus: 'own' }]);
    expect(most).toBe(1);

    mark(['f'], 'shared');
    await settle();
    expect(writes.at(-1)).toEqual({ ids: ['f'], bus: 'shared' });
  });
});
