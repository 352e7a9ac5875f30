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

/** Runs `stop` once on SIGINT/SIGTERM, then exits; a second signal exits at once. */
export function onShutdownSignal(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(130);
    stopping = true;
    void stop().finally(() => process.exit(signal === 'SIGINT' ? 130 : 0));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}
