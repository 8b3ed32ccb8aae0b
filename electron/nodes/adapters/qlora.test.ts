import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../onnx/builder.js';
import { emptyGraph, tensorToNumbers } from '../../onnx/ir.js';
import { AdapterError } from './common.js';
import { mergeLora } from './lora.js';
import {
  DYNAMIC_MAP,
  NF4_CODE,
  bitsPerParameter,
  dequantizeNf4,
  nf4Absmax,
  nf4StorageBits,
  quantizeNf4,
  replaceWithNf4,
} from './nf4.js';
import { applyQlora } from './qlora.js';
import { decoderFeeds, maxAbsDiff, randomFloats, runFragment, tinyDecoder } from './fixtures.test-support.js';

const MAX_HALF_GAP = Math.max(...NF4_CODE.slice(1).map((c, i) => (c - NF4_CODE[i]) / 2));

describe('NF4', () => {
  it('has the bitsandbytes code values and dynamic map', () => {
    expect(NF4_CODE).toHaveLength(16);
    expect(NF4_CODE[7]).toBe(0);
    expect(NF4_CODE[8]).toBe(0.07958029955625534);
    expect(DYNAMIC_MAP).toHaveLength(256);
    expect(DYNAMIC_MAP[255]).toBe(1);
    expect(DYNAMIC_MAP.includes(0)).toBe(true);
    // Smallest magnitude: 1e-6 × mean(0.1, 1).
    expect(Math.min(...Array.from(DYNAMIC_MAP).filter((v) => v > 0))).toBeCloseTo(0.55e-6, 12);
  });

  it('packs the first element in the high nibble and picks the nearest code', () => {
    const w = quantizeNf4(Float32Array.of(-1, 1, 0, 0.08, -0.3, 0.5, 0.7, 0.2), [2, 4], { doubleQuant: false });
    expect(Array.from(w.packed.slice(0, 4))).toEqual([(0 << 4) | 15, (7 << 4) | 8, (4 << 4) | 12, (14 << 4) | 9]); // 0.5 is below the 0.501663 threshold
    expect(quantizeNf4(Float32Array.of(1, 0.502), [1, 2], { doubleQuant: false }).packed[0] & 15).toBe(13);
    expect(Array.from(w.absmax!)).toEqual([1]);
  });

  it('round-trips within the code spacing (and the absmax error with double quantisation)', () => {
    const values = randomFloats([96, 200], 4).data as Float32Array;
    for (const doubleQuant of [false, true]) {
      const q = quantizeNf4(values, [96, 200], { doubleQuant });
      const back = dequantizeNf4(q);
      const exactAbsmax = quantizeNf4(values, [96, 200], { doubleQuant: false }).absmax!;
      const usedAbsmax = nf4Absmax(q);
      let worst = 0;
      for (let i = 0; i < values.length; i++) {
        const blk = Math.floor(i / 64);
        const bound = MAX_HALF_GAP * exactAbsmax[blk] + Math.abs(exactAbsmax[blk] - usedAbsmax[blk]) + 1e-6;
        worst = Math.max(worst, Math.abs(values[i] - back[i]) / bound);
      }
      expect(worst).toBeLessThanOrEqual(1);
      if (doubleQuant) {
        // The 8-bit absmax is accurate to well under 1% of the largest one.
        const maxA = Math.max(...exactAbsmax);
        for (let k = 0; k < exactAbsmax.length; k++) expect(Math.abs(exactAbsmax[k] - usedAbsmax[k])).toBeLessThan(0.01 * maxA);
      }
    }
  });

  it('stores ≈ 4 + 8/64 + 32/(64·256) bits per parameter with double quantisation', () => {
    const values = randomFloats([256, 256], 9).data as Float32Array;
    const q = quantizeNf4(values, [256, 256]);
    expect(nf4StorageBits(q) / values.length).toBeCloseTo(4 + 8 / 64 + 32 / (64 * 256), 3);
    expect(nf4StorageBits(quantizeNf4(values, [256, 256], { doubleQuant: false })) / values.length).toBe(4.5);
  });

  it('dequantises in the graph exactly as in JS, for both weight layouts', async () => {
    for (const layout of ['out_in', 'in_out'] as const) {
      const graph = emptyGraph('dq');
      const b = new GraphBuilder(graph);
      const w = randomFloats(layout === 'out_in' ? [40, 70] : [70, 40], 3);
      graph.initializers.set('fc.weight', w);
      const q = replaceWithNf4(b, 'fc.weight', layout, { blocksize: 64, doubleQuant: true });
      b.op('Identity', ['fc.weight'], {}, { outputs: ['out'] });
      b.output('out', 'float32', null);
      const out = (await runFragment({ graph, opset: 17, weights: [] }, {})).out;
      expect(out.dims).toEqual(w.dims);
      const torchOrder = dequantizeNf4(q);
      const got = tensorToNumbers(out);
      for (let o = 0; o < 40; o++)
        for (let i = 0; i < 70; i++) {
          const at = layout === 'out_in' ? o * 70 + i : i * 40 + o;
          expect(got[at]).toBe(torchOrder[o * 70 + i]);
        }
    }
  });
});

describe('QLoRA', () => {
  it('quantises the base, adds LoRA on top, and equals the dequantised base at step 0', async () => {
    const base = tinyDecoder('opt');
    const res = applyQlora(base, { r: 8 }, 2);
    const g = res.fragment.graph;
    expect(res.info.quantized).toHaveLength(12); // every linear but the tied head
    expect(g.initializers.has('layers.0.fc1.weight')).toBe(false);
    expect(g.initializers.get('layers.0.fc1.weight.nf4')!.dtype).toBe('uint8');
    expect(res.fragment.weights.some((w) => w === 'layers.0.fc1.weight')).toBe(false);
    expect(res.trainable).toContain('layers.1.self_attn.v_proj.lora_B.default.weight');
    expect(bitsPerParameter(res.fragment)).toBeGreaterThan(4.12);
    expect(bitsPerParameter(res.fragment)).toBeLessThan(4.2);
    const feeds = decoderFeeds('opt', 2, 5, 6);
    const adapted = await runFragment(res.fragment, feeds);
    // Same graph with the dequantised weights as float initializers: identical at step 0 (B = 0).
    const reference = { ...base, graph: { ...base.graph, initializers: new Map(base.graph.initializers) } };
    const dq = await runFragment(res.fragment, feeds, res.info.quantized);
    for (const name of res.info.quantized) reference.graph.initializers.set(name, dq[name]);
    const ref = await runFragment(reference, feeds);
    expect(maxAbsDiff(adapted.logits, ref.logits)).toBeLessThan(1e-5);
    // And close to the float model (quantisation error only).
    const full = await runFragment(base, feeds);
    const err = maxAbsDiff(adapted.logits, full.logits);
    expect(err).toBeGreaterThan(0);
    expect(err).toBeLessThan(0.2);
  });

  it('refuses to merge into a quantised base', () => {
    const res = applyQlora(tinyDecoder('opt'), { r: 2, quantize_modules: 'targets' }, 2);
    expect(res.info.quantized).toHaveLength(4);
    expect(() => mergeLora(res)).toThrow(AdapterError);
    expect(() => mergeLora(res)).toThrow(/dequantise it first/);
  });
});
