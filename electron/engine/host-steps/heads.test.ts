import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../onnx/ir.js';
import { DEFAULT_LABELS, splitLabels } from '../../nodes/heads.js';
import { builtinTokenizer } from '../tokenizer.js';
import { headHostSteps } from './heads.js';
import type { HostStepContext } from './io.js';

const ctx: HostStepContext = { nodeId: 'n', baseDir: '.' };
const f32 = (dims: number[], values: number[]): Tensor => ({ dtype: 'float32', dims, data: Float32Array.from(values) });

describe('text.labels', () => {
  it('tokenises every label as <s> … </s>, right-padded, with the default shapes labels', async () => {
    const out = await headHostSteps['text.labels']({}, {}, ctx);
    const ids = out.input_ids as Tensor;
    const mask = out.attention_mask as Tensor;
    const tok = builtinTokenizer();
    expect(ids.dims[0]).toBe(DEFAULT_LABELS.length);
    expect(out.labels).toBe(DEFAULT_LABELS.join('\n'));
    const T = ids.dims[1];
    DEFAULT_LABELS.forEach((label, r) => {
      const row = Array.from(ids.data as BigInt64Array).slice(r * T, (r + 1) * T).map(Number);
      const expected = [...tok.encode(label), tok.specialIds.eos!];
      expect(row.slice(0, expected.length)).toEqual(expected);
      expect(row.slice(expected.length).every((id) => id === tok.specialIds.pad)).toBe(true);
      const m = Array.from(mask.data as BigInt64Array).slice(r * T, (r + 1) * T).map(Number);
      expect(m).toEqual(row.map((_, i) => (i < expected.length ? 1 : 0)));
    });
  });

  it('labels typed into the text input replace the param; empty text keeps it', async () => {
    expect(splitLabels(' a red circle ;\n a blue square;; ')).toEqual(['a red circle', 'a blue square']);
    const typed = await headHostSteps['text.labels']({ labels: ['x'] }, { text: 'a red circle; a blue square' }, ctx);
    expect(typed.labels).toBe('a red circle\na blue square');
    const empty = await headHostSteps['text.labels']({ labels: ['a red circle'] }, { text: '  ' }, ctx);
    expect(empty.labels).toBe('a red circle');
    await expect(headHostSteps['text.labels']({ labels: ['a red circle and a blue square'], max_length: 4 }, {}, ctx)).rejects.toThrow(
      /node 'n': label 'a red circle and a blue square' is \d+ tokens long, more than max_length 4/,
    );
  });
});

describe('head.zero_shot', () => {
  it('scores labels by scaled cosine similarity and names the best one', async () => {
    const out = await headHostSteps['head.zero_shot'](
      { logit_scale: 2 },
      { image_embeds: f32([1, 2], [3, 0]), text_embeds: f32([3, 2], [0, 5, 2, 0, -1, 1]), labels: 'up\nright\nleft-up' },
      ctx,
    );
    expect(out.text).toBe('right');
    const logits = [0, 2, 2 * (-1 / Math.SQRT2)];
    const sum = logits.reduce((s, l) => s + Math.exp(l), 0);
    const scores = Array.from((out.scores as Tensor).data as Float32Array);
    logits.forEach((l, i) => expect(scores[i]).toBeCloseTo(Math.exp(l) / sum, 6));
  });

  it('refuses mismatched widths and label counts, naming the node', async () => {
    await expect(
      headHostSteps['head.zero_shot']({}, { image_embeds: f32([1, 3], [1, 0, 0]), text_embeds: f32([1, 2], [1, 0]), labels: 'a' }, ctx),
    ).rejects.toThrow(/node 'n': image_embeds width 3 differs from text_embeds width 2/);
    await expect(
      headHostSteps['head.zero_shot']({}, { image_embeds: f32([1, 2], [1, 0]), text_embeds: f32([1, 2], [1, 0]), labels: 'a\nb' }, ctx),
    ).rejects.toThrow(/node 'n': 2 labels but 1 rows in 'text_embeds'/);
  });
});

describe('SigLIP-style scoring and padding', () => {
  it('sigmoid with a bias scores each label independently; logits come out before the activation', async () => {
    const out = await headHostSteps['head.zero_shot'](
      { logit_scale: 10, logit_bias: -3, activation: 'sigmoid' },
      { image_embeds: f32([1, 2], [3, 0]), text_embeds: f32([2, 2], [0, 5, 2, 0]), labels: 'up\nright' },
      ctx,
    );
    expect(out.text).toBe('right');
    const logits = Array.from((out.logits as Tensor).data as Float32Array);
    expect(logits[0]).toBeCloseTo(-3, 6);
    expect(logits[1]).toBeCloseTo(7, 6);
    const scores = Array.from((out.scores as Tensor).data as Float32Array);
    expect(scores[0]).toBeCloseTo(1 / (1 + Math.exp(3)), 6);
    expect(scores[1]).toBeCloseTo(1 / (1 + Math.exp(-7)), 6);
    // Softmax scores of one image sum to 1, sigmoid scores need not.
    const soft = await headHostSteps['head.zero_shot']({ logit_scale: 10 }, { image_embeds: f32([1, 2], [3, 0]), text_embeds: f32([2, 2], [0, 5, 2, 0]), labels: 'up\nright' }, ctx);
    const s = Array.from((soft.scores as Tensor).data as Float32Array);
    expect(s[0] + s[1]).toBeCloseTo(1, 6);
    expect(Array.from((soft.logits as Tensor).data as Float32Array)).toEqual([0, 10]);
  });

  it("padding 'max_length' pads every label row to max_length with the pad token, mask 0", async () => {
    const out = await headHostSteps['text.labels']({ labels: ['a red circle', 'a blue square'], max_length: 16, padding: 'max_length' }, {}, ctx);
    const ids = out.input_ids as Tensor;
    const mask = Array.from((out.attention_mask as Tensor).data as BigInt64Array).map(Number);
    expect(ids.dims).toEqual([2, 16]);
    const tok = builtinTokenizer();
    const row0 = Array.from(ids.data as BigInt64Array).slice(0, 16).map(Number);
    const expected = [...tok.encode('a red circle'), tok.specialIds.eos!];
    expect(row0.slice(0, expected.length)).toEqual(expected);
    expect(row0.slice(expected.length).every((id) => id === tok.specialIds.pad)).toBe(true);
    expect(mask.slice(0, 16)).toEqual(row0.map((_, i) => (i < expected.length ? 1 : 0)));
  });
});
