/**
 * Starts the pump of every webhook with work (client events past its cursor, or deliveries due): a
 * pump already queued, running or resting after a failure is left as it is (its job id is the
 * webhook's). Each pump fans out to its own webhook, so no receiver waits for another's fan-out.
 */
export function createFanOutWebhooks(deps: {
  withWork: () => Promise<string[]>;
  startPumps: (webhookIds: readonly string[]) => Promise<void>;
}) {
  return async (): Promise<{ pumps: number }> => {
    const ids = await deps.withWork();
    if (ids.length > 0) await deps.startPumps(ids);
    return { pumps: ids.length };
  };
}
