// The training chart's data in uPlot's aligned form (kept apart from the chart so it is testable without a DOM).

import type { TrainState } from '../store/jobs.js';

/** uPlot's aligned data: the x values, then one series per line, null where a series has no point. */
export type AlignedData = [number[], ...Array<Array<number | null>>];

/** One x axis for everything (uPlot wants aligned data): the union of loss and eval steps, gaps as null. */
export function chartData(train: Pick<TrainState, 'steps' | 'losses' | 'evals'>): { names: string[]; data: AlignedData } {
  const xs = [...new Set([...train.steps, ...train.evals.map((e) => e.step)])].sort((a, b) => a - b);
  const names = [...new Set(train.evals.flatMap((e) => Object.keys(e.metrics)))].sort();
  const lossAt = new Map(train.steps.map((s, i) => [s, train.losses[i]]));
  const evalAt = new Map(train.evals.map((e) => [e.step, e.metrics]));
  const data: AlignedData = [
    xs,
    xs.map((x) => lossAt.get(x) ?? null),
    ...names.map((n) => xs.map((x) => evalAt.get(x)?.[n] ?? null)),
  ];
  return { names, data };
}

