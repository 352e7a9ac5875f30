import type { EvaluateRound, EvaluateRoundResult } from '../src/operations/evaluate-round';

export interface EvaluateRoundData {
  readonly round: number;
}

/** Evaluates a closed round: which silent devices are disconnected (src/operations/evaluate-round.ts). */
export function createEvaluateRoundJob(deps: { evaluateRound: EvaluateRound }) {
  return (data: EvaluateRoundData): Promise<EvaluateRoundResult> => deps.evaluateRound(data.round);
}
