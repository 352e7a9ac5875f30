// The connector's slots go to connects only: effects of a connected batch go to their queues behind
// it, in order, while the next batch is already being connected (a fleet arriving at once is
// connected at the pace of Postgres, not of Postgres and Redis in turn).
import { describe, expect, it } from 'vitest';
import type { SessionEffects } from '../../src/domain/effects';
import type { Heard } from '../../src/db/transitions';
import { createConnector } from '../../src/gateway/connector';
import { createLogger } from '../../src/logger';
import { createMetrics } from '../../src/metrics';

/** A promise and the function that settles it. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 10));

function connectorWith(handOff: (sessions: readonly SessionEffects[]) => Promise<void>) {
  const connected: string[][] = [];
  const connector = createConnector({
    connect: async (heard: readonly Heard[]) => {
      connected.push(heard.map((h) => h.deviceId));
      return heard.map((h) => ({ deviceId: h.deviceId, sessionId: `s-${h.deviceId}`, effects: [] }));
    },
    handOff,
    failed: () => {},
    metrics: createMetrics('test', false),
    logger: createLogger('silent'),
    parallel: 1,
  });
  return { connector, connected };
}

describe('the connector', () => {
  it('connects the next batch while the effects of the one before are still being handed off', async () => {
    const first = gate();
    const handedOff: string[][] = [];
    const { connector, connected } = connectorWith(async (sessions) => {
      if (handedOff.length === 0) await first.opened;
      handedOff.push(sessions.map((s) => s.deviceId));
    });
    connector.add([{ deviceId: 'a', round: 1 }]);
    await settle();
    connector.add([{ deviceId: 'b', round: 1 }]);
    await settle();
    // One slot, and the first batch's hand-off still waiting: the second is connected all the same.
    expect(connected).toEqual([['a'], ['b']]);
    expect(handedOff).toEqual([]);

    let idle = false;
    const done = connector.idle().then(() => (idle = true));
    await settle();
    expect(idle).toBe(false);
    first.open();
    await done;
    // In the order they were connected.
    expect(handedOff).toEqual([['a'], ['b']]);
  });

  it('goes on after a hand-off fails (the sweeper takes those effects)', async () => {
    let calls = 0;
    const { connector, connected } = connectorWith(async () => {
      if (calls++ === 0) throw new Error('redis down');
    });
    connector.add([{ deviceId: 'a', round: 1 }]);
    await connector.idle();
    connector.add([{ deviceId: 'b', round: 1 }]);
    await connector.idle();
    expect(connected).toEqual([['a'], ['b']]);
    expect(calls).toBe(2);
  });
});
