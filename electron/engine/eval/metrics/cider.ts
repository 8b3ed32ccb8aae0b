// CIDEr-D as pycocoevalcap's CiderScorer computes it (what COCO and the captioning papers report as "CIDEr"):
// tf-idf vectors of 1..4-grams with document frequencies counted over the references (one document per image) and
// idf = ln(#images) − ln(max(1, df)); per order, the clipped cosine Σ min(h, r)·r / (‖h‖‖r‖) (skipped when a norm
// is 0), times the Gaussian length penalty exp(−δ²/(2σ²)) with σ = 6, where δ is the difference of the *bigram*
// counts (the reference takes its "length" from n-gram index 1); averaged over the orders and the references,
// times 10. The corpus score is the mean over images.

import { type CaptionPair, checkPairs, ngramCounts, words } from './ngrams.js';

export const CIDER_SIGMA = 6;

interface TfIdf {
  vec: Array<Map<string, number>>;
  norm: number[];
  length: number;
}

/** CIDEr-D of every pair and the corpus mean (df from these pairs' references). */
export function corpusCider(pairs: readonly CaptionPair[], n = 4, sigma = CIDER_SIGMA): { score: number; perSample: number[] } {
  checkPairs(pairs, 'CIDEr-D');
  const cands = pairs.map((p) => ngramCounts(words(p.candidate), n));
  const refs = pairs.map((p) => p.references.map((r) => ngramCounts(words(r), n)));
  const df = new Map<string, number>();
  for (const rs of refs) {
    const seen = new Set<string>();
    for (const r of rs) for (const g of r.keys()) seen.add(g);
    for (const g of seen) df.set(g, (df.get(g) ?? 0) + 1);
  }
  const logImages = Math.log(pairs.length);
  const tfidf = (counts: ReturnType<typeof ngramCounts>): TfIdf => {
    const vec = Array.from({ length: n }, () => new Map<string, number>());
    const sq = new Array<number>(n).fill(0);
    let length = 0;
    for (const [g, { order, count }] of counts) {
      const w = count * (logImages - Math.log(Math.max(1, df.get(g) ?? 0)));
      vec[order - 1].set(g, w);
      sq[order - 1] += w * w;
      if (order === 2) length += count;
    }
    return { vec, norm: sq.map(Math.sqrt), length };
  };
  const perSample = cands.map((c, i) => {
    const h = tfidf(c);
    let total = 0;
    for (const r of refs[i].map(tfidf)) {
      const delta = h.length - r.length;
      const penalty = Math.exp(-(delta * delta) / (2 * sigma * sigma));
      for (let k = 0; k < n; k++) {
        let val = 0;
        for (const [g, w] of h.vec[k]) {
          const rw = r.vec[k].get(g) ?? 0;
          val += Math.min(w, rw) * rw;
        }
        if (h.norm[k] !== 0 && r.norm[k] !== 0) val /= h.norm[k] * r.norm[k];
        total += val * penalty;
      }
    }
    return (total / n / refs[i].length) * 10;
  });
  return { score: perSample.reduce((a, b) => a + b, 0) / Math.max(1, perSample.length), perSample };
}
