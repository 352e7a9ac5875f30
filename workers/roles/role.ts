/** A running part of the system that can be drained and stopped. */
export interface Role {
  stop(): Promise<void>;
}

/** Stops roles in reverse start order; never throws, reports what failed. */
export async function stopAll(roles: readonly Role[], onError: (err: unknown) => void): Promise<void> {
  for (const role of [...roles].reverse()) {
    try {
      await role.stop();
    } catch (err) {
      onError(err);
    }
  }
}

/** A drain that takes longer than this is cut short (orchestrators kill at 10 s). */
export const DRAIN_LIMIT_MS = 9000;

/**
 * Runs `stop` once on SIGINT/SIGTERM (no new work, in-flight work finishes), then exits; a second
 * signal, or a drain over DRAIN_LIMIT_MS, exits at once (unfinished jobs are retried elsewhere).
 */
export function onShutdownSignal(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(130);
    stopping = true;
    setTimeout(() => process.exit(1), DRAIN_LIMIT_MS).unref();
    void stop().finally(() => process.exit(signal === 'SIGINT' ? 130 : 0));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}
