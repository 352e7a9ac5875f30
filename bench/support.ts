export { jsonLine, parseLog, runTs, stopChildren } from '../src/dev/child-process';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** One measured figure, printed beside its target (met: null when there is no target). */
export interface Figure {
  name: string;
  value: number;
  unit: string;
  target: string;
  met: boolean | null;
  note?: string;
}
