import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../onnx/builder.js';
import { type Tensor, emptyGraph, newModel } from '../onnx/ir.js';
import { createSession, runModel, runSession } from '../onnx/ort.js';
import { assertSupported } from '../onnx/support.js';
import { Rng } from '../engine/rng.js';
import { closeScope, openScope } from './blocks.js';
import { UnetParams, buildUnet, describeUnet, groupNorm, nodeTypes, textTimeEmbedding, timestepEmbedding } from './generators.js';

const f32 = (dims: number[], seed: number, scale = 1): Tensor => {
  const n = dims.reduce((a, d) => a * d, 1);
  return { dtype: 'float32', dims, data: new Rng(seed).fillNormal(new Float32Array(n), scale) };
};
const ts = (values: number[]): Tensor => ({ dtype: 'float32', dims: [values.length], data: Float32Array.from(values) });
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

describe('generator.unet (sd15 preset, describe only)', () => {
  it('has Stable Diffusion 1.5 UNet shapes: 859,520,964 parameters in 686 tensors, without allocating them', () => {
    const before = process.memoryUsage();
    const d = describeUnet(UnetParams.parse({ preset: 'sd15' }));
    const after = process.memoryUsage();
    expect(d.parameterCount).toBe(859_520_964);
    expect(d.weights.length).toBe(686);
    expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(50 * 2 ** 20);
    const shape = (name: string) => d.weights.find((w) => w.name === name)?.shape;
    expect(shape('conv_in.weight')).toEqual([320, 4, 3, 3]);
    expect(shape('time_embedding.linear_1.weight')).toEqual([1280, 320]);
    expect(shape('down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight')).toEqual([320, 768]);
    expect(shape('down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight')).toEqual([2560, 320]);
    expect(shape('down_blocks.3.resnets.1.conv2.weight')).toEqual([1280, 1280, 3, 3]);
    expect(shape('mid_block.attentions.0.proj_in.weight')).toEqual([1280, 1280, 1, 1]);
    expect(shape('up_blocks.3.resnets.2.conv_shortcut.weight')).toEqual([320, 640, 1, 1]);
    expect(shape('up_blocks.0.upsamplers.0.conv.weight')).toEqual([1280, 1280, 3, 3]);
    expect(shape('conv_out.weight')).toEqual([4, 320, 3, 3]);
    expect(shape('down_blocks.3.attentions.0.norm.weight')).toBeUndefined();
  });

  it('reports bad dims naming the field', () => {
    expect(() => describeUnet(UnetParams.parse({ block_out_channels: [32, 60] }))).toThrow(/60 is not divisible by norm_num_groups 8/);
    expect(() => describeUnet(UnetParams.parse({ down_block_types: ['DownBlock2D'] }))).toThrow(/down_block_types has 1/);
    expect(() => UnetParams.parse({ layers: 2 })).toThrow();
  });
});

describe('generator.unet building blocks', () => {
  it('sinusoidal timestep embedding is [cos(t·f), sin(t·f)] with f_i = 10000^(−i/half)', async () => {
    const g = emptyGraph('temb');
    const b = new GraphBuilder(g);
    const t = b.input('t', 'float32', ['B']);
    b.op('Identity', [timestepEmbedding(b, t, 8)], {}, { outputs: ['e'] });
    b.output('e', 'float32', null);
    const out = (await runModel(newModel(g), { t: ts([0, 3, 999]) })).e;
    expect(out.dims).toEqual([3, 8]);
    const e = out.data as Float32Array;
    [0, 3, 999].forEach((tv, bi) => {
      for (let i = 0; i < 4; i++) {
        const arg = tv * 10000 ** (-i / 4);
        expect(e[bi * 8 + i]).toBeCloseTo(Math.cos(arg), 3);
        expect(e[bi * 8 + 4 + i]).toBeCloseTo(Math.sin(arg), 3);
      }
    });
  });

  it('GroupNorm normalises each group over channels and space, then applies the per-channel affine', async () => {
    const gamma = f32([6], 5);
    const beta = f32([6], 6);
    const s = openScope('test.gn', { nodeId: 'gn', seed: 0, inputShapes: {}, weights: new Map([['n.weight', gamma], ['n.bias', beta]]) });
    const x = s.b.input('x', 'float32', ['B', 6, 'H', 'W']);
    s.b.op('Identity', [groupNorm(s, x, 'n', 6, 3, 1e-5)], {}, { outputs: ['y'] });
    s.b.output('y', 'float32', null);
    const g = closeScope(s).graph;
    const input = f32([2, 6, 3, 4], 7, 3);
    const y = (await runModel(newModel(g), { x: input })).y.data as Float32Array;
    const xd = input.data as Float32Array;
    const gd = gamma.data as Float32Array;
    const bd = beta.data as Float32Array;
    for (let bi = 0; bi < 2; bi++)
      for (let grp = 0; grp < 3; grp++) {
        const idx: number[] = [];
        for (let c = grp * 2; c < grp * 2 + 2; c++) for (let p = 0; p < 12; p++) idx.push(bi * 72 + c * 12 + p);
        const mean = idx.reduce((s, i) => s + xd[i], 0) / idx.length;
        const variance = idx.reduce((s, i) => s + (xd[i] - mean) ** 2, 0) / idx.length;
        for (const i of idx) {
          const c = Math.floor((i % 72) / 12);
          expect(y[i]).toBeCloseTo(((xd[i] - mean) / Math.sqrt(variance + 1e-5)) * gd[c] + bd[c], 4);
        }
      }
  });
});

describe('generator.unet (tiny preset) in onnxruntime', () => {
  let session: ort.InferenceSession;
  const params = UnetParams.parse({});
  beforeAll(async () => {
    const frag = buildUnet(params, { nodeId: 'unet', seed: 3, inputShapes: { encoder_hidden_states: ['B', 8, 64] } });
    expect(frag.opset).toBe(17);
    expect(frag.graph.inputs.map((i) => i.name)).toEqual(['sample', 'timestep', 'encoder_hidden_states']);
    expect(frag.graph.outputs.map((o) => o.name)).toEqual(['out_sample']);
    expect(frag.weights).toContain('down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight');
    expect(new Set(frag.graph.nodes.map((n) => n.domain))).toEqual(new Set(['']));
    expect(frag.graph.nodes.some((n) => n.opType === 'GroupNormalization' || n.opType === 'Resize')).toBe(false);
    // Only ops our shape inference and autodiff know (no GroupNormalization/Resize needed).
    assertSupported(newModel(frag.graph, frag.opset), undefined, { requireKnownOps: true });
    session = await createSession(newModel(frag.graph, frag.opset));
  });
  afterAll(async () => {
    await session?.release();
  });

  const sample2 = f32([2, 3, 32, 32], 10);
  const cond2 = f32([2, 8, 64], 11);
  const first = (t: Tensor): Tensor => {
    const per = t.dims.slice(1).reduce((a, d) => a * d, 1);
    return { dtype: 'float32', dims: [1, ...t.dims.slice(1)], data: (t.data as Float32Array).slice(0, per) };
  };
  const run = async (sample: Tensor, t: number[], cond: Tensor) =>
    (await runSession(session, { sample, timestep: ts(t), encoder_hidden_states: cond })).out_sample;

  it('runs at batch 2 and batch 1, and batch elements are independent', async () => {
    const out2 = await run(sample2, [10, 700], cond2);
    expect(out2.dims).toEqual([2, 3, 32, 32]);
    const d2 = out2.data as Float32Array;
    expect(d2.every(Number.isFinite)).toBe(true);
    const out1 = await run(first(sample2), [10], first(cond2));
    expect(out1.dims).toEqual([1, 3, 32, 32]);
    expect(maxAbsDiff(out1.data as Float32Array, d2.subarray(0, 3 * 1024))).toBeLessThan(1e-4);
  });

  it('the output depends on the timestep and, through cross-attention, on the conditioning', async () => {
    const base = (await run(first(sample2), [10], first(cond2))).data as Float32Array;
    const otherT = (await run(first(sample2), [600], first(cond2))).data as Float32Array;
    const otherCond = (await run(first(sample2), [10], f32([1, 8, 64], 99))).data as Float32Array;
    const shorterCond = await run(first(sample2), [10], f32([1, 3, 64], 98)); // any number of conditioning tokens
    expect(maxAbsDiff(base, otherT)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(base, otherCond)).toBeGreaterThan(1e-3);
    expect(shorterCond.dims).toEqual([1, 3, 32, 32]);
  });

  it('supplied weights override the seeded ones; wrong or unknown weights are errors naming node and tensor', async () => {
    const weights = new Map<string, Tensor>([
      ['conv_out.weight', { dtype: 'float32', dims: [3, 32, 3, 3], data: new Float32Array(3 * 32 * 9) }],
      ['conv_out.bias', { dtype: 'float32', dims: [3], data: Float32Array.from([0.5, -1, 2]) }],
    ]);
    expect(() => buildUnet(params, { nodeId: 'u2', seed: 3, inputShapes: {}, weights })).toThrow(/u2.*lacks \d+ of this node's weights/);
    const frag = buildUnet(params, { nodeId: 'u2', seed: 3, inputShapes: {}, weights, freshWeights: ['*'] });
    const out = (await runModel(newModel(frag.graph, frag.opset), { sample: first(sample2), timestep: ts([5]), encoder_hidden_states: first(cond2) })).out_sample;
    const d = out.data as Float32Array;
    expect(d[0]).toBe(0.5);
    expect(d[1024 + 17]).toBe(-1);
    expect(d[2048 + 1023]).toBe(2);
    const bad = new Map([['conv_out.bias', { dtype: 'float32' as const, dims: [4], data: new Float32Array(4) }]]);
    expect(() => buildUnet(params, { nodeId: 'u3', seed: 0, inputShapes: {}, weights: bad })).toThrow(
      /generator.unet node 'u3': supplied weight 'conv_out.bias' has shape \[4\], expected \[3\]/,
    );
    const unknown = new Map([['conv_middle.weight', { dtype: 'float32' as const, dims: [1], data: new Float32Array(1) }]]);
    expect(() => buildUnet(params, { nodeId: 'u4', seed: 0, inputShapes: {}, weights: unknown })).toThrow(/u4.*'conv_middle.weight'/);
  });

  it('the same seed gives the same weights and another seed different ones', () => {
    const a = buildUnet(params, { nodeId: 'a', seed: 1, inputShapes: {} }).graph.initializers.get('conv_in.weight');
    const b = buildUnet(params, { nodeId: 'b', seed: 1, inputShapes: {} }).graph.initializers.get('conv_in.weight');
    const c = buildUnet(params, { nodeId: 'c', seed: 2, inputShapes: {} }).graph.initializers.get('conv_in.weight');
    expect(Array.from(a?.data as Float32Array)).toEqual(Array.from(b?.data as Float32Array));
    expect(maxAbsDiff(a?.data as Float32Array, c?.data as Float32Array)).toBeGreaterThan(0);
  });
});

describe("generator.unet addition_embed_type 'text' (diffusers TextTimeEmbedding)", () => {
  const layerNormRef = (x: number[], g: Float32Array, beta: Float32Array) => {
    const m = x.reduce((a, v) => a + v, 0) / x.length;
    const v = x.reduce((a, u) => a + (u - m) ** 2, 0) / x.length;
    return x.map((u, i) => ((u - m) / Math.sqrt(v + 1e-5)) * g[i] + beta[i]);
  };

  it('pools the conditioning as diffusers does: LayerNorm, attention pooling from mean + position, Linear, LayerNorm', async () => {
    const [Q, D, T, heads] = [5, 8, 12, 2];
    const s = openScope('generator.unet', { nodeId: 'u', seed: 4, inputShapes: {} });
    s.b.input('ctx', 'float32', [1, Q, D]);
    s.b.op('Identity', [textTimeEmbedding(s, 'ctx', D, T, heads)], {}, { outputs: ['pooled'] });
    s.b.output('pooled', 'float32', null);
    const frag = closeScope(s);
    const ctx = f32([1, Q, D], 21);
    const out = (await runModel(newModel(frag.graph, frag.opset), { ctx })).pooled.data as Float32Array;
    const w = (n: string) => frag.graph.initializers.get(`add_embedding.${n}`)!.data as Float32Array;
    const lin = (x: number[], n: string, outDim: number) =>
      Array.from({ length: outDim }, (_, o) => x.reduce((a, v, i) => a + v * w(`${n}.weight`)[o * x.length + i], w(`${n}.bias`)[o]));
    const x = Array.from({ length: Q }, (_, q) => layerNormRef(Array.from((ctx.data as Float32Array).slice(q * D, (q + 1) * D)), w('norm1.weight'), w('norm1.bias')));
    const cls = Array.from({ length: D }, (_, d) => x.reduce((a, r) => a + r[d], 0) / Q + w('pool.positional_embedding')[d]);
    const tokens = [cls, ...x];
    const q = lin(cls, 'pool.q_proj', D);
    const k = tokens.map((t) => lin(t, 'pool.k_proj', D));
    const v = tokens.map((t) => lin(t, 'pool.v_proj', D));
    const dh = D / heads;
    const pooled: number[] = [];
    for (let h = 0; h < heads; h++) {
      const scores = k.map((kk) => kk.slice(h * dh, (h + 1) * dh).reduce((a, u, i) => a + u * q[h * dh + i], 0) / Math.sqrt(dh));
      const mx = Math.max(...scores);
      const e = scores.map((sc) => Math.exp(sc - mx));
      const z = e.reduce((a, u) => a + u, 0);
      for (let i = 0; i < dh; i++) pooled.push(v.reduce((a, vv, j) => a + (e[j] / z) * vv[h * dh + i], 0));
    }
    const ref = layerNormRef(lin(pooled, 'proj', T), w('norm2.weight'), w('norm2.bias'));
    expect(maxAbsDiff(out, ref)).toBeLessThan(1e-4);
  });

  it('lets a UNet without any cross-attention follow the conditioning, independent of token order', async () => {
    const noAttn = { down_block_types: ['DownBlock2D', 'DownBlock2D'], mid_block: false } as const;
    const outputFor = async (extra: Record<string, unknown>, cond: Tensor) => {
      const frag = buildUnet(UnetParams.parse({ ...noAttn, ...extra }), { nodeId: 'u', seed: 5, inputShapes: { encoder_hidden_states: ['B', 4, 64] } });
      return (await runModel(newModel(frag.graph, frag.opset), { sample: f32([1, 3, 32, 32], 30), timestep: ts([300]), encoder_hidden_states: cond })).out_sample.data as Float32Array;
    };
    const c1 = f32([1, 4, 64], 31);
    const c2 = f32([1, 4, 64], 32);
    const reversed: Tensor = { dtype: 'float32', dims: [1, 4, 64], data: Float32Array.from([3, 2, 1, 0].flatMap((i) => Array.from((c1.data as Float32Array).slice(i * 64, (i + 1) * 64)))) };
    expect(maxAbsDiff(await outputFor({}, c1), await outputFor({}, c2))).toBe(0);
    const text = { addition_embed_type: 'text', addition_embed_type_num_heads: 8 };
    const a = await outputFor(text, c1);
    expect(maxAbsDiff(a, await outputFor(text, c2))).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(a, await outputFor(text, reversed))).toBeLessThan(1e-4);
    expect(() => describeUnet(UnetParams.parse({ addition_embed_type: 'text', addition_embed_type_num_heads: 7 }), { encoder_hidden_states: ['B', 4, 64] })).toThrow(
      /cross_attention_dim 64 is not divisible by addition_embed_type_num_heads 7/,
    );
  });
});

describe('generator.unet node type', () => {
  it('is registered with ports, documented params and shape functions', () => {
    const def = nodeTypes.find((d) => d.info.type === 'generator.unet');
    expect(def).toBeDefined();
    if (!def) return;
    for (const key of Object.keys((def.params as unknown as { shape: Record<string, unknown> }).shape)) expect(def.paramDocs[key]).toBeTruthy();
    const p = def.params.parse({ cross_attention_dim: 'auto' });
    expect(def.outputShapes(p, { sample: ['B', 3, 32, 32], encoder_hidden_states: ['B', 8, 96] })).toEqual({ out_sample: ['B', 3, 32, 32] });
    expect(def.inputShapes?.(def.params.parse({ preset: 'sd15', cross_attention_dim: 768 }))).toEqual({
      sample: ['B', 4, 'H', 'W'],
      timestep: ['B'],
      encoder_hidden_states: ['B', 'Q', 768],
    });
    expect(() => def.outputShapes(p, { sample: ['B', 4, 32, 32] })).toThrow(/'sample' has 4 channels but in_channels is 3/);
  });
});
