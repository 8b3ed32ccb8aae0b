// Corpus BLEU-1..4 exactly as pycocoevalcap's BleuScorer computes it with option 'closest' (what its Bleu wrapper
// uses): per sentence, clipped n-gram matches against the maximum count over its references and the reference
// length closest to the candidate's (a tie goes to the shorter); matches, guesses and lengths are summed over the
// corpus; BLEU-n = (Π_{k≤n} (correct_k + 1e-15) / (guess_k + 1e-9))^{1/n}, times the brevity penalty
// exp(1 − ref/test) when the corpus candidate length is shorter than the reference length.

import { type CaptionPair, checkPairs, ngramCounts, words } from './ngrams.js';

const SMALL = 1e-9;
const TINY = 1e-15;

export interface BleuStats {
  testLength: number;
  refLength: number;
  /** Per order k = 1..n: candidate n-grams (guesses) and clipped matches. */
  guess: number[];
  correct: number[];
}

/** The sufficient statistics of one candidate against its references. */
export function bleuStats(pair: CaptionPair, n = 4): BleuStats {
  const maxCounts = new Map<string, number>();
  const refLengths: number[] = [];
  for (const ref of pair.references) {
    const w = words(ref);
    refLengths.push(w.length);
    for (const [g, { count }] of ngramCounts(w, n)) maxCounts.set(g, Math.max(maxCounts.get(g) ?? 0, count));
  }
  const cand = words(pair.candidate);
  const testLength = cand.length;
  let refLength = refLengths[0];
  for (const l of refLengths) {
    const d = Math.abs(l - testLength), best = Math.abs(refLength - testLength);
    if (d < best || (d === best && l < refLength)) refLength = l;
  }
  const guess = Array.from({ length: n }, (_, k) => Math.max(0, testLength - k));
  const correct = new Array<number>(n).fill(0);
  for (const [g, { order, count }] of ngramCounts(cand, n)) correct[order - 1] += Math.min(maxCounts.get(g) ?? 0, count);
  return { testLength, refLength, guess, correct };
}

/** BLEU-1..n from summed statistics. */
export function bleuFromStats(stats: readonly BleuStats[], n = 4): number[] {
  let test = 0, ref = 0;
  const guess = new Array<number>(n).fill(0);
  const correct = new Array<number>(n).fill(0);
  for (const s of stats) {
    test += s.testLength;
    ref += s.refLength;
    for (let k = 0; k < n; k++) {
      guess[k] += s.guess[k];
      correct[k] += s.correct[k];
    }
  }
  const ratio = (test + TINY) / (ref + SMALL);
  const out: number[] = [];
  for (let m = 1; m <= n; m++) {
    let p = 1;
    for (let k = 0; k < m; k++) p *= (correct[k] + TINY) / (guess[k] + SMALL);
    let score = p ** (1 / m);
    if (ratio < 1) score *= Math.exp(1 - 1 / ratio);
    out.push(score);
  }
  return out;
}

/** Corpus BLEU-1..n of tokenized pairs. */
export function corpusBleu(pairs: readonly CaptionPair[], n = 4): number[] {
  checkPairs(pairs, 'BLEU');
  return bleuFromStats(pairs.map((p) => bleuStats(p, n)), n);
}
