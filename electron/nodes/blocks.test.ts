import { describe, expect, it } from 'vitest';
import { type Tensor, newModel, tensorFromNumbers, tensorToNumbers } from '../onnx/ir.js';
import { runModel } from '../onnx/ort.js';
import type { BuildContext, OnnxFragment } from './types.js';
import {
  type MetaBuildContext,
  NodeBuildError,
  activation,
  applyRope,
  attention,
  causalMask,
  closeScope,
  gatherRows,
  init,
  layerNorm,
  linear,
  openScope,
  paddingMask,
  parameterCount,
  portInput,
  portOutput,
  rmsNorm,
  ropeAt,
  sinusoidTable,
  swiglu,
} from './blocks.js';
import {
  attentionRef,
  batchSlice,
  geluNewRef,
  geluRef,
  layerNormRef,
  linearRef,
  mapRef,
  maxAbsDiff,
  quickGeluRef,
  siluRef,
  vec,
  weightMat,
} from './blocks-reference.test-support.js';

const ctx = (over: Partial<BuildContext> = {}): BuildContext => ({ nodeId: 't', seed: 3, inputShapes: {}, ...over });

function wave(dims: number[], phase = 0): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  return tensorFromNumbers('float32', dims, Array.from({ length: n }, (_, i) => Math.sin(0.37 * i + phase) * 1.5));
}

async function run(frag: OnnxFragment, feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
  return runModel(newModel(frag.graph, frag.opset), feeds);
}

describe('layers', () => {
  it('linear, activations, LayerNorm, RMSNorm and SwiGLU match a direct computation', async () => {
    const s = openScope('test.layers', ctx());
    const x = portInput(s, 'x', 'float32', ['batch_size', 'sequence_length', 8]);
    const y = linear(s, x, 'lin', 8, 6);
    portOutput(s, 'lin', y, ['batch_size', 'sequence_length', 6]);
    for (const act of ['gelu', 'quick_gelu', 'gelu_new', 'silu'] as const) portOutput(s, act, activation(s.b, y, act), []);
    portOutput(s, 'ln', layerNorm(s, x, 'ln', 8, 1e-5), []);
    portOutput(s, 'rms', rmsNorm(s, x, 'rms', 8, 1e-6), []);
    portOutput(s, 'swiglu', swiglu(s, x, { w1: 'w1', w2: 'w2', w3: 'w3' }, { dim: 8, hidden: 12 }), []);
    const frag = closeScope(s);
    const g = frag.graph;
    // Non-trivial norm weights so the affine part is checked too.
    for (const n of ['ln.weight', 'ln.bias', 'rms.weight']) {
      const t = g.initializers.get(n) as Tensor;
      const d = t.data as Float32Array;
      for (let i = 0; i < d.length; i++) d[i] += 0.1 * Math.cos(i);
    }
    const xIn = wave([2, 5, 8]);
    const out = await run(frag, { x: xIn });
    for (let b = 0; b < 2; b++) {
      const xb = batchSlice(xIn, b);
      const lin = linearRef(xb, weightMat(g, 'lin.weight'), vec(g, 'lin.bias'));
      expect(maxAbsDiff(batchSlice(out.lin, b).data, lin.data)).toBeLessThan(1e-5);
      expect(maxAbsDiff(batchSlice(out.gelu, b).data, mapRef(lin, geluRef).data)).toBeLessThan(1e-5);
      expect(maxAbsDiff(batchSlice(out.quick_gelu, b).data, mapRef(lin, quickGeluRef).data)).toBeLessThan(1e-5);
      expect(maxAbsDiff(batchSlice(out.gelu_new, b).data, mapRef(lin, geluNewRef).data)).toBeLessThan(1e-5);
      expect(maxAbsDiff(batchSlice(out.silu, b).data, mapRef(lin, siluRef).data)).toBeLessThan(1e-5);
      const ln = layerNormRef(xb, vec(g, 'ln.weight'), vec(g, 'ln.bias'), 1e-5);
      expect(maxAbsDiff(batchSlice(out.ln, b).data, ln.data)).toBeLessThan(1e-5);
      const rw = vec(g, 'rms.weight');
      const rms = mapRef(xb, (v) => v);
      for (let r = 0; r < xb.rows; r++) {
        let ms = 0;
        for (let c = 0; c < 8; c++) ms += xb.data[r * 8 + c] ** 2;
        const inv = 1 / Math.sqrt(ms / 8 + 1e-6);
        for (let c = 0; c < 8; c++) rms.data[r * 8 + c] = xb.data[r * 8 + c] * inv * rw[c];
      }
      expect(maxAbsDiff(batchSlice(out.rms, b).data, rms.data)).toBeLessThan(1e-5);
      const gate = mapRef(linearRef(xb, weightMat(g, 'w1.weight')), siluRef);
      const up = linearRef(xb, weightMat(g, 'w3.weight'));
      const prod = mapRef(gate, (v) => v);
      for (let i = 0; i < prod.data.length; i++) prod.data[i] *= up.data[i];
      const sw = linearRef(prod, weightMat(g, 'w2.weight'));
      expect(maxAbsDiff(batchSlice(out.swiglu, b).data, sw.data)).toBeLessThan(1e-5);
    }
  });
});

describe('attention', () => {
  it('self-attention with causal and padding masks matches a reference implementation', async () => {
    const s = openScope('test.attention', ctx());
    const x = portInput(s, 'x', 'float32', ['batch_size', 'sequence_length', 16]);
    const m = portInput(s, 'mask', 'int64', ['batch_size', 'sequence_length']);
    const mask = s.b.add(causalMask(s.b, x), paddingMask(s.b, m));
    const names = { q: 'q', k: 'k', v: 'v', out: 'o' };
    portOutput(s, 'y', attention(s, x, x, names, { dim: 16, heads: 4, mask }), []);
    const frag = closeScope(s);
    const g = frag.graph;
    const xIn = wave([2, 6, 16], 0.4);
    const padding = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0];
    const out = await run(frag, { x: xIn, mask: tensorFromNumbers('int64', [2, 6], padding) });
    for (let b = 0; b < 2; b++) {
      const xb = batchSlice(xIn, b);
      const q = linearRef(xb, weightMat(g, 'q.weight'), vec(g, 'q.bias'));
      const k = linearRef(xb, weightMat(g, 'k.weight'), vec(g, 'k.bias'));
      const v = linearRef(xb, weightMat(g, 'v.weight'), vec(g, 'v.bias'));
      const a = attentionRef(q, k, v, 4, (i, j) => j <= i && padding[b * 6 + j] === 1);
      const ref = linearRef(a, weightMat(g, 'o.weight'), vec(g, 'o.bias'));
      expect(maxAbsDiff(batchSlice(out.y, b).data, ref.data)).toBeLessThan(1e-5);
    }
  });

  it('cross-attention reads keys and values from a source of another width and length', async () => {
    const s = openScope('test.xattn', ctx());
    const x = portInput(s, 'x', 'float32', ['batch_size', 'sequence_length', 8]);
    const enc = portInput(s, 'enc', 'float32', ['batch_size', 'enc_len', 12]);
    const names = { q: 'q', k: 'k', v: 'v', out: 'o' };
    portOutput(s, 'y', attention(s, x, enc, names, { dim: 8, kvDim: 12, heads: 2, bias: { k: false } }), []);
    const frag = closeScope(s);
    expect(frag.graph.initializers.has('k.bias')).toBe(false);
    const g = frag.graph;
    const xIn = wave([1, 3, 8]);
    const eIn = wave([1, 7, 12], 1);
    const out = await run(frag, { x: xIn, enc: eIn });
    const q = linearRef(batchSlice(xIn, 0), weightMat(g, 'q.weight'), vec(g, 'q.bias'));
    const k = linearRef(batchSlice(eIn, 0), weightMat(g, 'k.weight'));
    const v = linearRef(batchSlice(eIn, 0), weightMat(g, 'v.weight'), vec(g, 'v.bias'));
    const ref = linearRef(attentionRef(q, k, v, 2), weightMat(g, 'o.weight'), vec(g, 'o.bias'));
    expect(out.y.dims).toEqual([1, 3, 8]);
    expect(maxAbsDiff(tensorToNumbers(out.y), ref.data)).toBeLessThan(1e-5);
  });
});

describe('positions and gathers', () => {
  it('RoPE rotates pairs (i, i + hd/2) by position·θ^(−2i/hd)', async () => {
    const s = openScope('test.rope', ctx());
    const x = portInput(s, 'x', 'float32', ['batch_size', 2, 'sequence_length', 8]);
    const pos = portInput(s, 'position_ids', 'int64', ['batch_size', 'sequence_length']);
    portOutput(s, 'y', applyRope(s.b, x, ropeAt(s, pos, 'rope', 32, 8)), []);
    const frag = closeScope(s);
    expect(frag.weights).toEqual([]); // tables are buffers, not trainable
    const xIn = wave([1, 2, 3, 8]);
    const positions = [0, 5, 17];
    const out = await run(frag, { x: xIn, position_ids: tensorFromNumbers('int64', [1, 3], positions) });
    const xs = tensorToNumbers(xIn);
    const ys = tensorToNumbers(out.y);
    for (let h = 0; h < 2; h++) {
      for (let t = 0; t < 3; t++) {
        for (let i = 0; i < 4; i++) {
          const base = (h * 3 + t) * 8;
          const angle = positions[t] / 10000 ** ((2 * i) / 8);
          const [a, b] = [xs[base + i], xs[base + i + 4]];
          expect(ys[base + i]).toBeCloseTo(a * Math.cos(angle) - b * Math.sin(angle), 5);
          expect(ys[base + i + 4]).toBeCloseTo(b * Math.cos(angle) + a * Math.sin(angle), 5);
        }
      }
    }
  });

  it('sinusoid table: sin in the first half, cos in the second, timescales log-spaced to 10000', () => {
    const t = sinusoidTable(4, 6);
    expect(t[0]).toBe(0);
    expect(t[3]).toBe(1);
    // position 3, channel 2: inc = ln(1e4)/2 → angle = 3·e^(−2·inc) = 3e-4
    expect(t[3 * 6 + 2]).toBeCloseTo(Math.sin(3e-4), 6);
    expect(t[3 * 6 + 5]).toBeCloseTo(Math.cos(3e-4), 6);
    expect(() => sinusoidTable(2, 5)).toThrow(/even width/);
  });

  it('gatherRows picks one row per batch entry', async () => {
    const s = openScope('test.gather', ctx());
    const x = portInput(s, 'x', 'float32', ['batch_size', 'sequence_length', 4]);
    const idx = portInput(s, 'idx', 'int64', ['batch_size']);
    portOutput(s, 'y', gatherRows(s.b, x, idx), []);
    const xIn = wave([3, 5, 4]);
    const out = await run(closeScope(s), { x: xIn, idx: tensorFromNumbers('int64', [3], [4, 0, 2]) });
    expect(out.y.dims).toEqual([3, 4]);
    const xs = tensorToNumbers(xIn);
    const want = [...xs.slice(16, 20), ...xs.slice(20, 24), ...xs.slice(48, 52)];
    expect(maxAbsDiff(tensorToNumbers(out.y), want)).toBe(0);
  });
});

describe('ParamStore', () => {
  const build = (c: BuildContext) => {
    const s = openScope('test.params', c);
    const x = portInput(s, 'x', 'float32', ['batch_size', 4]);
    portOutput(s, 'y', linear(s, x, 'a', 4, 3, { weightInit: init.normal(0.02) }), []);
    return closeScope(s);
  };

  it('draws each weight from a stream named after it, so init is deterministic and order-independent', () => {
    const one = build(ctx());
    const again = build(ctx());
    expect(one.graph.initializers.get('a.weight')?.data).toEqual(again.graph.initializers.get('a.weight')?.data);
    const other = build(ctx({ seed: 4 }));
    expect(other.graph.initializers.get('a.weight')?.data).not.toEqual(one.graph.initializers.get('a.weight')?.data);
    // Creating another weight first does not change 'a.weight'.
    const s = openScope('test.params', ctx());
    s.p.weight('z', [5], init.normal(1));
    s.p.weight('a.weight', [3, 4], init.normal(0.02));
    expect(s.b.graph.initializers.get('a.weight')?.data).toEqual(one.graph.initializers.get('a.weight')?.data);
    const w = tensorToNumbers(one.graph.initializers.get('a.weight') as Tensor);
    expect(Math.max(...w.map(Math.abs))).toBeLessThan(0.1);
    expect(one.weights).toEqual(['a.weight', 'a.bias']);
    expect(parameterCount(one)).toBe(15);
  });

  it('uses supplied tensors by name and rejects wrong shapes, dtypes and unknown names', () => {
    const w = tensorFromNumbers('float32', [3, 4], Array.from({ length: 12 }, (_, i) => i));
    // A file with only some of the weights loads only when the rest are asked for fresh ('*': all it lacks).
    expect(() => build(ctx({ weights: new Map([['a.weight', w]]) }))).toThrow(/lacks 1 of this node's weights \('a\.bias'\)/);
    const frag = build(ctx({ weights: new Map([['a.weight', w]]), freshWeights: ['a.bias'] }));
    expect(Array.from(frag.graph.initializers.get('a.weight')?.data as Float32Array)).toEqual(Array.from(w.data as Float32Array));
    const f16 = tensorFromNumbers('float16', [3], [1, 2, 3]);
    expect(Array.from(build(ctx({ weights: new Map([['a.bias', f16]]), freshWeights: ['*'] })).graph.initializers.get('a.bias')?.data as Float32Array)).toEqual([1, 2, 3]);
    const bad = tensorFromNumbers('float32', [4, 3], new Array(12).fill(0));
    expect(() => build(ctx({ weights: new Map([['a.weight', bad]]) }))).toThrow(
      /test\.params node 't': supplied weight 'a\.weight' has shape \[4,3\], expected \[3,4\]/,
    );
    expect(() => build(ctx({ weights: new Map([['a.bias', tensorFromNumbers('int64', [3], [1, 2, 3])]]), freshWeights: ['*'] }))).toThrow(/int64; a float tensor/);
    expect(() => build(ctx({ weights: new Map([['b.weight', w]]) }))).toThrow(NodeBuildError);
    expect(() => build(ctx({ weights: new Map([['b.weight', w]]) }))).toThrow(/match no initializer: 'b\.weight'.*'a\.weight'/);
  });

  it('meta builds keep dims but allocate no data', () => {
    const meta: MetaBuildContext = { ...ctx(), meta: true };
    const frag = build(meta);
    expect(frag.graph.initializers.get('a.weight')?.dims).toEqual([3, 4]);
    expect(frag.graph.initializers.get('a.weight')?.data.length).toBe(0);
    expect(parameterCount(frag)).toBe(15);
  });
});
