// CLIPScore (Hessel et al. 2021, "CLIPScore: A Reference-free Evaluation Metric for Image Captioning"):
// w · max(cos(E_image, E_text), 0) with w = 2.5, averaged over the samples. Used for generators: how well a drawing
// matches the request, judged by a CLIP graph's image and text towers.

import { MetricError } from './ngrams.js';

export const CLIP_SCORE_WEIGHT = 2.5;

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new MetricError(`CLIP-score: embeddings of different widths (${a.length} and ${b.length})`);
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}

export function clipScore(image: ArrayLike<number>, text: ArrayLike<number>, weight = CLIP_SCORE_WEIGHT): number {
  return weight * Math.max(cosine(image, text), 0);
}
