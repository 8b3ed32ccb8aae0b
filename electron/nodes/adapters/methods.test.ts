import { describe, expect, it } from 'vitest';
import { tensorToNumbers } from '../../onnx/ir.js';
import { buildGradientGraph } from '../../autodiff/gradient.js';
import { applyBottleneck } from './bottleneck.js';
import { modelFromFragment } from './common.js';
import { applyIa3 } from './ia3.js';
import { applyLoraMoe } from './lora-moe.js';
import { decoderFeeds, maxAbsDiff, perturb, runFragment, tinyDecoder } from './fixtures.test-support.js';

describe('bottleneck adapters', () => {
  it('Pfeiffer: after the FFN only; Houlsby: after attention and FFN; identity at init', async () => {
    for (const flavour of ['opt', 'llama', 'gpt2'] as const) {
      const base = tinyDecoder(flavour);
      const feeds = decoderFeeds(flavour, 2, 4, 2, 1);
      const before = await runFragment(base, feeds);
      const pf = applyBottleneck(base, {}, 3);
      expect(pf.info.modules.map((m) => m.position)).toEqual(['ffn', 'ffn']);
      const hb = applyBottleneck(base, { placement: 'houlsby', reduction_factor: 8 }, 3);
      expect(hb.info.modules.map((m) => m.position)).toEqual(['attention', 'attention', 'ffn', 'ffn']);
      expect(hb.info.modules[0].bottleneck).toBe(12);
      for (const res of [pf, hb]) {
        const after = await runFragment(res.fragment, feeds);
        expect(maxAbsDiff(before.logits, after.logits)).toBe(0);
      }
      const up = hb.trainable.find((n) => n.endsWith('adapter_up.weight'))!;
      perturb(hb.fragment, up, 5);
      expect(maxAbsDiff(before.logits, (await runFragment(hb.fragment, feeds)).logits)).toBeGreaterThan(1e-4);
    }
  });
});

describe('IA3', () => {
  it('scales keys, values (outputs) and the FFN down projection (input) with vectors of ones', async () => {
    const base = tinyDecoder('llama');
    const res = applyIa3(base, {}, 1);
    expect(res.info.modules.map((m) => [m.module, m.feedforward])).toEqual([
      ['layers.0.self_attn.k_proj', false], ['layers.0.self_attn.v_proj', false], ['layers.0.mlp.down_proj', true],
      ['layers.1.self_attn.k_proj', false], ['layers.1.self_attn.v_proj', false], ['layers.1.mlp.down_proj', true],
    ]);
    expect(res.fragment.graph.initializers.get('layers.0.self_attn.k_proj.ia3_l.default')!.dims).toEqual([48, 1]);
    expect(res.fragment.graph.initializers.get('layers.0.mlp.down_proj.ia3_l.default')!.dims).toEqual([1, 256]);
    const feeds = decoderFeeds('llama', 2, 4, 3);
    const before = await runFragment(base, feeds);
    expect(maxAbsDiff(before.logits, (await runFragment(res.fragment, feeds)).logits)).toBe(0);
    // Scaling the v_proj output by 2 equals doubling the v_proj weight.
    const v = res.fragment.graph.initializers.get('layers.0.self_attn.v_proj.ia3_l.default')!;
    res.fragment.graph.initializers.set('layers.0.self_attn.v_proj.ia3_l.default', { ...v, data: new Float32Array(48).fill(2) });
    const doubled = { ...base, graph: { ...base.graph, initializers: new Map(base.graph.initializers) } };
    const w = base.graph.initializers.get('layers.0.self_attn.v_proj.weight')!;
    doubled.graph.initializers.set('layers.0.self_attn.v_proj.weight', { ...w, data: (w.data as Float32Array).map((x) => 2 * x) });
    const a = await runFragment(res.fragment, feeds);
    const c = await runFragment(doubled, feeds);
    expect(maxAbsDiff(a.logits, c.logits)).toBeLessThan(1e-5);
  });
});

describe('LoRA-MoE', () => {
  it('is the identity at init, routes top-k, exposes the load-balancing loss, and is differentiable', async () => {
    const base = tinyDecoder('opt');
    const res = applyLoraMoe(base, { r: 4, num_experts: 4, top_k: 2, target_modules: ['v_proj'] }, 9);
    expect(res.info.auxLosses).toEqual(['layers.0.self_attn.v_proj.moe_aux_loss', 'layers.1.self_attn.v_proj.moe_aux_loss']);
    const feeds = decoderFeeds('opt', 2, 5, 4);
    const before = await runFragment(base, feeds);
    const after = await runFragment(res.fragment, feeds);
    expect(maxAbsDiff(before.logits, after.logits)).toBe(0);
    // Balanced routing gives aux = 1; any routing gives aux ≥ ... > 0 and ≤ E.
    for (const name of res.info.auxLosses) {
      const v = tensorToNumbers(after[name])[0];
      expect(after[name].dims).toEqual([]);
      expect(v).toBeGreaterThan(0.5);
      expect(v).toBeLessThanOrEqual(4);
    }
    for (const m of res.info.modules) for (const e of m.experts) perturb(res.fragment, e.loraB, 3, 0.1);
    expect(maxAbsDiff(before.logits, (await runFragment(res.fragment, feeds)).logits)).toBeGreaterThan(1e-4);
    // The aux loss has a gradient w.r.t. the router (through the mean probabilities), the logits w.r.t. the experts.
    const model = modelFromFragment(res.fragment);
    const router = res.info.modules[0].router;
    const { model: withGrad, grads } = buildGradientGraph(model, { loss: res.info.auxLosses[0], wrt: [router] });
    const g = await runFragment({ graph: withGrad.graph, opset: withGrad.opsets[''], weights: [] }, feeds);
    expect(tensorToNumbers(g[grads.get(router)!]).some((x) => x !== 0)).toBe(true);
  });
});
