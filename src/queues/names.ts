import type { EffectKind } from '../domain/effects';

/** Queue names: kebab-case verb-noun. Each effect kind has its own queue so one outage never delays another. */
export const QUEUES = {
  issueRound: 'issue-round',
  evaluateRound: 'evaluate-round',
  sweepEffects: 'sweep-effects',
  dispatchEffects: 'dispatch-effects',
  fanOutWebhooks: 'fan-out-webhooks',
  deliverWebhook: 'deliver-webhook',
} as const;

export const effectQueueName = (kind: EffectKind): string => kind;

/** The job scheduler that issues HEALTHCHECK rounds. */
export const ROUND_SCHEDULER_ID = 'health-check-rounds';
