// The captioning metrics of COCO-style evaluation in one call: every prediction and reference goes through
// pycocoevalcap's tokenisation (ptb-tokenize.ts), then BLEU-1..4 (corpus, 'closest'), ROUGE-L and CIDEr-D.
// Corpus figures are what pycocoevalcap prints; per-sample figures are what a reader of the misses wants: BLEU of the
// sample as a one-sentence corpus, and the per-image ROUGE-L and CIDEr-D the scorers average (CIDEr-D's document
// frequencies still come from the whole corpus).

import { bleuFromStats, bleuStats } from './bleu.js';
import { corpusCider } from './cider.js';
import type { CaptionPair } from './ngrams.js';
import { ptbTokenize } from './ptb-tokenize.js';
import { corpusRougeL } from './rouge.js';

export interface CaptionSample {
  prediction: string;
  references: readonly string[];
}

export const CAPTION_METRICS = ['bleu_1', 'bleu_2', 'bleu_3', 'bleu_4', 'rouge_l', 'cider'] as const;
export type CaptionMetric = (typeof CAPTION_METRICS)[number];
export type CaptionScores = Record<CaptionMetric, number>;

export function tokenizePairs(samples: readonly CaptionSample[]): CaptionPair[] {
  return samples.map((s) => ({ candidate: ptbTokenize(s.prediction), references: s.references.map(ptbTokenize) }));
}

export function captionMetrics(samples: readonly CaptionSample[]): { metrics: CaptionScores; perSample: CaptionScores[] } {
  const pairs = tokenizePairs(samples);
  const stats = pairs.map((p) => bleuStats(p));
  const corpus = bleuFromStats(stats);
  const rouge = corpusRougeL(pairs);
  const cider = corpusCider(pairs);
  const scores = (bleu: number[], r: number, c: number): CaptionScores => ({
    bleu_1: bleu[0], bleu_2: bleu[1], bleu_3: bleu[2], bleu_4: bleu[3], rouge_l: r, cider: c,
  });
  return {
    metrics: scores(corpus, rouge.score, cider.score),
    perSample: stats.map((s, i) => scores(bleuFromStats([s]), rouge.perSample[i], cider.perSample[i])),
  };
}
