import type { Job } from 'bullmq';
import type { IssueRound, IssueRoundResult } from '../src/operations/issue-round';

/** When the scheduler meant this tick to run: the millis BullMQ puts at the end of a scheduler job id. */
export function scheduledTime(job: Pick<Job, 'id' | 'timestamp' | 'delay'>): number {
  const millis = /(\d{10,})$/.exec(job.id ?? '')?.[1];
  return millis ? Number(millis) : job.timestamp + (job.delay ?? 0);
}

/** One scheduler tick: issues the next round, which closes the last (src/operations/issue-round.ts). */
export function createIssueRoundJob(deps: { issueRound: IssueRound }) {
  return (job: Pick<Job, 'id' | 'timestamp' | 'delay'>): Promise<IssueRoundResult> => {
    const scheduledAt = scheduledTime(job);
    return deps.issueRound(job.id ?? `t${scheduledAt}`, scheduledAt);
  };
}
