// n-gram counts of a tokenized sentence (space-separated), shared by BLEU and CIDEr-D. Keys join the words with a
// space, which no token contains.

/** Counts of every 1..n-gram of `words`; the key of an n-gram is its words joined by ' '. */
export function ngramCounts(words: readonly string[], n = 4): Map<string, { order: number; count: number }> {
  const counts = new Map<string, { order: number; count: number }>();
  for (let k = 1; k <= n; k++) {
    for (let i = 0; i + k <= words.length; i++) {
      const key = words.slice(i, i + k).join(' ');
      const hit = counts.get(key);
      if (hit) hit.count++;
      else counts.set(key, { order: k, count: 1 });
    }
  }
  return counts;
}

/** Whitespace split as Python's str.split() does it (runs of whitespace, no empty words). */
export function words(sentence: string): string[] {
  return sentence.split(/\s+/).filter((w) => w.length > 0);
}

/** One candidate and its references, already tokenized (ptbTokenize). */
export interface CaptionPair {
  candidate: string;
  references: string[];
}

export class MetricError extends Error {
  override name = 'MetricError';
}

export function checkPairs(pairs: readonly CaptionPair[], metric: string): void {
  pairs.forEach((p, i) => {
    if (p.references.length === 0) throw new MetricError(`${metric}: sample ${i} has no reference caption`);
  });
}
