// Evaluation metrics: token-weighted LM loss and accuracy, image→text retrieval R@1 from ITC logits, and exact
// match of generated answers.

import { type Tensor, tensorToNumbers } from '../../onnx/ir.js';

/** JSON-safe metric values by name (`eval_loss`, `token_accuracy`, `retrieval_r1`, `exact_match`). */
export type EvalMetrics = Record<string, number>;

export interface LmTotals {
  /** Σ loss · tokens (so the mean is per token across batches). */
  loss: number;
  tokens: number;
  correct: number;
}

export function accumulateLm(acc: LmTotals, meanLoss: number, tokens: number, correct: number): LmTotals {
  return { loss: acc.loss + meanLoss * tokens, tokens: acc.tokens + tokens, correct: acc.correct + correct };
}

/** Rows of an [N, N] image·text similarity whose best column is the matching one (the diagonal). */
export function retrievalAtOne(logits: Tensor): { hits: number; count: number } {
  const [n, m] = logits.dims;
  const v = tensorToNumbers(logits);
  let hits = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < m; j++) if (v[i * m + j] > v[i * m + best]) best = j;
    if (best === i) hits++;
  }
  return { hits, count: n };
}

/** Normalised exact match (case, surrounding spaces and a final period ignored), as VQA accuracy does. */
export function exactMatch(predicted: string, target: string): boolean {
  const norm = (s: string) => s.trim().toLowerCase().replace(/[.\s]+$/, '').replace(/\s+/g, ' ');
  return norm(predicted) === norm(target);
}
