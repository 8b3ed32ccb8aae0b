// Retrieval and zero-shot classification from score matrices.
// Retrieval as ALBEF / BLIP evaluate it (itm_eval): image→text R@K = share of images with at least one of their
// texts among the K best-scored texts; text→image R@K = share of texts whose image is among the K best-scored
// images. Ranks come from a descending sort; equal scores rank a higher index first, as the reference's reversed
// argsort does. Zero-shot top-K as CLIP reports it: share of images whose class is among the K highest logits
// (equal logits rank the lower index first, a stable sort).

import { MetricError } from './ngrams.js';

/** 0-based rank of column `target` in `row` when sorted descending; ties put higher indices first. */
function rankReversed(row: readonly number[], target: number): number {
  const s = row[target];
  let rank = 0;
  for (let j = 0; j < row.length; j++) if (row[j] > s || (row[j] === s && j > target)) rank++;
  return rank;
}

/** 0-based rank of `target` in a stable descending sort (ties put lower indices first). */
function rankStable(row: readonly number[], target: number): number {
  const s = row[target];
  let rank = 0;
  for (let j = 0; j < row.length; j++) if (row[j] > s || (row[j] === s && j < target)) rank++;
  return rank;
}

export interface RetrievalScores {
  i2t_r1: number; i2t_r5: number; i2t_r10: number;
  t2i_r1: number; t2i_r5: number; t2i_r10: number;
}

/**
 * `similarity[i][t]`: score of image i with text t; `textImage[t]`: the image text t describes. Also returns, per
 * image, the 0-based rank of its best-ranked text, and per text the rank of its image.
 */
export function retrievalRecall(similarity: readonly (readonly number[])[], textImage: readonly number[]): { metrics: RetrievalScores; imageRanks: number[]; textRanks: number[] } {
  const images = similarity.length;
  const texts = textImage.length;
  similarity.forEach((row, i) => {
    if (row.length !== texts) throw new MetricError(`retrieval: row ${i} of the similarity matrix has ${row.length} scores, expected ${texts} (one per text)`);
  });
  textImage.forEach((img, t) => {
    if (!Number.isInteger(img) || img < 0 || img >= images) throw new MetricError(`retrieval: text ${t} belongs to image ${img}, which does not exist (${images} images)`);
  });
  const imageRanks = similarity.map((row, i) => {
    let best = Infinity;
    textImage.forEach((img, t) => { if (img === i) best = Math.min(best, rankReversed(row, t)); });
    if (best === Infinity) throw new MetricError(`retrieval: image ${i} has no text`);
    return best;
  });
  const textRanks = textImage.map((img, t) => rankReversed(similarity.map((row) => row[t]), img));
  const recall = (ranks: number[], k: number) => ranks.filter((r) => r < k).length / Math.max(1, ranks.length);
  return {
    metrics: {
      i2t_r1: recall(imageRanks, 1), i2t_r5: recall(imageRanks, 5), i2t_r10: recall(imageRanks, 10),
      t2i_r1: recall(textRanks, 1), t2i_r5: recall(textRanks, 5), t2i_r10: recall(textRanks, 10),
    },
    imageRanks,
    textRanks,
  };
}

/** Top-1 / top-5 accuracy of per-image class logits; also each image's 0-based rank of its class. */
export function zeroShotAccuracy(logits: readonly (readonly number[])[], labels: readonly number[]): { metrics: { top1: number; top5: number }; ranks: number[] } {
  if (logits.length !== labels.length) throw new MetricError(`zero-shot: ${logits.length} rows of logits for ${labels.length} labels`);
  const ranks = logits.map((row, i) => {
    const y = labels[i];
    if (!Number.isInteger(y) || y < 0 || y >= row.length) throw new MetricError(`zero-shot: image ${i} has class ${y}, outside 0..${row.length - 1}`);
    return rankStable(row, y);
  });
  const acc = (k: number) => ranks.filter((r) => r < k).length / Math.max(1, ranks.length);
  return { metrics: { top1: acc(1), top5: acc(5) }, ranks };
}
