import { describe, expect, it } from 'vitest';
import { type Tensor, newModel, tensorFromNumbers, tensorSize, tensorToNumbers } from '../onnx/ir.js';
import { runModel } from '../onnx/ort.js';
import { loadModel } from '../onnx/proto.js';
import { readSafetensors } from '../onnx/safetensors.js';
import { type MetaBuildContext, parameterCount } from './blocks.js';
import { type Mat, addRef, attentionRef, batchSlice, geluRef, layerNormRef, linearRef, mapRef, mat, maxAbsDiff, vec, weightMat } from './blocks-reference.test-support.js';
import { Catalog, describeNodeType } from './catalog.js';
import { nodeTypes as encoderTypes } from './encoders.js';
import { nodeTypes } from './projectors.js';
import { type BuildContext, type NodeTypeDef, type OnnxFragment, type ResolvedShapes, downstreamKey } from './types.js';

const FIXTURES = '/work/shared/fixtures';
const OUT = downstreamKey('image_features');

function def(type: string): NodeTypeDef {
  const d = [...nodeTypes, ...encoderTypes].find((n) => n.info.type === type);
  if (!d) throw new Error(`no node type ${type}`);
  return d;
}

function build(type: string, params: Record<string, unknown>, inputShapes: ResolvedShapes, over: Partial<BuildContext> = {}): OnnxFragment {
  const d = def(type);
  if (!d.build) throw new Error(`${type} has no build`);
  return d.build(d.params.parse(params), { nodeId: 'p1', seed: 5, inputShapes, ...over });
}

async function run(frag: OnnxFragment, feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
  return runModel(newModel(frag.graph, frag.opset), feeds);
}

function wave(dims: number[], phase = 0): Tensor {
  return tensorFromNumbers('float32', dims, Array.from({ length: tensorSize(dims) }, (_, i) => Math.sin(0.071 * i + phase)));
}

function ids(rows: number[][]): Tensor {
  return tensorFromNumbers('int64', [rows.length, rows[0].length], rows.flat());
}

const VIS = { vision_features: ['B', 65, 64], [OUT]: ['B', 'T', 96] };

function firstItem(t: Tensor): Float64Array {
  const all = tensorToNumbers(t);
  return all.subarray(0, all.length / t.dims[0]);
}

function metaCount(type: string, params: Record<string, unknown>, inputShapes: ResolvedShapes): number {
  const d = def(type);
  const ctx: MetaBuildContext = { nodeId: 'meta', seed: 0, inputShapes, meta: true };
  const frag = d.build?.(d.params.parse(params), ctx);
  if (!frag) throw new Error('no fragment');
  return parameterCount(frag);
}

describe('every projector builds, loads in onnxruntime and runs at batch 1 and 2', () => {
  const text = (b: number) => ids(Array.from({ length: b }, () => [4, 8, 15, 16]));
  const cases: Array<{ name: string; type: string; params?: Record<string, unknown>; shapes: ResolvedShapes; feeds: (b: number) => Record<string, Tensor>; want: Record<string, number[]> }> = [
    { name: 'linear', type: 'projector.linear', shapes: VIS, feeds: (b) => ({ vision_features: wave([b, 65, 64]) }), want: { image_features: [65, 96] } },
    {
      name: 'linear (merge 4)',
      type: 'projector.linear',
      params: { merge_factor: 4 },
      shapes: { ...VIS, vision_features: ['B', 64, 64] },
      feeds: (b) => ({ vision_features: wave([b, 64, 64]) }),
      want: { image_features: [16, 96] },
    },
    { name: 'mlp', type: 'projector.mlp', shapes: VIS, feeds: (b) => ({ vision_features: wave([b, 65, 64]) }), want: { image_features: [65, 96] } },
    { name: 'qformer', type: 'projector.qformer', shapes: VIS, feeds: (b) => ({ vision_features: wave([b, 65, 64]) }), want: { image_features: [8, 96], query_output: [8, 64] } },
    {
      name: 'qformer + text (itm)',
      type: 'projector.qformer',
      shapes: { ...VIS, input_ids: ['B', 'T'], attention_mask: ['B', 'T'] },
      feeds: (b) => ({ vision_features: wave([b, 65, 64]), input_ids: text(b), attention_mask: ids(Array.from({ length: b }, () => [1, 1, 1, 0])) }),
      want: { image_features: [8, 96], query_output: [8, 64], text_output: [4, 64] },
    },
    {
      name: 'qformer instruct',
      type: 'projector.qformer',
      params: { mask_mode: 'instruct' },
      shapes: { ...VIS, qformer_input_ids: ['B', 'T'], qformer_attention_mask: ['B', 'T'] },
      feeds: (b) => ({ vision_features: wave([b, 65, 64]), qformer_input_ids: text(b), qformer_attention_mask: ids(Array.from({ length: b }, () => [1, 1, 1, 1])) }),
      want: { image_features: [8, 96], query_output: [8, 64], text_output: [4, 64] },
    },
    { name: 'perceiver', type: 'projector.perceiver', shapes: VIS, feeds: (b) => ({ vision_features: wave([b, 65, 64]) }), want: { image_features: [8, 96] } },
    {
      name: 'gated_xattn',
      type: 'projector.gated_xattn',
      shapes: { hidden_states: ['B', 'T', 96], image_features: ['B', 8, 64], media_locations: ['B', 'T'] },
      feeds: (b) => ({ hidden_states: wave([b, 5, 96]), image_features: wave([b, 8, 64], 1), media_locations: ids(Array.from({ length: b }, () => [0, 1, 0, 0, 0])) }),
      want: { hidden_states_out: [5, 96] },
    },
    { name: 'abstractor', type: 'projector.abstractor', shapes: VIS, feeds: (b) => ({ vision_features: wave([b, 65, 64]) }), want: { image_features: [9, 96] } },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const frag = build(c.type, c.params ?? {}, c.shapes);
      const one = await run(frag, c.feeds(1));
      const two = await run(frag, c.feeds(2));
      expect(Object.keys(one).sort()).toEqual(Object.keys(c.want).sort());
      for (const [port, dims] of Object.entries(c.want)) {
        expect(one[port].dims, port).toEqual([1, ...dims]);
        expect(two[port].dims, port).toEqual([2, ...dims]);
        expect(maxAbsDiff(firstItem(two[port]), tensorToNumbers(one[port])), port).toBeLessThan(1e-5);
        expect(tensorToNumbers(one[port]).every(Number.isFinite)).toBe(true);
      }
      const d = def(c.type);
      const shapes = d.outputShapes(d.params.parse(c.params ?? {}), c.shapes);
      for (const [port, dims] of Object.entries(c.want)) {
        // Symbolic dims (text length) stay symbols; every numeric dim must match what ran.
        shapes[port].slice(1).forEach((d, i) => (typeof d === 'number' ? expect(d, port).toBe(dims[i]) : expect(d).toBe('T')));
      }
      expect(frag.opset).toBe(17);
      expect(frag.graph.nodes.every((n) => n.domain === '')).toBe(true);
    });
  }

  it('is deterministic by seed', async () => {
    const feeds = { vision_features: wave([1, 65, 64]) };
    const a = await run(build('projector.qformer', {}, VIS), feeds);
    const b = await run(build('projector.qformer', {}, VIS), feeds);
    const c = await run(build('projector.qformer', {}, VIS, { seed: 6 }), feeds);
    expect(maxAbsDiff(tensorToNumbers(a.image_features), tensorToNumbers(b.image_features))).toBe(0);
    expect(maxAbsDiff(tensorToNumbers(a.image_features), tensorToNumbers(c.image_features))).toBeGreaterThan(1e-3);
  });
});

describe('widths', () => {
  it("'auto' widths come from the encoder and the consumer; unresolved ones are errors naming node and port", () => {
    const frag = build('projector.mlp', {}, VIS);
    expect(frag.graph.initializers.get('linear_1.weight')?.dims).toEqual([96, 64]);
    expect(() => build('projector.mlp', {}, { vision_features: ['B', 65, 64] })).toThrow(
      /projector\.mlp node 'p1': d_out is 'auto' but the width of the consumer of 'image_features' is not known/,
    );
    expect(() => build('projector.mlp', { d_out: 32 }, {})).toThrow(/d_in is 'auto' but the width of input 'vision_features'/);
    expect(build('projector.mlp', { d_in: 64, d_out: 32 }, {}).graph.initializers.get('linear_2.weight')?.dims).toEqual([32, 32]);
    const d = def('projector.mlp');
    expect(d.outputShapes(d.params.parse({}), { vision_features: ['B', 576, 1024] })).toEqual({ image_features: ['B', 576, 'D_llm'] });
    expect(d.inputShapes?.(d.params.parse({ d_in: 1024 }))).toEqual({ vision_features: ['B', 'N', 1024] });
    expect(() => build('projector.linear', { merge_factor: 4 }, VIS)).toThrow(/65 tokens cannot be merged in groups of merge_factor 4/);
  });
});

describe('MLP and linear projectors', () => {
  it('projector.mlp reproduces the PyTorch mlp_projector fixture with its weights loaded by name', async () => {
    const fixture = loadModel(`${FIXTURES}/mlp_projector.onnx`);
    const ref = readSafetensors(`${FIXTURES}/mlp_projector.ref.safetensors`).tensors;
    const weights = new Map([...fixture.graph.initializers].filter(([k]) => k.startsWith('linear_')));
    const frag = build('projector.mlp', {}, { vision_features: ['B', 17, 32], [OUT]: ['B', 'T', 48] }, { weights });
    const out = await run(frag, { vision_features: ref.get('input.image_features') as Tensor });
    const want = ref.get('output.image_embeds') as Tensor;
    expect(out.image_features.dims).toEqual(want.dims);
    expect(maxAbsDiff(tensorToNumbers(out.image_features), tensorToNumbers(want))).toBeLessThan(1e-5);
  });

  it('projector.mlp (depth 3) equals a direct Float computation from its initializers', async () => {
    const frag = build('projector.mlp', { depth: 3 }, VIS);
    const g = frag.graph;
    const x = wave([2, 65, 64]);
    const out = await run(frag, { vision_features: x });
    for (let b = 0; b < 2; b++) {
      let h = linearRef(batchSlice(x, b), weightMat(g, 'linear_1.weight'), vec(g, 'linear_1.bias'));
      for (const n of ['linear_2', 'linear_3']) h = linearRef(mapRef(h, geluRef), weightMat(g, `${n}.weight`), vec(g, `${n}.bias`));
      expect(maxAbsDiff(batchSlice(out.image_features, b).data, h.data)).toBeLessThan(1e-5);
    }
    expect(frag.weights).toEqual(['linear_1.weight', 'linear_1.bias', 'linear_2.weight', 'linear_2.bias', 'linear_3.weight', 'linear_3.bias']);
  });

  it('projector.linear with merge_factor concatenates adjacent tokens before llama_proj', async () => {
    const frag = build('projector.linear', { merge_factor: 2 }, { vision_features: ['B', 6, 4], [OUT]: ['B', 'T', 5] });
    const x = wave([1, 6, 4]);
    const out = await run(frag, { vision_features: x });
    const merged = mat(3, 8, tensorToNumbers(x));
    const ref = linearRef(merged, weightMat(frag.graph, 'llama_proj.weight'), vec(frag.graph, 'llama_proj.bias'));
    expect(out.image_features.dims).toEqual([1, 3, 5]);
    expect(maxAbsDiff(tensorToNumbers(out.image_features), ref.data)).toBeLessThan(1e-5);
  });
});

describe('Q-Former', () => {
  const withText = { ...VIS, input_ids: ['B', 'T'], attention_mask: ['B', 'T'] };
  const image = wave([1, 65, 64]);
  // A clearly different image (offset and scale differ, so the attention-averaged values differ too).
  const otherImage = tensorFromNumbers('float32', [1, 65, 64], Array.from({ length: 65 * 64 }, (_, i) => 1 + 2 * Math.cos(0.5 * i)));
  const feed = (text: number[], mask = [1, 1, 1, 1]) => ({ vision_features: image, input_ids: ids([text]), attention_mask: ids([mask]) });
  const q = (r: Record<string, Tensor>) => tensorToNumbers(r.query_output);
  const textRow = (r: Record<string, Tensor>, i: number) => tensorToNumbers(r.text_output).subarray(i * 64, (i + 1) * 64);

  it('itc: queries never see the text (same as the query-only pass); itm: they do', async () => {
    const itc = build('projector.qformer', { mask_mode: 'itc' }, withText);
    const itm = build('projector.qformer', { mask_mode: 'itm' }, withText);
    const alone = await run(build('projector.qformer', {}, VIS), { vision_features: image });
    const c1 = await run(itc, feed([4, 8, 15, 16]));
    const c2 = await run(itc, feed([23, 42, 7, 9]));
    expect(maxAbsDiff(q(c1), q(c2))).toBe(0);
    expect(maxAbsDiff(q(c1), q(alone))).toBeLessThan(1e-5);
    const m1 = await run(itm, feed([4, 8, 15, 16]));
    const m2 = await run(itm, feed([23, 42, 7, 9]));
    expect(maxAbsDiff(q(m1), q(m2))).toBeGreaterThan(1e-4);
    // ITC text rows do not see the queries either: they depend on the text only, not on the image.
    const c3 = await run(itc, { ...feed([4, 8, 15, 16]), vision_features: otherImage });
    expect(maxAbsDiff(textRow(c1, 0), textRow(c3, 0))).toBe(0);
    const m3 = await run(itm, { ...feed([4, 8, 15, 16]), vision_features: otherImage });
    expect(maxAbsDiff(textRow(m1, 0), textRow(m3, 0))).toBeGreaterThan(1e-4);
  });

  it('itg: queries see only queries; text sees all queries and earlier text', async () => {
    const itg = build('projector.qformer', { mask_mode: 'itg' }, withText);
    const a = await run(itg, feed([4, 8, 15, 16]));
    const b = await run(itg, feed([4, 8, 99, 16]));
    expect(maxAbsDiff(q(a), q(b))).toBe(0);
    expect(maxAbsDiff(textRow(a, 0), textRow(b, 0))).toBe(0);
    expect(maxAbsDiff(textRow(a, 1), textRow(b, 1))).toBe(0);
    expect(maxAbsDiff(textRow(a, 2), textRow(b, 2))).toBeGreaterThan(1e-4);
    expect(maxAbsDiff(textRow(a, 3), textRow(b, 3))).toBeGreaterThan(1e-4);
    const withOther = await run(itg, { ...feed([4, 8, 15, 16]), vision_features: otherImage });
    expect(maxAbsDiff(textRow(a, 0), textRow(withOther, 0))).toBeGreaterThan(1e-4);
  });

  it('padded text tokens are never attended to', async () => {
    const itm = build('projector.qformer', { mask_mode: 'itm' }, withText);
    const a = await run(itm, feed([4, 8, 15, 16], [1, 1, 0, 0]));
    const b = await run(itm, feed([4, 8, 77, 3], [1, 1, 0, 0]));
    expect(maxAbsDiff(q(a), q(b))).toBeLessThan(1e-6);
    expect(maxAbsDiff(textRow(a, 1), textRow(b, 1))).toBeLessThan(1e-6);
  });

  it('instruct mode reads qformer_input_ids and projects only the query rows', async () => {
    const shapes = { ...VIS, qformer_input_ids: ['B', 'T'] };
    const frag = build('projector.qformer', { mask_mode: 'instruct' }, shapes);
    expect(frag.graph.inputs.map((i) => i.name)).toEqual(['vision_features', 'qformer_input_ids']);
    const out = await run(frag, { vision_features: image, qformer_input_ids: ids([[4, 8, 15]]) });
    const other = await run(frag, { vision_features: image, qformer_input_ids: ids([[5, 9, 1]]) });
    expect(maxAbsDiff(q(out), q(other))).toBeGreaterThan(1e-4); // the instruction steers the queries
    const g = frag.graph;
    const proj = linearRef(batchSlice(out.query_output, 0), weightMat(g, 'language_projection.weight'), vec(g, 'language_projection.bias'));
    expect(maxAbsDiff(tensorToNumbers(out.image_features), proj.data)).toBeLessThan(1e-5);
    expect(() => build('projector.qformer', { mask_mode: 'instruct' }, withText)).toThrow(
      /projector\.qformer node 'p1': input 'input_ids' is connected but mask_mode 'instruct' reads 'qformer_input_ids'/,
    );
  });

  it('cross-attention only every n-th layer; query FFN initialised as a copy of the text FFN', () => {
    const g = build('projector.qformer', {}, withText).graph;
    expect(g.initializers.has('encoder.layer.0.crossattention.self.key.weight')).toBe(true);
    expect(g.initializers.get('encoder.layer.0.crossattention.self.key.weight')?.dims).toEqual([64, 64]);
    expect(g.initializers.has('encoder.layer.1.crossattention.self.key.weight')).toBe(false);
    expect(g.initializers.get('encoder.layer.1.intermediate_query.dense.weight')?.data).toEqual(
      g.initializers.get('encoder.layer.1.intermediate.dense.weight')?.data,
    );
    const every1 = build('projector.qformer', { cross_attention_frequency: 1 }, VIS).graph;
    expect(every1.initializers.has('encoder.layer.1.crossattention.self.key.weight')).toBe(true);
    // Without text, the text embeddings and text FFNs are not built (BLIP-2 stage 2).
    const alone = build('projector.qformer', {}, VIS).graph;
    expect(alone.initializers.has('embeddings.word_embeddings.weight')).toBe(false);
    expect(alone.initializers.has('encoder.layer.0.intermediate.dense.weight')).toBe(false);
  });
});

describe('Flamingo blocks', () => {
  const shapes = { hidden_states: ['B', 'T', 96], image_features: ['B', 8, 64], media_locations: ['B', 'T'] };
  const feeds = { hidden_states: wave([2, 5, 96]), image_features: wave([2, 8, 64], 1), media_locations: ids([[0, 0, 1, 0, 0], [1, 0, 0, 0, 0]]) };

  it('gated xattn is the identity at init (tanh gates start at 0)', async () => {
    const frag = build('projector.gated_xattn', {}, shapes);
    const out = await run(frag, feeds);
    expect(maxAbsDiff(tensorToNumbers(out.hidden_states_out), tensorToNumbers(feeds.hidden_states))).toBe(0);
    expect(frag.weights).toContain('attn_gate');
    expect(frag.weights).toContain('ff_gate');
  });

  it('opened gates let the image in, only from the <image> token on', async () => {
    const weights = new Map([['attn_gate', tensorFromNumbers('float32', [1], [0.5])]]);
    const out = await run(build('projector.gated_xattn', {}, shapes, { weights, freshWeights: ['*'] }), feeds);
    const x = tensorToNumbers(feeds.hidden_states);
    const y = tensorToNumbers(out.hidden_states_out);
    const row = (v: Float64Array, b: number, t: number) => v.subarray((b * 5 + t) * 96, (b * 5 + t + 1) * 96);
    for (const t of [0, 1]) expect(maxAbsDiff(row(y, 0, t), row(x, 0, t))).toBe(0);
    for (const t of [2, 3, 4]) expect(maxAbsDiff(row(y, 0, t), row(x, 0, t))).toBeGreaterThan(1e-4);
    expect(maxAbsDiff(row(y, 1, 0), row(x, 1, 0))).toBeGreaterThan(1e-4);
  });

  it('a 1-layer perceiver matches a direct computation (k/v over [media; latents])', async () => {
    const frag = build('projector.perceiver', { depth: 1, d_out: 32 }, { vision_features: ['B', 5, 32] });
    const g = frag.graph;
    const x = wave([1, 5, 32]);
    const out = await run(frag, { vision_features: x });
    const ln = (v: Mat, n: string) => layerNormRef(v, vec(g, `${n}.weight`), vec(g, `${n}.bias`), 1e-5);
    const lin = (v: Mat, n: string) => linearRef(v, weightMat(g, `${n}.weight`));
    const media = addRef(batchSlice(x, 0), mapRef(mat(5, 32), (_, i) => vec(g, 'media_time_embs')[i % 32]));
    const latents = weightMat(g, 'latents');
    const m = ln(media, 'layers.0.0.norm_media');
    const lat = ln(latents, 'layers.0.0.norm_latents');
    const kvIn = mat(13, 32, [...m.data, ...lat.data]);
    const kv = lin(kvIn, 'layers.0.0.to_kv');
    const half = (from: number) => mat(13, 64, Array.from({ length: 13 * 64 }, (_, i) => kv.data[Math.floor(i / 64) * 128 + from + (i % 64)]));
    const a = attentionRef(lin(lat, 'layers.0.0.to_q'), half(0), half(64), 4);
    const l1 = addRef(latents, lin(a, 'layers.0.0.to_out'));
    const ff = lin(mapRef(lin(ln(l1, 'layers.0.1.0'), 'layers.0.1.1'), geluRef), 'layers.0.1.3');
    const want = ln(addRef(l1, ff), 'norm');
    expect(maxAbsDiff(tensorToNumbers(out.image_features), want.data)).toBeLessThan(2e-5);
  });

  it('perceiver keeps the vision width unless d_out differs (then adds proj)', async () => {
    const same = build('projector.perceiver', { d_out: 64 }, { vision_features: ['B', 65, 64] });
    expect(same.graph.initializers.has('proj.weight')).toBe(false);
    const out = await run(same, { vision_features: wave([2, 65, 64]) });
    expect(out.image_features.dims).toEqual([2, 8, 64]);
    const wider = build('projector.perceiver', {}, VIS);
    expect(wider.graph.initializers.get('proj.weight')?.dims).toEqual([96, 64]);
    expect(wider.graph.initializers.get('layers.0.0.to_kv.weight')?.dims).toEqual([128, 64]);
  });
});

describe('visual abstractor', () => {
  it('appends the learned vit_eos token after the Q projected queries', async () => {
    const frag = build('projector.abstractor', {}, VIS);
    const out = await run(frag, { vision_features: wave([2, 65, 64]) });
    expect(out.image_features.dims).toEqual([2, 9, 96]);
    const eos = vec(frag.graph, 'vit_eos');
    for (let b = 0; b < 2; b++) expect(maxAbsDiff(batchSlice(out.image_features, b).data.subarray(8 * 96), eos)).toBe(0);
  });
});

describe('real checkpoint shapes build (meta, not run) with the right parameter counts', () => {
  it('LLaVA-1.5 MLP, MiniGPT-4 linear, BLIP-2 Q-Former, OpenFlamingo perceiver, mPLUG-Owl abstractor', () => {
    expect(metaCount('projector.mlp', { d_in: 1024, d_out: 4096 }, {})).toBe(1024 * 4096 + 4096 + 4096 * 4096 + 4096);
    expect(metaCount('projector.linear', { d_in: 768, d_out: 4096 }, {})).toBe(768 * 4096 + 4096);
    expect(metaCount('projector.linear', { merge_factor: 4, d_in: 1408, d_out: 4096 }, {})).toBe(5632 * 4096 + 4096);

    const D = 768;
    const lin = (i: number, o: number) => i * o + o;
    const selfAttn = 4 * lin(D, D) + 2 * D;
    const crossAttn = 2 * lin(D, D) + 2 * lin(1408, D) + 2 * D;
    const ffn = lin(D, 3072) + lin(3072, D) + 2 * D;
    const queriesOnly = 32 * D + 2 * D + 12 * (selfAttn + ffn) + 6 * crossAttn + lin(D, 2560);
    expect(metaCount('projector.qformer', { preset: 'blip2', d_out: 2560 }, {})).toBe(queriesOnly);
    const textExtra = 30523 * D + 512 * D + 12 * ffn;
    expect(metaCount('projector.qformer', { preset: 'blip2', d_out: 2560 }, { input_ids: ['B', 'T'] })).toBe(queriesOnly + textExtra);

    const V = 1024;
    const inner = 512;
    const perceiverLayer = 4 * V + V * inner + V * 2 * inner + inner * V + 2 * V + V * 4 * V + 4 * V * V;
    expect(metaCount('projector.perceiver', { preset: 'openflamingo', d_in: V, d_out: V }, {})).toBe(64 * V + V + 6 * perceiverLayer + 2 * V);

    const h = 2816;
    const abstractorLayer = 3 * 2 * V + 4 * lin(V, V) + lin(V, h) * 2 + lin(h, V) + 2 * h;
    expect(metaCount('projector.abstractor', { preset: 'mplug-owl', d_in: V, d_out: 4096 }, {})).toBe(64 * V + 6 * abstractorLayer + lin(V, 4096) + 4096);
  });
});

describe('tiny BLIP-2 front end', () => {
  it('EVA ViT → Q-Former → projection builds and runs quickly', async () => {
    const t0 = performance.now();
    const vit = build('encoder.eva_vit', {}, {});
    const qf = build('projector.qformer', {}, { vision_features: ['B', 65, 64], [OUT]: ['B', 'T', 96] });
    const feats = await run(vit, { pixel_values: wave([1, 3, 64, 64]) });
    const out = await run(qf, { vision_features: feats.vision_features });
    const ms = performance.now() - t0;
    expect(out.image_features.dims).toEqual([1, 8, 96]);
    expect(ms).toBeLessThan(3000);
  });
});

describe('catalogue contract', () => {
  it('encoders and projectors register cleanly, with every param documented and described for the UI', () => {
    const all = [...encoderTypes, ...nodeTypes];
    const catalog = new Catalog(all);
    for (const alias of ['linear', 'mlp', 'qformer', 'perceiver', 'abstractor', 'gated_xattn', 'clip_vit', 'eva', 'bert', 'whisper']) {
      expect(catalog.find(alias), alias).toBeDefined();
    }
    for (const d of all) {
      const info = describeNodeType(d);
      expect(info.doc.summary.length, d.info.type).toBeGreaterThan(40);
      expect(info.doc.usedBy.length, d.info.type).toBeGreaterThan(0);
      for (const p of info.params) expect(p.doc, `${d.info.type}.${p.name}`).not.toBe('');
      expect(Object.keys(d.paramDocs).sort(), d.info.type).toEqual(info.params.map((p) => p.name).sort());
      // Defaults parse, and the default output shapes name every declared output.
      const shapes = d.outputShapes(d.params.parse({}), {});
      for (const o of d.info.outputs) if (!o.optional) expect(shapes[o.name], `${d.info.type}.${o.name}`).toBeDefined();
    }
    const dOut = describeNodeType(def('projector.mlp')).params.find((p) => p.name === 'd_out');
    expect(dOut).toMatchObject({ kind: 'int', default: 'auto', options: ['auto'] });
  });
});
