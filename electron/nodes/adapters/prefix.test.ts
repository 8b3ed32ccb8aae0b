import { describe, expect, it } from 'vitest';
import { type Tensor, tensorFromNumbers, tensorToNumbers } from '../../onnx/ir.js';
import { headDim, pastKeyName, pastValueName, resolveDecoderConfig } from '../llms.js';
import { fragmentFromModel } from './common.js';
import { applyPrefix, findAttentionSites } from './prefix.js';
import { decoderFeeds, loadGpt2Fixture, maxAbsDiff, runFragment, tinyDecoder } from './fixtures.test-support.js';

/** Layer i's prefix keys or values [B, kvH, P, hd] read out of the peft table [P, 2·L·td]. */
function prefixAsPast(table: Tensor, layerSlot: number, batch: number, kvH: number, hd: number): Tensor {
  const [P, width] = table.dims;
  const td = kvH * hd;
  const src = tensorToNumbers(table);
  const out = new Float32Array(batch * kvH * P * hd);
  for (let bIdx = 0; bIdx < batch; bIdx++)
    for (let h = 0; h < kvH; h++)
      for (let p = 0; p < P; p++)
        for (let d = 0; d < hd; d++) out[((bIdx * kvH + h) * P + p) * hd + d] = src[p * width + layerSlot * td + h * hd + d];
  return { dtype: 'float32', dims: [batch, kvH, P, hd], data: out };
}

describe('prefix tuning / P-tuning v2', () => {
  it('finds one attention per layer in built and imported graphs', () => {
    expect(findAttentionSites(tinyDecoder('opt').graph)).toHaveLength(2);
    expect(findAttentionSites(tinyDecoder('llama').graph)).toHaveLength(2);
    expect(findAttentionSites(fragmentFromModel(loadGpt2Fixture()).graph)).toHaveLength(2);
  });

  for (const flavour of ['opt', 'llama'] as const) {
    it(`equals feeding the prefix as past keys/values with a padded mask (${flavour})`, async () => {
      const base = tinyDecoder(flavour);
      const P = 3;
      const res = applyPrefix(base, { num_virtual_tokens: P }, 4, {}, 'ptuning-v2');
      const cfg = resolveDecoderConfig({ preset: 'tiny', flavour });
      expect(res.info.tokenDim).toBe(cfg.numKvHeads * headDim(cfg));
      expect(res.trainable).toEqual(['prompt_encoder.default.embedding.weight']);
      const table = res.fragment.graph.initializers.get(res.info.table)!;
      expect(table.dims).toEqual([P, 2 * cfg.numLayers * res.info.tokenDim]);
      const batch = 2;
      const seq = 5;
      const feeds = decoderFeeds(flavour, batch, seq, 3, 2); // first row: two padded positions
      const adapted = await runFragment(res.fragment, feeds);
      const withPast: Record<string, Tensor> = { ...feeds };
      for (let l = 0; l < cfg.numLayers; l++) {
        withPast[pastKeyName(l)] = prefixAsPast(table, 2 * l, batch, cfg.numKvHeads, headDim(cfg));
        withPast[pastValueName(l)] = prefixAsPast(table, 2 * l + 1, batch, cfg.numKvHeads, headDim(cfg));
      }
      const mask = tensorToNumbers(feeds.attention_mask);
      withPast.attention_mask = tensorFromNumbers('int64', [batch, P + seq], Array.from({ length: batch * (P + seq) }, (_, i) => {
        const t = i % (P + seq);
        return t < P ? 1 : mask[Math.floor(i / (P + seq)) * seq + t - P];
      }));
      const reference = await runFragment(base, withPast);
      expect(adapted.logits.dims).toEqual([batch, seq, cfg.vocabSize]);
      expect(maxAbsDiff(adapted.logits, reference.logits)).toBeLessThan(1e-4);
      // The KV-cache outputs do not contain the prefix.
      expect(adapted[`present.0.key`].dims[2]).toBe(seq);
      // And the prefix matters.
      const plain = await runFragment(base, feeds);
      expect(maxAbsDiff(adapted.logits, plain.logits)).toBeGreaterThan(1e-3);
    });
  }

  it('reparameterises through an MLP by default and pads the boolean causal mask of an imported GPT-2', async () => {
    const frag = fragmentFromModel(loadGpt2Fixture());
    const res = applyPrefix(frag, { num_virtual_tokens: 2 }, 1);
    expect(res.trainable).toEqual([
      'prompt_encoder.default.embedding.weight',
      'prompt_encoder.default.transform.0.weight',
      'prompt_encoder.default.transform.0.bias',
      'prompt_encoder.default.transform.2.weight',
      'prompt_encoder.default.transform.2.bias',
    ]);
    const ids = { dtype: 'int64' as const, dims: [2, 8], data: BigInt64Array.from({ length: 16 }, (_, i) => BigInt(i % 64)) };
    const out = await runFragment(res.fragment, { input_ids: ids });
    expect(out.logits.dims).toEqual([2, 8, 64]);
    // Causality still holds for real tokens: changing the last token leaves earlier logits unchanged.
    const ids2 = { ...ids, data: BigInt64Array.from(ids.data as BigInt64Array) };
    (ids2.data as BigInt64Array)[7] = 50n;
    const out2 = await runFragment(res.fragment, { input_ids: ids2 });
    const a = tensorToNumbers(out.logits);
    const c = tensorToNumbers(out2.logits);
    let early = 0;
    for (let i = 0; i < 7 * 64; i++) early = Math.max(early, Math.abs(a[i] - c[i]));
    expect(early).toBeLessThan(1e-6);
  });

  it('names the config field for a layer that does not exist', () => {
    expect(() => applyPrefix(tinyDecoder('opt'), { layers: [5] }, 1, { what: "adapter 'p'" })).toThrow(/adapter 'p': config field 'layers' has 5/);
  });
});
