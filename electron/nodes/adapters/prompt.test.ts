import { describe, expect, it } from 'vitest';
import { type Tensor, tensorFromNumbers, tensorToNumbers } from '../../onnx/ir.js';
import { resolveDecoderConfig } from '../llms.js';
import { applyPrompt, applyPtuning } from './prompt.js';
import { decoderFeeds, maxAbsDiff, runFragment, tinyDecoder } from './fixtures.test-support.js';

const cfg = resolveDecoderConfig({ preset: 'tiny', flavour: 'opt' });
const D = cfg.hiddenSize;

/** [P, D] prompts + [B, S, D] embeddings → [B, P+S, D]. */
function prependRows(prompts: Float64Array, P: number, embeds: Tensor): Tensor {
  const [B, S] = embeds.dims;
  const e = tensorToNumbers(embeds);
  const out = new Float32Array(B * (P + S) * D);
  for (let b = 0; b < B; b++) {
    out.set(Float32Array.from(prompts), b * (P + S) * D);
    out.set(Float32Array.from(e.subarray(b * S * D, (b + 1) * S * D)), (b * (P + S) + P) * D);
  }
  return { dtype: 'float32', dims: [B, P + S, D], data: out };
}

function ints(dims: number[], f: (b: number, t: number) => number): Tensor {
  const [B, T] = dims;
  return tensorFromNumbers('int64', dims, Array.from({ length: B * T }, (_, i) => f(Math.floor(i / T), i % T)));
}

/** Logits [B, T, V] → positions from..T. */
function sliceSeq(t: Tensor, from: number): Float64Array {
  const [B, T, V] = t.dims;
  const x = tensorToNumbers(t);
  const out = new Float64Array(B * (T - from) * V);
  for (let b = 0; b < B; b++) out.set(x.subarray((b * T + from) * V, (b + 1) * T * V), b * (T - from) * V);
  return out;
}

function maxDiff(a: Float64Array, b: Float64Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function checkAgainstExplicitPrompt(fragment: Parameters<typeof runFragment>[0], base: Parameters<typeof runFragment>[0], table: string, P: number): Promise<void> {
  const feeds = decoderFeeds('opt', 2, 4, 5, 1);
  const adapted = await runFragment(fragment, feeds, [table]);
  const prompts = tensorToNumbers(adapted[table]);
  expect(adapted.logits.dims).toEqual([2, 4, cfg.vocabSize]);
  const mask = tensorToNumbers(feeds.attention_mask);
  const full = await runFragment(base, {
    ...feeds,
    inputs_embeds: prependRows(prompts, P, feeds.inputs_embeds),
    attention_mask: ints([2, P + 4], (b, t) => (t < P ? 1 : mask[b * 4 + t - P])),
    position_ids: ints([2, P + 4], (_, t) => t),
  });
  expect(maxDiff(tensorToNumbers(adapted.logits), sliceSeq(full.logits, P))).toBeLessThan(1e-4);
}

describe('prompt tuning', () => {
  it('prepends P trainable embeddings, extends the mask and positions, and strips them from the logits', async () => {
    const base = tinyDecoder('opt');
    const res = applyPrompt(base, { num_virtual_tokens: 3 }, 2);
    expect(res.trainable).toEqual(['prompt_encoder.default.embedding.weight']);
    expect(res.info.strippedOutputs).toEqual(['logits', 'last_hidden_state']);
    await checkAgainstExplicitPrompt(res.fragment, base, res.info.table, 3);
  });

  it('decodes with a KV cache that already holds the virtual tokens', async () => {
    const base = tinyDecoder('opt');
    const P = 2;
    const res = applyPrompt(base, { num_virtual_tokens: P }, 2);
    const prefill = decoderFeeds('opt', 1, 3, 8);
    const first = await runFragment(res.fragment, prefill);
    expect(first['present.0.key'].dims[2]).toBe(P + 3);
    const next = decoderFeeds('opt', 1, 1, 9);
    const step: Record<string, Tensor> = {
      ...next,
      attention_mask: ints([1, 4], () => 1),
      position_ids: ints([1, 1], () => 3),
    };
    for (let l = 0; l < cfg.numLayers; l++) {
      step[`past_key_values.${l}.key`] = first[`present.${l}.key`];
      step[`past_key_values.${l}.value`] = first[`present.${l}.value`];
    }
    const decoded = await runFragment(res.fragment, step);
    // Reference: the whole sequence at once.
    const e0 = tensorToNumbers(prefill.inputs_embeds);
    const e1 = tensorToNumbers(next.inputs_embeds);
    const whole: Tensor = { dtype: 'float32', dims: [1, 4, D], data: Float32Array.from([...e0, ...e1]) };
    const full = await runFragment(res.fragment, { ...decoderFeeds('opt', 1, 4, 1), inputs_embeds: whole });
    expect(maxDiff(tensorToNumbers(decoded.logits), sliceSeq(full.logits, 3))).toBeLessThan(1e-4);
  });

  it('initialises from the embeddings of a text (tiled to P) or from vocabulary rows', () => {
    const base = tinyDecoder('opt');
    const tokenize = (text: string) => text.split(' ').map((w) => w.length);
    const res = applyPrompt(base, { num_virtual_tokens: 5, prompt_tuning_init: 'text', prompt_tuning_init_text: 'a shape of' }, 1, { tokenize });
    const table = tensorToNumbers(res.fragment.graph.initializers.get(res.info.table)!);
    const matrix = tensorToNumbers(base.graph.initializers.get('embed_tokens.weight')!);
    [1, 5, 2, 1, 5].forEach((id, row) => expect(Array.from(table.subarray(row * D, (row + 1) * D))).toEqual(Array.from(matrix.subarray(id * D, (id + 1) * D))));
    const sampled = applyPrompt(base, { num_virtual_tokens: 2, prompt_tuning_init: 'sample_vocab' }, 1);
    const rows = tensorToNumbers(sampled.fragment.graph.initializers.get(sampled.info.table)!);
    const firstRow = Array.from(rows.subarray(0, D));
    let found = false;
    for (let v = 0; v < cfg.vocabSize && !found; v++) found = Array.from(matrix.subarray(v * D, (v + 1) * D)).every((x, i) => x === firstRow[i]);
    expect(found).toBe(true);
    expect(() => applyPrompt(base, { prompt_tuning_init: 'text', prompt_tuning_init_text: 'x' }, 1)).toThrow(/needs a tokenizer/);
  });
});

describe('P-tuning', () => {
  it('produces the virtual tokens with an MLP prompt encoder', async () => {
    const base = tinyDecoder('opt');
    const res = applyPtuning(base, { num_virtual_tokens: 3, encoder_hidden_size: 32 }, 4);
    expect(res.trainable).toContain('prompt_encoder.default.mlp_head.4.weight');
    await checkAgainstExplicitPrompt(res.fragment, base, res.info.table, 3);
  });

  it('produces them with an unrolled bidirectional LSTM that matches a direct LSTM', async () => {
    const base = tinyDecoder('opt');
    const P = 3;
    const H = 8;
    const res = applyPtuning(base, { num_virtual_tokens: P, encoder_reparameterization_type: 'LSTM', encoder_hidden_size: H, encoder_num_layers: 1 }, 4);
    await checkAgainstExplicitPrompt(res.fragment, base, res.info.table, P);
    // Direct LSTM in float64 on the same weights.
    const w = (n: string) => tensorToNumbers(res.fragment.graph.initializers.get(`prompt_encoder.default.${n}`)!);
    const emb = w('embedding.weight');
    const sig = (x: number) => 1 / (1 + Math.exp(-x));
    const run = (suffix: string, reverse: boolean): number[][] => {
      const ih = w(`lstm_head.weight_ih_l0${suffix}`), hh = w(`lstm_head.weight_hh_l0${suffix}`);
      const bih = w(`lstm_head.bias_ih_l0${suffix}`), bhh = w(`lstm_head.bias_hh_l0${suffix}`);
      let h = new Array(H).fill(0), c = new Array(H).fill(0);
      const outs: number[][] = [];
      for (let s = 0; s < P; s++) {
        const t = reverse ? P - 1 - s : s;
        const gate = (k: number) => {
          let v = bih[k] + bhh[k];
          for (let j = 0; j < D; j++) v += ih[k * D + j] * emb[t * D + j];
          for (let j = 0; j < H; j++) v += hh[k * H + j] * h[j];
          return v;
        };
        const g = Array.from({ length: 4 * H }, (_, k) => gate(k));
        c = c.map((cv, j) => sig(g[H + j]) * cv + sig(g[j]) * Math.tanh(g[2 * H + j]));
        h = c.map((cv, j) => sig(g[3 * H + j]) * Math.tanh(cv));
        outs[t] = h;
      }
      return outs;
    };
    const fwd = run('', false), bwd = run('_reverse', true);
    const x = fwd.map((row, t) => [...row, ...bwd[t]]);
    const lin = (inp: number[][], name: string, outF: number, inF: number) => {
      const W = w(`${name}.weight`), bb = w(`${name}.bias`);
      return inp.map((row) => Array.from({ length: outF }, (_, o) => row.reduce((acc, v, i) => acc + v * W[o * inF + i], bb[o])));
    };
    const expected = lin(lin(x, 'mlp_head.0', 2 * H, 2 * H).map((r) => r.map((v) => Math.max(0, v))), 'mlp_head.2', D, 2 * H).flat();
    const got = tensorToNumbers((await runFragment(res.fragment, decoderFeeds('opt', 1, 2), [res.info.table]))[res.info.table]);
    expect(maxDiff(got, Float64Array.from(expected))).toBeLessThan(1e-5);
    expect(maxAbsDiff).toBeDefined();
  });
});
