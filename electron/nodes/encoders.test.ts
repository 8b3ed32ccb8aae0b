import { describe, expect, it } from 'vitest';
import { type Tensor, tensorFromNumbers, tensorToNumbers } from '../onnx/ir.js';
import { loadModel } from '../onnx/proto.js';
import { readSafetensors } from '../onnx/safetensors.js';
import { NodeBuildError } from './blocks.js';
import { type Mat, at, attentionRef, batchSlice, layerNormRef, linearRef, mapRef, mat, maxAbsDiff, quickGeluRef, vec, weightMat } from './blocks-reference.test-support.js';
import type { BuildContext, OnnxFragment, ResolvedShapes } from './types.js';
import { buildEncoder, encoderDef, ids, metaCount, runFragment, wave } from './encoders.test-support.js';

const FIXTURES = '/work/shared/fixtures';

const def = encoderDef;
const build = (type: string, params: Record<string, unknown> = {}, over: Partial<BuildContext> = {}): OnnxFragment =>
  buildEncoder(type, params, { seed: 11, ...over });
const run = runFragment;

/** Concrete shape for a port from outputShapes, with 'B' set to the batch. */
function expectedDims(shape: Array<string | number>, batch: number): number[] {
  return shape.map((d) => (d === 'B' ? batch : (d as number)));
}

/** The first item of a batch-2 result. */
function firstItem(t: Tensor): Float64Array {
  const all = tensorToNumbers(t);
  return all.subarray(0, all.length / t.dims[0]);
}

describe('every encoder builds, loads in onnxruntime and runs at batch 1 and 2', () => {
  const cases: Array<{ type: string; feeds: (b: number) => Record<string, Tensor>; inputShapes?: ResolvedShapes; tokens?: number }> = [
    { type: 'encoder.clip_vit', feeds: (b) => ({ pixel_values: wave([b, 3, 64, 64]) }) },
    { type: 'encoder.eva_vit', feeds: (b) => ({ pixel_values: wave([b, 3, 64, 64]) }) },
    { type: 'encoder.clip_text', feeds: (b) => ({ input_ids: ids(Array.from({ length: b }, () => [3, 17, 250, 9, 310])) }), tokens: 5 },
    {
      type: 'encoder.bert',
      feeds: (b) => ({ input_ids: ids(Array.from({ length: b }, () => [101, 7, 8, 102])), attention_mask: ids(Array.from({ length: b }, () => [1, 1, 1, 1])) }),
      inputShapes: { input_ids: ['B', 'T'], attention_mask: ['B', 'T'] },
      tokens: 4,
    },
    { type: 'encoder.whisper_audio', feeds: (b) => ({ input_features: wave([b, 80, 20]) }), inputShapes: { input_features: ['B', 80, 20] } },
  ];
  for (const c of cases) {
    it(c.type, async () => {
      const frag = build(c.type, {}, { inputShapes: c.inputShapes ?? {} });
      const d = def(c.type);
      const shapes = d.outputShapes(d.params.parse({}), c.inputShapes ?? {});
      const one = await run(frag, c.feeds(1));
      const two = await run(frag, c.feeds(2));
      for (const port of d.info.outputs) {
        const want = shapes[port.name].map((x) => (x === 'T' ? (c.tokens as number) : x));
        expect(one[port.name].dims, port.name).toEqual(expectedDims(want, 1));
        expect(two[port.name].dims, port.name).toEqual(expectedDims(want, 2));
        // Same input in both batch rows → the same answer as batch 1.
        expect(maxAbsDiff(firstItem(two[port.name]), tensorToNumbers(one[port.name])), port.name).toBeLessThan(1e-5);
        expect(tensorToNumbers(one[port.name]).every(Number.isFinite)).toBe(true);
      }
      // Graph I/O are named after the ports; every weight is an initializer.
      expect(frag.graph.outputs.map((o) => o.name).sort()).toEqual(d.info.outputs.map((o) => o.name).sort());
      for (const w of frag.weights) expect(frag.graph.initializers.has(w)).toBe(true);
      expect(frag.opset).toBe(17);
      expect(frag.graph.nodes.every((n) => n.domain === '')).toBe(true);
    });
  }
});

describe('initialisation', () => {
  it('is deterministic by seed', async () => {
    const a = build('encoder.clip_vit');
    const b = build('encoder.clip_vit');
    const c = build('encoder.clip_vit', {}, { seed: 12 });
    const w = 'vision_model.encoder.layers.1.self_attn.q_proj.weight';
    expect(a.graph.initializers.get(w)?.data).toEqual(b.graph.initializers.get(w)?.data);
    expect(a.graph.initializers.get(w)?.data).not.toEqual(c.graph.initializers.get(w)?.data);
    const px = { pixel_values: wave([1, 3, 64, 64]) };
    const [ra, rb, rc] = await Promise.all([run(a, px), run(b, px), run(c, px)]);
    expect(maxAbsDiff(tensorToNumbers(ra.image_embeds), tensorToNumbers(rb.image_embeds))).toBe(0);
    expect(maxAbsDiff(tensorToNumbers(ra.image_embeds), tensorToNumbers(rc.image_embeds))).toBeGreaterThan(1e-3);
  });

  it('follows the HF CLIP init scales', () => {
    const f = build('encoder.clip_vit', { preset: 'tiny' });
    const std = (name: string) => {
      const v = tensorToNumbers(f.graph.initializers.get(name) as Tensor);
      return Math.sqrt(v.reduce((s, x) => s + x * x, 0) / v.length);
    };
    // q: D^-0.5·(2L)^-0.5 = 64^-0.5·4^-0.5 = 0.0625; fc1: (2D)^-0.5 = 0.088; class embedding D^-0.5 = 0.125.
    expect(std('vision_model.encoder.layers.0.self_attn.q_proj.weight')).toBeCloseTo(0.0625, 2);
    expect(std('vision_model.encoder.layers.0.mlp.fc1.weight')).toBeCloseTo(0.088, 2);
    expect(std('vision_model.embeddings.class_embedding')).toBeGreaterThan(0.08);
    expect(Array.from(f.graph.initializers.get('vision_model.encoder.layers.0.self_attn.q_proj.bias')?.data as Float32Array).every((x) => x === 0)).toBe(true);
  });

  it('user-supplied weights replace the init by name; wrong names and shapes are errors naming node and tensor', () => {
    const name = 'vision_model.embeddings.class_embedding';
    const mine = tensorFromNumbers('float32', [64], Array.from({ length: 64 }, (_, i) => i / 64));
    expect(() => build('encoder.clip_vit', {}, { weights: new Map([[name, mine]]) })).toThrow(/lacks \d+ of this node's weights/);
    const f = build('encoder.clip_vit', {}, { weights: new Map([[name, mine]]), freshWeights: ['*'] });
    expect(Array.from(f.graph.initializers.get(name)?.data as Float32Array)).toEqual(Array.from(mine.data as Float32Array));
    expect(() => build('encoder.clip_vit', {}, { weights: new Map([[name, tensorFromNumbers('float32', [32], new Array(32).fill(0))]]), freshWeights: ['*'] })).toThrow(
      /encoder\.clip_vit node 'n1': supplied weight 'vision_model\.embeddings\.class_embedding' has shape \[32\], expected \[64\]/,
    );
    expect(() => build('encoder.clip_vit', {}, { weights: new Map([['vision_model.nope', mine]]) })).toThrow(/'vision_model\.nope'/);
  });

  it('rejects impossible dims with a clear error', () => {
    expect(() => build('encoder.clip_vit', { image_size: 60 })).toThrow(/image_size 60 is not a multiple of patch_size 8/);
    expect(() => build('encoder.clip_vit', { num_heads: 5 })).toThrow(/hidden_size 64 is not divisible by num_heads 5/);
    expect(() => build('encoder.clip_vit', { feature_layer: -4 })).toThrow(NodeBuildError);
    expect(() => build('encoder.clip_vit', { feature_layer: -4 })).toThrow(/feature_layer -4 is outside the 2 layers/);
  });
});

describe('real checkpoint shapes build (meta, not run) with the right parameter counts', () => {
  const clipVitCount = (image: number, patch: number, D: number, L: number, mlp: number, proj: number) => {
    const n = (image / patch) ** 2;
    const embeddings = D + 3 * patch * patch * D + (n + 1) * D;
    const layer = 4 * (D * D + D) + 2 * 2 * D + (D * mlp + mlp) + (mlp * D + D);
    return embeddings + 2 * D + L * layer + 2 * D + D * proj;
  };

  it('CLIP ViT-L/14 (224 and 336)', () => {
    // 303,179,776 is the published CLIPVisionModel size of ViT-L/14; plus the 1024→768 visual projection.
    expect(clipVitCount(224, 14, 1024, 24, 4096, 768)).toBe(303_179_776 + 786_432);
    expect(metaCount('encoder.clip_vit', { preset: 'clip-vit-l-14' })).toBe(303_966_208);
    expect(metaCount('encoder.clip_vit', { preset: 'clip-vit-l-14-336' })).toBe(clipVitCount(336, 14, 1024, 24, 4096, 768));
    expect(def('encoder.clip_vit').outputShapes(def('encoder.clip_vit').params.parse({ preset: 'clip-vit-l-14-336', feature_layer: -2 }), {})).toMatchObject({
      vision_features: ['B', 576, 1024],
      last_hidden_state: ['B', 577, 1024],
    });
  });

  it('EVA ViT-g (BLIP-2: 39 layers, q/v biases, ln_vision)', () => {
    const D = 1408;
    const embeddings = D + (257 * D) + 3 * 14 * 14 * D + D;
    const layer = 2 * D + 3 * D * D + 2 * D + (D * D + D) + 2 * D + (D * 6144 + 6144) + (6144 * D + D);
    const total = embeddings + 39 * layer + 2 * D;
    expect(total).toBe(985_897_344);
    expect(metaCount('encoder.eva_vit', { preset: 'eva-vit-g' })).toBe(total);
  });

  it('CLIP text (ViT-L/14 tower), BERT-base and Whisper-base', () => {
    // 123,060,480 = published CLIPTextModel ViT-L/14 size; + 768×768 text_projection.
    expect(metaCount('encoder.clip_text', { preset: 'clip-vit-l-14' })).toBe(123_060_480 + 768 * 768);
    // 109,482,240 = bert-base-uncased BertModel (with pooler).
    expect(metaCount('encoder.bert', { preset: 'bert-base' })).toBe(109_482_240);
    // Whisper-base encoder without the fixed sinusoid table (a buffer, not trainable): 20,590,592 − 1500·512.
    expect(metaCount('encoder.whisper_audio', { preset: 'whisper-base' })).toBe(20_590_592 - 1500 * 512);
  });
});

describe('numerics', () => {
  it('a 1-layer CLIP ViT matches a direct TypeScript implementation', async () => {
    const frag = build('encoder.clip_vit', { num_layers: 1, image_size: 32, select: 'patch' });
    const g = frag.graph;
    const px = wave([2, 3, 32, 32], 0.3);
    const out = await run(frag, { pixel_values: px });
    const pix = tensorToNumbers(px);
    const D = 64;
    const p = 8;
    const grid = 4;
    const conv = vec(g, 'vision_model.embeddings.patch_embedding.weight');
    const pre = 'vision_model';
    const l = `${pre}.encoder.layers.0`;
    for (let b = 0; b < 2; b++) {
      const x = mat(grid * grid + 1, D);
      const cls = vec(g, `${pre}.embeddings.class_embedding`);
      for (let c = 0; c < D; c++) x.data[c] = cls[c];
      for (let py = 0; py < grid; py++) {
        for (let pxi = 0; pxi < grid; pxi++) {
          for (let o = 0; o < D; o++) {
            let acc = 0;
            for (let ch = 0; ch < 3; ch++) {
              for (let ky = 0; ky < p; ky++) {
                for (let kx = 0; kx < p; kx++) {
                  acc += conv[((o * 3 + ch) * p + ky) * p + kx] * pix[((b * 3 + ch) * 32 + py * p + ky) * 32 + pxi * p + kx];
                }
              }
            }
            x.data[(1 + py * grid + pxi) * D + o] = acc;
          }
        }
      }
      const pos = vec(g, `${pre}.embeddings.position_embedding.weight`);
      for (let i = 0; i < x.data.length; i++) x.data[i] += pos[i];
      const ln = (v: Mat, name: string) => layerNormRef(v, vec(g, `${name}.weight`), vec(g, `${name}.bias`), 1e-5);
      const lin = (v: Mat, name: string, bias = true) => linearRef(v, weightMat(g, `${name}.weight`), bias ? vec(g, `${name}.bias`) : undefined);
      const x0 = ln(x, `${pre}.pre_layrnorm`);
      const h = ln(x0, `${l}.layer_norm1`);
      const a = attentionRef(lin(h, `${l}.self_attn.q_proj`), lin(h, `${l}.self_attn.k_proj`), lin(h, `${l}.self_attn.v_proj`), 4);
      const x1 = mapRef(x0, (v) => v);
      const ao = lin(a, `${l}.self_attn.out_proj`);
      for (let i = 0; i < x1.data.length; i++) x1.data[i] += ao.data[i];
      const m = lin(mapRef(lin(ln(x1, `${l}.layer_norm2`), `${l}.mlp.fc1`), quickGeluRef), `${l}.mlp.fc2`);
      const x2 = mapRef(x1, (v) => v);
      for (let i = 0; i < x2.data.length; i++) x2.data[i] += m.data[i];

      expect(maxAbsDiff(batchSlice(out.last_hidden_state, b).data, x2.data)).toBeLessThan(2e-5);
      const clsRow = mat(1, D, x2.data.subarray(0, D));
      const pooled = ln(clsRow, `${pre}.post_layernorm`);
      const pooledOut = tensorToNumbers(out.pooler_output).subarray(b * D, (b + 1) * D);
      expect(maxAbsDiff(pooledOut, pooled.data)).toBeLessThan(2e-5);
      const emb = lin(pooled, 'visual_projection', false);
      expect(maxAbsDiff(tensorToNumbers(out.image_embeds).subarray(b * 64, (b + 1) * 64), emb.data)).toBeLessThan(2e-5);
      expect(maxAbsDiff(batchSlice(out.vision_features, b).data, x2.data.subarray(D))).toBeLessThan(2e-5);
      expect(at(x2, 0, 0)).not.toBe(0);
    }
  });

  it('encoder.eva_vit reproduces the PyTorch vit_tiny fixture once its weights are mapped onto EVA names', async () => {
    // vit_tiny: conv patch embed with bias, CLS, positions, no pre-LN, pre-LN blocks with a fused qkv, erf-GELU and a
    // final norm — the EVA structure. The k part of the qkv bias adds q·b_k to every score of a query, which softmax
    // ignores, so EVA's "k bias = 0" gives the same output.
    const fixture = loadModel(`${FIXTURES}/vit_tiny.onnx`);
    const ref = readSafetensors(`${FIXTURES}/vit_tiny.ref.safetensors`).tensors;
    const init = fixture.graph.initializers;
    const get = (n: string) => {
      const t = init.get(n);
      if (!t) throw new Error(`fixture has no ${n}`);
      return t;
    };
    const weights = new Map<string, Tensor>([
      ['cls_token', get('cls_token')],
      ['pos_embed', get('pos_embed')],
      ['patch_embed.proj.weight', get('patch_embed.weight')],
      ['patch_embed.proj.bias', get('patch_embed.bias')],
      ['ln_vision.weight', get('norm.weight')],
      ['ln_vision.bias', get('norm.bias')],
    ]);
    for (let i = 0; i < 2; i++) {
      const b = `blocks.${i}`;
      for (const n of ['norm1.weight', 'norm1.bias', 'norm2.weight', 'norm2.bias']) weights.set(`${b}.${n}`, get(`${b}.${n}`));
      for (const n of ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']) weights.set(`${b}.mlp.${n}`, get(`${b}.${n}`));
      weights.set(`${b}.attn.qkv.weight`, get(`${b}.qkv.weight`));
      weights.set(`${b}.attn.proj.weight`, get(`${b}.proj.weight`));
      weights.set(`${b}.attn.proj.bias`, get(`${b}.proj.bias`));
      const qkvBias = get(`${b}.qkv.bias`).data as Float32Array;
      weights.set(`${b}.attn.q_bias`, tensorFromNumbers('float32', [32], qkvBias.subarray(0, 32)));
      weights.set(`${b}.attn.v_bias`, tensorFromNumbers('float32', [32], qkvBias.subarray(64, 96)));
    }
    const frag = build(
      'encoder.eva_vit',
      { image_size: 16, patch_size: 4, hidden_size: 32, num_layers: 2, num_heads: 4, intermediate_size: 64, eps: 1e-5 },
      { weights },
    );
    const pixels = ref.get('input.pixel_values') as Tensor;
    const want = ref.get('output.last_hidden_state') as Tensor;
    const out = await run(frag, { pixel_values: pixels });
    expect(out.last_hidden_state.dims).toEqual(want.dims);
    expect(maxAbsDiff(tensorToNumbers(out.last_hidden_state), tensorToNumbers(want))).toBeLessThan(1e-4);
  });

  it('CLIP ViT and EVA feature selection: layer and CLS handling', async () => {
    const px = { pixel_values: wave([1, 3, 64, 64]) };
    const keep = await run(build('encoder.clip_vit', { select: 'cls_patch' }), px);
    expect(maxAbsDiff(tensorToNumbers(keep.vision_features), tensorToNumbers(keep.last_hidden_state))).toBe(0);
    const penult = await run(build('encoder.clip_vit', { feature_layer: -2 }), px);
    expect(penult.vision_features.dims).toEqual([1, 64, 64]);
    expect(maxAbsDiff(tensorToNumbers(penult.vision_features), tensorToNumbers(keep.last_hidden_state).subarray(64))).toBeGreaterThan(1e-3);
    const eva = await run(build('encoder.eva_vit'), px);
    expect(maxAbsDiff(tensorToNumbers(eva.vision_features), tensorToNumbers(eva.last_hidden_state))).toBe(0);
    const evaPatch = await run(build('encoder.eva_vit', { select: 'patch' }), px);
    expect(maxAbsDiff(tensorToNumbers(evaPatch.vision_features), tensorToNumbers(eva.last_hidden_state).subarray(64))).toBe(0);
  });

  it('CLIP text: causal, EOS pooling (argmax, eos id, last unpadded) and projection', async () => {
    const plain = build('encoder.clip_text', { pooling: 'argmax' });
    const a = await run(plain, { input_ids: ids([[5, 9, 300, 7, 2], [5, 9, 3, 8, 310]]) });
    const b = await run(plain, { input_ids: ids([[5, 9, 300, 8, 1], [5, 9, 3, 8, 310]]) });
    const D = 64;
    const row = (t: Tensor, bi: number, r: number) => tensorToNumbers(t).subarray((bi * 5 + r) * D, (bi * 5 + r + 1) * D);
    // Causal: changing tokens 3 and 4 leaves rows 0–2 unchanged.
    for (let r = 0; r < 3; r++) expect(maxAbsDiff(row(a.last_hidden_state, 0, r), row(b.last_hidden_state, 0, r))).toBe(0);
    expect(maxAbsDiff(row(a.last_hidden_state, 0, 3), row(b.last_hidden_state, 0, 3))).toBeGreaterThan(1e-4);
    // argmax pooling: row 0 → position 2 (id 300), row 1 → position 4 (id 310).
    const pooled = tensorToNumbers(a.pooler_output);
    expect(maxAbsDiff(pooled.subarray(0, D), row(a.last_hidden_state, 0, 2))).toBeLessThan(1e-6);
    expect(maxAbsDiff(pooled.subarray(D, 2 * D), row(a.last_hidden_state, 1, 4))).toBeLessThan(1e-6);
    const proj = linearRef(mat(2, D, pooled), weightMat(plain.graph, 'text_projection.weight'));
    expect(maxAbsDiff(tensorToNumbers(a.text_embeds), proj.data)).toBeLessThan(1e-5);

    // The tiny preset pools at the built-in tokenizer's </s> (id 2).
    const tinyDefault = await run(build('encoder.clip_text'), { input_ids: ids([[1, 40, 41, 2, 0]]) });
    expect(maxAbsDiff(tensorToNumbers(tinyDefault.pooler_output), row(tinyDefault.last_hidden_state, 0, 3))).toBeLessThan(1e-6);

    const byEos = await run(build('encoder.clip_text', { pooling: 'eos_id', eos_token_id: 9 }), { input_ids: ids([[5, 9, 300, 9, 2]]) });
    expect(maxAbsDiff(tensorToNumbers(byEos.pooler_output), row(byEos.last_hidden_state, 0, 1))).toBeLessThan(1e-6);

    const withMask = build('encoder.clip_text', { pooling: 'last' }, { inputShapes: { input_ids: ['B', 'T'], attention_mask: ['B', 'T'] } });
    expect(withMask.graph.inputs.map((i) => i.name)).toEqual(['input_ids', 'attention_mask']);
    const m = await run(withMask, { input_ids: ids([[5, 9, 300, 0, 0], [5, 9, 3, 8, 310]]), attention_mask: ids([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]) });
    const mp = tensorToNumbers(m.pooler_output);
    expect(maxAbsDiff(mp.subarray(0, D), row(m.last_hidden_state, 0, 2))).toBeLessThan(1e-6);
    expect(maxAbsDiff(mp.subarray(D), row(m.last_hidden_state, 1, 4))).toBeLessThan(1e-6);
  });

  it('BERT: padded positions do not affect real tokens; token types matter', async () => {
    const shapes = { input_ids: ['B', 'T'], attention_mask: ['B', 'T'], token_type_ids: ['B', 'T'] };
    const f = build('encoder.bert', {}, { inputShapes: shapes });
    const mask = ids([[1, 1, 1, 0, 0]]);
    const zeros = ids([[0, 0, 0, 0, 0]]);
    const a = await run(f, { input_ids: ids([[101, 5, 102, 0, 0]]), attention_mask: mask, token_type_ids: zeros });
    const b = await run(f, { input_ids: ids([[101, 5, 102, 77, 88]]), attention_mask: mask, token_type_ids: zeros });
    const D = 64;
    expect(maxAbsDiff(tensorToNumbers(a.last_hidden_state).subarray(0, 3 * D), tensorToNumbers(b.last_hidden_state).subarray(0, 3 * D))).toBeLessThan(1e-5);
    expect(maxAbsDiff(tensorToNumbers(a.pooler_output), tensorToNumbers(b.pooler_output))).toBeLessThan(1e-5);
    const c = await run(f, { input_ids: ids([[101, 5, 102, 0, 0]]), attention_mask: mask, token_type_ids: ids([[0, 1, 1, 0, 0]]) });
    expect(maxAbsDiff(tensorToNumbers(a.pooler_output), tensorToNumbers(c.pooler_output))).toBeGreaterThan(1e-4);
    // Without a mask every position is attended, so the padding changes the result.
    const unmasked = build('encoder.bert');
    const u1 = await run(unmasked, { input_ids: ids([[101, 5, 102, 0, 0]]) });
    const u2 = await run(unmasked, { input_ids: ids([[101, 5, 102, 77, 88]]) });
    expect(maxAbsDiff(tensorToNumbers(u1.pooler_output), tensorToNumbers(u2.pooler_output))).toBeGreaterThan(1e-4);
  });

  it('Whisper halves the frame rate and accepts any length up to 2·max_source_positions', async () => {
    const f = build('encoder.whisper_audio');
    const d = def('encoder.whisper_audio');
    for (const frames of [7, 20, 256]) {
      const out = await run(f, { input_features: wave([1, 80, frames]) });
      const want = d.outputShapes(d.params.parse({}), { input_features: ['B', 80, frames] }).last_hidden_state;
      expect(out.last_hidden_state.dims).toEqual(expectedDims(want, 1));
    }
    expect(f.weights).not.toContain('embed_positions.weight');
    expect(f.weights).not.toContain('layers.0.self_attn.k_proj.bias');
    expect(f.graph.initializers.has('embed_positions.weight')).toBe(true);
  });
});
