import { describe, expect, it } from 'vitest';
import { tensorToNumbers } from '../../onnx/ir.js';
import { AdapterError, fragmentFromModel } from './common.js';
import { applyLora, loraDelta, mergeLora, unmergeLora } from './lora.js';
import { findLinearLayers, layerIndex, moduleMatches, selectTargets } from './targets.js';
import { decoderFeeds, loadGpt2Fixture, maxAbs, maxAbsDiff, perturb, runFragment, tinyDecoder } from './fixtures.test-support.js';

describe('target matching', () => {
  it('finds the linear layers of every decoder flavour with their layout and sizes', () => {
    const opt = findLinearLayers(tinyDecoder('opt').graph);
    const q = opt.find((l) => l.module === 'layers.0.self_attn.q_proj')!;
    expect(q).toMatchObject({ layout: 'out_in', inFeatures: 96, outFeatures: 96, bias: 'layers.0.self_attn.q_proj.bias' });
    const gpt2 = findLinearLayers(tinyDecoder('gpt2').graph);
    expect(gpt2.find((l) => l.module === 'h.1.attn.c_attn')).toMatchObject({ layout: 'in_out', inFeatures: 96, outFeatures: 288 });
    const llama = findLinearLayers(tinyDecoder('llama').graph);
    expect(llama.find((l) => l.module === 'layers.1.self_attn.k_proj')).toMatchObject({ layout: 'out_in', outFeatures: 48 });
    const fixture = findLinearLayers(fragmentFromModel(loadGpt2Fixture()).graph);
    expect(fixture.map((l) => l.module)).toContain('h.0.c_attn');
  });

  it('matches list entries on dot boundaries and strings as full regexes (PEFT rules)', () => {
    expect(moduleMatches('model.layers.0.self_attn.q_proj', ['q_proj'])).toBe(true);
    expect(moduleMatches('model.layers.0.self_attn.xq_proj', ['q_proj'])).toBe(false);
    expect(moduleMatches('layers.0.self_attn.q_proj', 'layers\\.\\d+\\.self_attn\\.(q|v)_proj')).toBe(true);
    expect(moduleMatches('layers.0.self_attn.q_proj', 'q_proj')).toBe(false);
    expect(layerIndex('model.layers.12.mlp.down_proj')).toBe(12);
    expect(layerIndex('h.3.attn.c_attn', 'h')).toBe(3);
  });

  it('uses the family defaults, honours layers_to_transform and all-linear, and names the config when nothing matches', () => {
    const g = tinyDecoder('opt').graph;
    expect([...selectTargets(g, {}, 'x').keys()]).toEqual([
      'layers.0.self_attn.q_proj', 'layers.0.self_attn.v_proj', 'layers.1.self_attn.q_proj', 'layers.1.self_attn.v_proj',
    ]);
    expect([...selectTargets(g, { layers_to_transform: [1] }, 'x').keys()]).toEqual(['layers.1.self_attn.q_proj', 'layers.1.self_attn.v_proj']);
    const all = [...selectTargets(g, { target_modules: 'all-linear' }, 'x').keys()];
    expect(all).toHaveLength(12);
    expect(all).not.toContain('embed_tokens'); // the tied LM head is excluded
    expect([...selectTargets(tinyDecoder('gpt2').graph, {}, 'x').keys()]).toEqual(['h.0.attn.c_attn', 'h.1.attn.c_attn']);
    expect(() => selectTargets(g, { target_modules: ['nope'] }, "adapter 'a1' on node 'llm'")).toThrow(
      /adapter 'a1' on node 'llm': target_modules \[nope\] match none .*layers\.0\.self_attn\.q_proj/,
    );
  });
});

describe('LoRA', () => {
  it('adds PEFT-named A [r,in] (Kaiming-uniform bound 1/√in) and zero B [out,r], and is the identity at step 0', async () => {
    const base = tinyDecoder('opt');
    const res = applyLora(base, { r: 4, lora_alpha: 8 }, 11);
    const a = res.fragment.graph.initializers.get('layers.0.self_attn.q_proj.lora_A.default.weight')!;
    const bw = res.fragment.graph.initializers.get('layers.0.self_attn.q_proj.lora_B.default.weight')!;
    expect(a.dims).toEqual([4, 96]);
    expect(bw.dims).toEqual([96, 4]);
    expect(maxAbs(a)).toBeLessThanOrEqual(1 / Math.sqrt(96));
    expect(maxAbs(a)).toBeGreaterThan(0.5 / Math.sqrt(96));
    expect(maxAbs(bw)).toBe(0);
    expect(res.trainable).toHaveLength(8);
    expect(res.info.modules[0].scale).toBe(2);
    expect(base.graph.initializers.has('layers.0.self_attn.q_proj.lora_A.default.weight')).toBe(false); // input untouched
    const feeds = decoderFeeds('opt', 2, 5, 3, 2);
    const before = await runFragment(base, feeds);
    const after = await runFragment(res.fragment, feeds);
    expect(maxAbsDiff(before.logits, after.logits)).toBe(0);
  });

  it('computes base + scale·B·A·x and merges/unmerges into the base weight (both layouts)', async () => {
    for (const flavour of ['opt', 'gpt2'] as const) {
      const base = tinyDecoder(flavour);
      const res = applyLora(base, { r: 2, lora_alpha: 3, use_rslora: true }, 5);
      expect(res.info.modules[0].scale).toBeCloseTo(3 / Math.sqrt(2), 12);
      for (const m of res.info.modules) perturb(res.fragment, m.loraB, 99, 0.2);
      const feeds = decoderFeeds(flavour, 2, 4, 8);
      const before = await runFragment(base, feeds);
      const adapted = await runFragment(res.fragment, feeds);
      expect(maxAbsDiff(before.logits, adapted.logits)).toBeGreaterThan(1e-3);
      const merged = mergeLora(res);
      expect(merged.graph.nodes.length).toBe(base.graph.nodes.length);
      expect([...merged.graph.initializers.keys()].some((k) => k.includes('lora_'))).toBe(false);
      const mergedOut = await runFragment(merged, feeds);
      expect(maxAbsDiff(adapted.logits, mergedOut.logits)).toBeLessThan(2e-5);
      const lw = new Map(res.trainable.map((n) => [n, res.fragment.graph.initializers.get(n)!]));
      const unmerged = unmergeLora(merged, res.info, lw);
      const w = res.info.modules[0].weightName;
      const diff = maxAbsDiff(unmerged.graph.initializers.get(w)!, base.graph.initializers.get(w)!);
      expect(diff).toBeLessThan(1e-6);
    }
  });

  it('lays the merge delta out as W[out,in] += s·B·A or W[in,out] += s·(B·A)ᵀ', () => {
    const a = { dtype: 'float32' as const, dims: [1, 2], data: Float32Array.of(1, 2) };
    const b = { dtype: 'float32' as const, dims: [3, 1], data: Float32Array.of(1, 10, 100) };
    expect(Array.from(loraDelta(a, b, 2, 'out_in'))).toEqual([2, 4, 20, 40, 200, 400]);
    expect(Array.from(loraDelta(a, b, 2, 'in_out'))).toEqual([2, 20, 200, 4, 40, 400]);
  });

  it('adds dropout only to training graphs', () => {
    const base = tinyDecoder('opt');
    const infer = applyLora(base, { lora_dropout: 0.1 }, 1);
    const train = applyLora(base, { lora_dropout: 0.1 }, 1, { training: true });
    expect(infer.fragment.graph.nodes.some((n) => n.opType === 'Dropout')).toBe(false);
    expect(train.fragment.graph.nodes.filter((n) => n.opType === 'Dropout')).toHaveLength(4);
  });

  it('applies to the imported gpt2 fixture: identity at init', async () => {
    const model = loadGpt2Fixture();
    const frag = fragmentFromModel(model);
    const res = applyLora(frag, { r: 4, target_modules: ['c_attn', 'c_proj'] }, 3);
    expect(res.info.modules.map((m) => m.module)).toEqual(['h.0.c_attn', 'h.0.c_proj', 'h.1.c_attn', 'h.1.c_proj']);
    const ids = { dtype: 'int64' as const, dims: [2, 8], data: BigInt64Array.from({ length: 16 }, (_, i) => BigInt((i * 7) % 64)) };
    const before = await runFragment(frag, { input_ids: ids });
    const after = await runFragment(res.fragment, { input_ids: ids });
    expect(maxAbsDiff(before.logits, after.logits)).toBe(0);
    expect(tensorToNumbers(after.logits).length).toBe(2 * 8 * 64);
  });

  it('rejects bad configs naming the field', () => {
    const frag = tinyDecoder('opt');
    expect(() => applyLora(frag, { r: 0 }, 1, { what: "adapter 'x'" })).toThrow(/adapter 'x': config field 'r'/);
    expect(() => applyLora(frag, { rank: 4 }, 1)).toThrow(AdapterError);
  });
});

describe('LoRA on the other node builders', () => {
  it('targets query/value of encoder.bert and projector.qformer by default and starts as the identity', async () => {
    const { getNodeType } = await import('../catalog.js');
    const { tensorFromNumbers } = await import('../../onnx/ir.js');
    const bertDef = getNodeType('encoder.bert');
    const bert = bertDef.build!(bertDef.params.parse({}), { nodeId: 'bert', seed: 3, inputShapes: {} });
    const res = applyLora(bert, {}, 1);
    expect(res.info.modules.every((m) => /\.(query|value)$/.test(m.module))).toBe(true);
    expect(res.info.modules.length).toBeGreaterThan(0);
    const ids = tensorFromNumbers('int64', [2, 6], Array.from({ length: 12 }, (_, i) => (i * 3) % 50));
    const feeds = Object.fromEntries(bert.graph.inputs.map((v) => [v.name, v.name === 'input_ids' ? ids : tensorFromNumbers('int64', [2, 6], new Array(12).fill(v.name === 'attention_mask' ? 1 : 0))]));
    const before = await runFragment(bert, feeds);
    const after = await runFragment(res.fragment, feeds);
    expect(maxAbsDiff(before.last_hidden_state, after.last_hidden_state)).toBe(0);
    const qfDef = getNodeType('projector.qformer');
    const qformer = qfDef.build!(qfDef.params.parse({ d_in: 64, d_out: 96 }), { nodeId: 'qf', seed: 3, inputShapes: {} });
    const q = applyLora(qformer, {}, 1);
    expect(q.info.modules.some((m) => m.module.includes('crossattention') && m.module.endsWith('query'))).toBe(true);
  });
});
