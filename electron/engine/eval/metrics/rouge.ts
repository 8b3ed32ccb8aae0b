// ROUGE-L as pycocoevalcap's Rouge computes it: per image, the longest common subsequence of the candidate with
// each reference (tokens split on single spaces), the best precision and the best recall over the references
// (taken separately), F = (1 + β²)·P·R / (R + β²·P) with β = 1.2, and the corpus score the mean over images.

import { type CaptionPair, checkPairs } from './ngrams.js';

export const ROUGE_BETA = 1.2;

export function lcsLength(a: readonly string[], b: readonly string[]): number {
  let prev = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    const row = new Array<number>(b.length + 1).fill(0);
    for (let j = 1; j <= b.length; j++) row[j] = a[i - 1] === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], row[j - 1]);
    prev = row;
  }
  return prev[b.length];
}

/** ROUGE-L of one tokenized candidate against its references. */
export function rougeL(pair: CaptionPair, beta = ROUGE_BETA): number {
  // The reference splits on ' ' (so an empty candidate is one empty token, as there).
  const cand = pair.candidate.split(' ');
  let p = 0, r = 0;
  for (const ref of pair.references) {
    const tokens = ref.split(' ');
    const m = lcsLength(tokens, cand);
    p = Math.max(p, m / cand.length);
    r = Math.max(r, m / tokens.length);
  }
  return p !== 0 && r !== 0 ? ((1 + beta ** 2) * p * r) / (r + beta ** 2 * p) : 0;
}

/** Mean ROUGE-L over the corpus, and per pair. */
export function corpusRougeL(pairs: readonly CaptionPair[]): { score: number; perSample: number[] } {
  checkPairs(pairs, 'ROUGE-L');
  const perSample = pairs.map((p) => rougeL(p));
  return { score: perSample.reduce((a, b) => a + b, 0) / Math.max(1, perSample.length), perSample };
}
