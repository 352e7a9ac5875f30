import type { JobData } from '../src/queues/table';
import type { EvaluateRound, EvaluateRoundResult } from '../src/operations/evaluate-round';

export type EvaluateRoundData = JobData['evaluateRound'];

/** Evaluates a closed round: which silent devices are disconnected (src/operations/evaluate-round.ts). */
export function createEvaluateRoundJob(deps: { evaluateRound: EvaluateRound }) {
  return (data: EvaluateRoundData): Promise<EvaluateRoundResult> => deps.evaluateRound(data.round);
}
