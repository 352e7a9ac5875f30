/** The step of a spread: a batch leaves at most this often. */
const STEP_MS = 5;
/**
 * Sends in one turn of the event loop at most: a spread that fell far behind catches up over a few
 * turns, with what the sockets brought read between them (the robots' commands, their answers).
 * Each turn between is long when a fleet arrives (0.1-0.4 s: its answers, token lookups, connects):
 * in the bench's storm (9,900 robots), when the round came after the sockets had opened, it took
 * 2.1-3.1 s to go out with 500 a turn (10 runs), 1.8-2.2 s with 1,000 (3), 0.6-1.2 s with 2,000 (2),
 * which made a robot's TASK_ABORTED later (p99 1.2-1.5 s in 3 runs, 0.6-1.9 s with 1,000 in 7).
 */
const MOST_PER_TURN = 1000;

/** Where a payload goes: a device's own bus (its id), or the shared bus (undefined). */
export type SpreadTarget = readonly [deviceId: string | undefined, send: (payload: Buffer) => Promise<void>];

/**
 * Sends one payload to each target, spread evenly over `spreadMs` so no burst leaves at once, and
 * on the clock: each step sends every target whose time has come, so a step that runs late (a
 * gateway busy reading a storm's answers) sends more; one far behind catches up over as many turns
 * of the event loop as MOST_PER_TURN asks, without waiting for the next step. Counted in steps of
 * the event loop instead, a round took 1.4-4 s to go out on 9,900 buses during a storm, not 0.5 s,
 * and the last robots in its order got their HEALTHCHECK seconds late. `handed` is told each
 * device's own bus, with when its payload was handed over.
 */
export async function sendSpread(
  targets: readonly SpreadTarget[],
  payload: Buffer,
  spreadMs: number,
  handed: (deviceId: string, at: number) => void,
): Promise<{ sent: number; failed: number }> {
  let sent = 0;
  let failed = 0;
  const pending: Promise<void>[] = [];
  const start = performance.now();
  /** How many targets are due by now: a step's worth ahead, so the first step sends at once. */
  const dueBy = (now: number) =>
    spreadMs <= 0 ? targets.length : Math.floor((targets.length * (now - start + STEP_MS)) / spreadMs);
  const nextTurn = () => new Promise((r) => setImmediate(r));
  const nextStep = () => new Promise((r) => setTimeout(r, STEP_MS));
  for (let i = 0; i < targets.length;) {
    if (i > 0) await (dueBy(performance.now()) > i ? nextTurn() : nextStep());
    const at = performance.now();
    const end = Math.min(targets.length, Math.max(i + 1, dueBy(at)), i + MOST_PER_TURN);
    for (; i < end; i++) {
      const [deviceId, send] = targets[i]!;
      if (deviceId !== undefined) handed(deviceId, at);
      pending.push(
        send(payload).then(
          () => void sent++,
          () => void failed++,
        ),
      );
    }
  }
  await Promise.all(pending);
  return { sent, failed };
}
