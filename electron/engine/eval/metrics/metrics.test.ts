// The metrics against their reference implementations. Every expected value below is read from
// testdata/expected.json, written by tools/metric_reference.py (run with /usr/bin/python3), which re-states
// pycocoevalcap (BLEU via BleuScorer 'closest', ROUGE-L β 1.2, CIDEr-D σ 6 with df from the references, and the
// PTBTokenizer + punctuation filter), the VQAv2 API's vqaEval.py, ALBEF/BLIP's itm_eval and CLIP's top-k on the
// committed fixtures captions.json, vqa.json and ranking.json. The CLIP-score value is computed by hand in its test.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  captionMetrics, clipScore, corpusBleu, corpusCider, corpusRougeL, normalizeVqaAnswer, ptbTokenize, retrievalRecall, tokenizePairs,
  vqaAccuracy, vqaMetrics, zeroShotAccuracy,
} from './index.js';

const DATA = join(import.meta.dirname, '..', 'testdata');
const read = <T>(name: string): T => JSON.parse(readFileSync(join(DATA, name), 'utf8')) as T;

interface CaptionFixture {
  ptb: Array<{ text: string; tokens: string }>;
  images: Array<{ id: string; references: string[]; candidate: string }>;
}
interface Expected {
  caption: {
    tokenized: Array<{ id: string; candidate: string; references: string[] }>;
    bleu: number[];
    rouge_l: number;
    cider: number;
    per_image: Array<{ id: string; bleu: number[]; rouge_l: number; cider: number }>;
  };
  vqa: { accuracy: number; per_question: Array<{ question_id: number; accuracy: number }> };
  retrieval: Record<string, number>;
  zero_shot: { top1: number; top5: number };
}
interface VqaFixture {
  annotations: { annotations: Array<{ question_id: number; answers: Array<{ answer: string }> }> };
  predictions: Array<{ question_id: number; answer: string; case: string }>;
}

const captions = read<CaptionFixture>('captions.json');
const expected = read<Expected>('expected.json');
const close = (a: number, b: number) => expect(a).toBeCloseTo(b, 12);

describe('PTB tokenisation (pycocoevalcap: CoreNLP PTBTokenizer -lowerCase, punctuation dropped)', () => {
  it.each(captions.ptb)('$text', ({ text, tokens }) => {
    expect(ptbTokenize(text)).toBe(tokens);
  });
  it('tokenizes every fixture caption as the reference script did', () => {
    const pairs = tokenizePairs(captions.images.map((im) => ({ prediction: im.candidate, references: im.references })));
    expect(pairs.map((p) => p.candidate)).toEqual(expected.caption.tokenized.map((t) => t.candidate));
    expect(pairs.map((p) => p.references)).toEqual(expected.caption.tokenized.map((t) => t.references));
  });
});

describe('caption metrics on captions.json (10 images x 5 references)', () => {
  const pairs = expected.caption.tokenized.map((t) => ({ candidate: t.candidate, references: t.references }));
  it('corpus BLEU-1..4 with the closest reference length and the brevity penalty', () => {
    corpusBleu(pairs).forEach((b, i) => close(b, expected.caption.bleu[i]));
  });
  it('ROUGE-L (beta 1.2), corpus and per image', () => {
    const r = corpusRougeL(pairs);
    close(r.score, expected.caption.rouge_l);
    r.perSample.forEach((s, i) => close(s, expected.caption.per_image[i].rouge_l));
  });
  it('CIDEr-D (df from the references, sigma 6, clipped, x10), corpus and per image', () => {
    const c = corpusCider(pairs);
    close(c.score, expected.caption.cider);
    c.perSample.forEach((s, i) => close(s, expected.caption.per_image[i].cider));
  });
  it('captionMetrics from raw text: tokenisation, corpus figures and per-sample BLEU', () => {
    const m = captionMetrics(captions.images.map((im) => ({ prediction: im.candidate, references: im.references })));
    close(m.metrics.bleu_1, expected.caption.bleu[0]);
    close(m.metrics.bleu_4, expected.caption.bleu[3]);
    close(m.metrics.cider, expected.caption.cider);
    close(m.metrics.rouge_l, expected.caption.rouge_l);
    m.perSample.forEach((s, i) => {
      const want = expected.caption.per_image[i];
      [s.bleu_1, s.bleu_2, s.bleu_3, s.bleu_4].forEach((b, k) => close(b, want.bleu[k]));
      close(s.cider, want.cider);
    });
  });
  it('a perfect candidate outscores a wrong one; a corpus of one image has CIDEr 0 (ln 1 idf), as in the reference', () => {
    const refs = ['a red circle on the left', 'a red circle', 'a small red circle'];
    const good = captionMetrics([{ prediction: 'a red circle', references: refs }, { prediction: 'a blue square', references: ['a blue square', 'a large blue square'] }]);
    const bad = captionMetrics([{ prediction: 'a blue square', references: refs }, { prediction: 'a red circle', references: ['a blue square', 'a large blue square'] }]);
    expect(good.metrics.cider).toBeGreaterThan(bad.metrics.cider);
    expect(good.metrics.bleu_1).toBeGreaterThan(bad.metrics.bleu_1);
    expect(captionMetrics([{ prediction: 'a red circle', references: refs }]).metrics.cider).toBe(0);
  });
  it('names the sample without references', () => {
    expect(() => corpusBleu([{ candidate: 'x', references: [] }])).toThrow(/sample 0 has no reference/);
  });
});

describe('VQA accuracy (VQAv2 vqaEval.py) on vqa.json', () => {
  const vqa = read<VqaFixture>('vqa.json');
  const answers = new Map(vqa.annotations.annotations.map((a) => [a.question_id, a.answers.map((x) => x.answer)]));
  it.each(vqa.predictions.map((p, i) => ({ ...p, want: expected.vqa.per_question[i].accuracy })))('$case ("$answer")', ({ question_id, answer, want }) => {
    close(vqaAccuracy(answer, answers.get(question_id)!), want);
  });
  it('the mean over questions', () => {
    const m = vqaMetrics(vqa.predictions.map((p) => ({ prediction: p.answer, answers: answers.get(p.question_id)! })));
    close(m.accuracy, expected.vqa.accuracy);
  });
  it('normalises predictions as the reference does', () => {
    expect(normalizeVqaAnswer('  Two  Dogs.')).toBe('2 dogs');
    expect(normalizeVqaAnswer('Dont')).toBe('don’t');
    expect(normalizeVqaAnswer('3.5')).toBe('3.5');
  });
  it("raw answers ('normalise'): number words in the references match too", () => {
    const raw = Array(10).fill('two');
    expect(vqaAccuracy('two', raw)).toBe(0); // the official rule: references are taken as already normalised
    expect(vqaAccuracy('two', raw, 'normalise')).toBe(1);
  });
});

describe('retrieval and zero-shot on ranking.json', () => {
  const ranking = read<{ retrieval: { similarity: number[][]; text_image: number[] }; zero_shot: { logits: number[][]; labels: number[] } }>('ranking.json');
  it('image→text and text→image R@1/5/10 (ALBEF/BLIP itm_eval)', () => {
    const r = retrievalRecall(ranking.retrieval.similarity, ranking.retrieval.text_image);
    for (const [k, v] of Object.entries(expected.retrieval)) close(r.metrics[k as keyof typeof r.metrics], v);
  });
  it('zero-shot top-1 / top-5 (CLIP)', () => {
    const z = zeroShotAccuracy(ranking.zero_shot.logits, ranking.zero_shot.labels);
    close(z.metrics.top1, expected.zero_shot.top1);
    close(z.metrics.top5, expected.zero_shot.top5);
  });
  it('rejects a matrix that does not match the texts', () => {
    expect(() => retrievalRecall([[1, 2]], [0, 0, 0])).toThrow(/row 0 .* 2 scores, expected 3/);
  });
});

describe('CLIP-score', () => {
  it('2.5 · max(cos, 0): [1,0] vs [1,1] gives 2.5/√2; opposite vectors give 0', () => {
    close(clipScore([1, 0], [1, 1]), 2.5 / Math.SQRT2);
    expect(clipScore([1, 0], [-1, 0])).toBe(0);
  });
});
