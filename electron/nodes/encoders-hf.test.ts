// The encoder features real Hugging Face checkpoints need: SigLIP's vision and text towers, towers saved without
// their projection or pooler, EVA without q/v biases, and every activation name.

import { describe, expect, it } from 'vitest';
import { type Tensor, tensorToNumbers } from '../onnx/ir.js';
import { type Mat, attentionRef, batchSlice, geluNewRef, layerNormRef, linearRef, mapRef, mat, maxAbsDiff, vec, weightMat } from './blocks-reference.test-support.js';
import { portsOf } from './catalog.js';
import type { BuildContext, OnnxFragment } from './types.js';
import { buildEncoder, encoderDef, ids, metaCount, runFragment, wave } from './encoders.test-support.js';

const def = encoderDef;
const build = (type: string, params: Record<string, unknown> = {}, over: Partial<BuildContext> = {}): OnnxFragment =>
  buildEncoder(type, params, { seed: 5, ...over });
const run = runFragment;

const outputNames = (type: string, params: Record<string, unknown>) => portsOf(def(type), def(type).params.parse(params)).outputs.map((o) => o.name);

describe('encoder.siglip_vit', () => {
  it('builds, runs at batch 1 and 2 with the shapes it declares, and pools with its attention head', async () => {
    const frag = build('encoder.siglip_vit');
    const d = def('encoder.siglip_vit');
    const shapes = d.outputShapes(d.params.parse({}), {});
    expect(shapes).toEqual({ last_hidden_state: ['B', 64, 64], pooler_output: ['B', 64], vision_features: ['B', 64, 64] });
    const one = await run(frag, { pixel_values: wave([1, 3, 64, 64]) });
    const two = await run(frag, { pixel_values: wave([2, 3, 64, 64]) });
    for (const port of Object.keys(shapes)) {
      expect(one[port].dims[0]).toBe(1);
      expect(two[port].dims.slice(1)).toEqual(shapes[port].slice(1));
      const v = tensorToNumbers(two[port]);
      expect(maxAbsDiff(v.subarray(0, v.length / 2), tensorToNumbers(one[port])), port).toBeLessThan(1e-5);
    }
    // Default feature_norm: vision_features = last_hidden_state (post-LN), as PaliGemma and Idefics3 read it.
    expect(maxAbsDiff(tensorToNumbers(one.vision_features), tensorToNumbers(one.last_hidden_state))).toBe(0);
    const raw = await run(build('encoder.siglip_vit', { feature_norm: false, feature_layer: -2 }), { pixel_values: wave([1, 3, 64, 64]) });
    expect(maxAbsDiff(tensorToNumbers(raw.vision_features), tensorToNumbers(one.last_hidden_state))).toBeGreaterThan(1e-3);
    // No CLS token, no pre-LayerNorm; weights named as HF SiglipVisionModel.
    expect(frag.weights).toContain('vision_model.head.attention.in_proj_weight');
    expect(frag.weights).toContain('vision_model.embeddings.patch_embedding.bias');
    expect(frag.weights.some((w) => w.includes('class_embedding') || w.includes('pre_layrnorm'))).toBe(false);
  });

  it('a 1-layer tower matches a direct TypeScript implementation (patches, layer, post-LN, MAP head)', async () => {
    const frag = build('encoder.siglip_vit', { num_layers: 1, image_size: 16 });
    const g = frag.graph;
    const px = wave([2, 3, 16, 16], 0.7);
    const out = await run(frag, { pixel_values: px });
    const pix = tensorToNumbers(px);
    const D = 64;
    const p = 8;
    const grid = 2;
    const pre = 'vision_model';
    const l = `${pre}.encoder.layers.0`;
    const ln = (v: Mat, name: string) => layerNormRef(v, vec(g, `${name}.weight`), vec(g, `${name}.bias`), 1e-6);
    const lin = (v: Mat, name: string) => linearRef(v, weightMat(g, `${name}.weight`), vec(g, `${name}.bias`));
    const add = (a: Mat, b: Mat) => mapRef(a, (v, i) => v + b.data[i]);
    const conv = vec(g, `${pre}.embeddings.patch_embedding.weight`);
    const convB = vec(g, `${pre}.embeddings.patch_embedding.bias`);
    const pos = vec(g, `${pre}.embeddings.position_embedding.weight`);
    const inW = weightMat(g, `${pre}.head.attention.in_proj_weight`);
    const inB = vec(g, `${pre}.head.attention.in_proj_bias`);
    const rows = (m: Mat, a: number, b: number) => mat(b - a, m.cols, m.data.subarray(a * m.cols, b * m.cols));
    for (let b = 0; b < 2; b++) {
      const x = mat(grid * grid, D);
      for (let py = 0; py < grid; py++) {
        for (let pxi = 0; pxi < grid; pxi++) {
          for (let o = 0; o < D; o++) {
            let acc = convB[o];
            for (let ch = 0; ch < 3; ch++) {
              for (let ky = 0; ky < p; ky++) {
                for (let kx = 0; kx < p; kx++) acc += conv[((o * 3 + ch) * p + ky) * p + kx] * pix[((b * 3 + ch) * 16 + py * p + ky) * 16 + pxi * p + kx];
              }
            }
            x.data[(py * grid + pxi) * D + o] = acc + pos[(py * grid + pxi) * D + o];
          }
        }
      }
      const h = ln(x, `${l}.layer_norm1`);
      const x1 = add(x, lin(attentionRef(lin(h, `${l}.self_attn.q_proj`), lin(h, `${l}.self_attn.k_proj`), lin(h, `${l}.self_attn.v_proj`), 4), `${l}.self_attn.out_proj`));
      const x2 = add(x1, lin(mapRef(lin(ln(x1, `${l}.layer_norm2`), `${l}.mlp.fc1`), geluNewRef), `${l}.mlp.fc2`));
      const last = ln(x2, `${pre}.post_layernorm`);
      expect(maxAbsDiff(batchSlice(out.last_hidden_state, b).data, last.data)).toBeLessThan(2e-5);
      // MAP head: probe attends over the tokens through nn.MultiheadAttention's fused in_proj.
      const probe = mat(1, D, vec(g, `${pre}.head.probe`));
      const q = linearRef(probe, rows(inW, 0, D), inB.subarray(0, D));
      const k = linearRef(last, rows(inW, D, 2 * D), inB.subarray(D, 2 * D));
      const v = linearRef(last, rows(inW, 2 * D, 3 * D), inB.subarray(2 * D));
      const a = lin(attentionRef(q, k, v, 4), `${pre}.head.attention.out_proj`);
      const pooled = add(a, lin(mapRef(lin(ln(a, `${pre}.head.layernorm`), `${pre}.head.mlp.fc1`), geluNewRef), `${pre}.head.mlp.fc2`));
      expect(maxAbsDiff(tensorToNumbers(out.pooler_output).subarray(b * D, (b + 1) * D), pooled.data)).toBeLessThan(2e-5);
    }
  });

  it('use_head off drops the pooling head, its weights and pooler_output', async () => {
    const frag = build('encoder.siglip_vit', { use_head: false });
    expect(frag.weights.some((w) => w.startsWith('vision_model.head.'))).toBe(false);
    expect(frag.graph.outputs.map((o) => o.name).sort()).toEqual(['last_hidden_state', 'vision_features']);
    expect(outputNames('encoder.siglip_vit', { use_head: false })).toEqual(['last_hidden_state', 'vision_features']);
    expect(Object.keys(def('encoder.siglip_vit').outputShapes(def('encoder.siglip_vit').params.parse({ use_head: false }), {}))).not.toContain('pooler_output');
  });

  it('real SigLIP shapes build (meta) with the parameter count of their modules', () => {
    const D = 768;
    const mlp = 2 * D * 3072 + 3072 + D;
    const layer = 4 * (D * D + D) + 4 * D + mlp;
    const head = D + 3 * D * D + 3 * D + D * D + D + 2 * D + mlp;
    const base = 3 * 16 * 16 * D + D + 196 * D + 12 * layer + 2 * D + head;
    expect(base).toBe(92_884_224);
    expect(metaCount('encoder.siglip_vit', { preset: 'siglip-base-patch16-224' })).toBe(base);
    expect(def('encoder.siglip_vit').outputShapes(def('encoder.siglip_vit').params.parse({ preset: 'siglip-so400m-patch14-384' }), {})).toMatchObject({
      last_hidden_state: ['B', 729, 1152],
    });
  });
});

describe('encoder.siglip_text', () => {
  it('is bidirectional, pools the last position through its head', async () => {
    const frag = build('encoder.siglip_text');
    const a = await run(frag, { input_ids: ids([[5, 9, 300, 7, 1, 1]]) });
    const b = await run(frag, { input_ids: ids([[5, 9, 300, 8, 1, 1]]) });
    const D = 64;
    const row = (t: Tensor, r: number) => tensorToNumbers(t).subarray(r * D, (r + 1) * D);
    // No causal mask: a later token changes the first row.
    expect(maxAbsDiff(row(a.last_hidden_state, 0), row(b.last_hidden_state, 0))).toBeGreaterThan(1e-4);
    const pooled = linearRef(mat(1, D, row(a.last_hidden_state, 5)), weightMat(frag.graph, 'text_model.head.weight'), vec(frag.graph, 'text_model.head.bias'));
    expect(maxAbsDiff(tensorToNumbers(a.pooler_output), pooled.data)).toBeLessThan(1e-5);
    expect(frag.weights).not.toContain('text_projection.weight');
  });

  it('a connected attention mask keeps padded keys out', async () => {
    const frag = build('encoder.siglip_text', {}, { inputShapes: { input_ids: ['B', 'T'], attention_mask: ['B', 'T'] } });
    const mask = ids([[1, 1, 1, 0, 0]]);
    const a = await run(frag, { input_ids: ids([[5, 9, 300, 1, 1]]), attention_mask: mask });
    const b = await run(frag, { input_ids: ids([[5, 9, 300, 77, 88]]), attention_mask: mask });
    expect(maxAbsDiff(tensorToNumbers(a.last_hidden_state).subarray(0, 3 * 64), tensorToNumbers(b.last_hidden_state).subarray(0, 3 * 64))).toBeLessThan(1e-5);
  });

  it('projection_size sets the pooled width', async () => {
    const out = await run(build('encoder.siglip_text', { projection_size: 32 }), { input_ids: ids([[5, 9, 1]]) });
    expect(out.pooler_output.dims).toEqual([1, 32]);
    expect(metaCount('encoder.siglip_text', { preset: 'siglip-base-patch16-224' })).toBe(
      32000 * 768 + 64 * 768 + 12 * (4 * (768 * 768 + 768) + 4 * 768 + 2 * 768 * 3072 + 3072 + 768) + 2 * 768 + 768 * 768 + 768,
    );
  });
});

describe('towers saved without their projection or pooler', () => {
  it('CLIP ViT and text without projection have no projection weight and no embeds output', async () => {
    const vit = build('encoder.clip_vit', { projection: false });
    expect(vit.weights).not.toContain('visual_projection.weight');
    expect(vit.graph.outputs.map((o) => o.name)).not.toContain('image_embeds');
    expect(outputNames('encoder.clip_vit', { projection: false })).toEqual(['last_hidden_state', 'pooler_output', 'vision_features']);
    expect(outputNames('encoder.clip_vit', {})).toContain('image_embeds');
    const withProj = await run(build('encoder.clip_vit'), { pixel_values: wave([1, 3, 64, 64]) });
    const without = await run(vit, { pixel_values: wave([1, 3, 64, 64]) });
    // Same seed, same names: the tower itself is unchanged by the switch.
    expect(maxAbsDiff(tensorToNumbers(withProj.pooler_output), tensorToNumbers(without.pooler_output))).toBe(0);
    const text = build('encoder.clip_text', { projection: false });
    expect(text.weights).not.toContain('text_projection.weight');
    expect(outputNames('encoder.clip_text', { projection: false })).toEqual(['last_hidden_state', 'pooler_output']);
  });

  it('BERT without its pooler', () => {
    const f = build('encoder.bert', { pooler: false });
    expect(f.weights.some((w) => w.startsWith('pooler.'))).toBe(false);
    expect(outputNames('encoder.bert', { pooler: false })).toEqual(['last_hidden_state']);
  });

  it('EVA without q/v biases, and activations by name', async () => {
    const f = build('encoder.eva_vit', { qkv_bias: false });
    expect(f.weights.some((w) => w.endsWith('q_bias') || w.endsWith('v_bias'))).toBe(false);
    const px = { pixel_values: wave([1, 3, 64, 64]) };
    const gelu = await run(build('encoder.eva_vit'), px);
    const quick = await run(build('encoder.eva_vit', { act: 'quick_gelu' }), px);
    expect(maxAbsDiff(tensorToNumbers(gelu.last_hidden_state), tensorToNumbers(quick.last_hidden_state))).toBeGreaterThan(1e-4);
    for (const act of ['gelu', 'quick_gelu', 'gelu_new', 'relu', 'silu', 'tanh']) {
      expect(() => def('encoder.clip_vit').params.parse({ act })).not.toThrow();
      expect(() => def('encoder.bert').params.parse({ act })).not.toThrow();
    }
    expect(() => def('encoder.clip_vit').params.parse({ act: 'gelu_pytorch_tanh' })).toThrow();
  });
});
