import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tensorToNumbers } from '../../onnx/ir.js';
import { loadModel } from '../../onnx/proto.js';
import { readSafetensors } from '../../onnx/safetensors.js';
import { runModel } from '../../onnx/ort.js';
import { buildGradientGraph } from '../../autodiff/gradient.js';
import { attachWeightedLoss, finiteDifferenceGradients, promoteInitializersToInputs } from '../../autodiff/gradcheck.js';
import { fragmentFromModel, modelFromFragment } from './common.js';
import { applyAdapter, applyAdapters } from './index.js';
import { applyLora } from './lora.js';
import { readPeftAdapter, saveMergedModel, savePeftAdapter } from './peft-format.js';
import { decoderFeeds, loadGpt2Fixture, maxAbsDiff, perturb, randomFloats, runFragment, tinyDecoder } from './fixtures.test-support.js';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'peft-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('PEFT format', () => {
  it('writes LoRA as peft does and reads it back to the same outputs', async () => {
    const base = tinyDecoder('opt');
    const res = applyAdapter(base, { id: 'a', method: 'lora', config: { r: 4, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'] } }, 3);
    for (const n of res.trainable) if (n.includes('lora_B')) perturb(res.fragment, n, 7, 0.05);
    const dir = tempDir();
    await savePeftAdapter(dir, 'lora', res);
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 16, lora_dropout: 0, bias: 'none', task_type: 'CAUSAL_LM', use_rslora: false, target_modules: ['q_proj', 'v_proj'] });
    const st = readSafetensors(join(dir, 'adapter_model.safetensors'));
    expect([...st.tensors.keys()].sort()).toContain('base_model.model.layers.0.self_attn.q_proj.lora_A.weight');
    expect(st.tensors.get('base_model.model.layers.1.self_attn.v_proj.lora_B.weight')!.dims).toEqual([96, 4]);
    expect(st.metadata.format).toBe('pt');
    const loaded = readPeftAdapter(dir);
    const again = applyAdapter(base, { id: 'b', ...loaded.spec }, 99, { weights: loaded.weights });
    const feeds = decoderFeeds('opt', 2, 4, 5);
    expect(maxAbsDiff((await runFragment(res.fragment, feeds)).logits, (await runFragment(again.fragment, feeds)).logits)).toBe(0);
  });

  it('reads a plain peft LoRA folder (no Composer metadata) from adapter_config.json', async () => {
    const base = tinyDecoder('opt');
    const res = applyLora(base, { r: 2, lora_alpha: 4, use_rslora: true }, 3);
    const dir = tempDir();
    const files = await savePeftAdapter(dir, 'lora', res);
    // Rewrite the safetensors without the metadata, as peft itself would.
    const { writeSafetensors } = await import('../../onnx/safetensors.js');
    writeSafetensors(join(dir, 'adapter_model.safetensors'), files.tensors, { format: 'pt' });
    const loaded = readPeftAdapter(dir);
    expect(loaded.spec).toEqual({ method: 'lora', config: { r: 2, lora_alpha: 4, lora_dropout: 0, use_rslora: true, target_modules: expect.any(Array) } });
    expect(loaded.weights.has('layers.0.self_attn.q_proj.lora_A.default.weight')).toBe(true);
  });

  it('saves prompt-learning adapters as the evaluated prompt_embeddings table and loads them for inference', async () => {
    const base = tinyDecoder('opt');
    const feeds = decoderFeeds('opt', 2, 4, 5);
    for (const [method, config] of [
      ['prefix', { num_virtual_tokens: 2 }],
      ['ptuning', { num_virtual_tokens: 3 }],
      ['prompt', { num_virtual_tokens: 3 }],
    ] as const) {
      const res = applyAdapter(base, { id: 'p', method, config }, 4);
      const dir = tempDir();
      const files = await savePeftAdapter(dir, method, res);
      expect([...files.tensors.keys()]).toEqual(['prompt_embeddings']);
      const loaded = readPeftAdapter(dir);
      const again = applyAdapter(base, { id: 'q', ...loaded.spec }, 0, { weights: loaded.weights });
      const a = await runFragment(res.fragment, feeds);
      const b = await runFragment(again.fragment, feeds);
      expect(maxAbsDiff(a.logits, b.logits)).toBeLessThan(1e-5);
    }
  });

  it('round-trips IA3 and exports a merged LoRA model file', async () => {
    const base = tinyDecoder('llama');
    const ia3 = applyAdapter(base, { id: 'i', method: 'ia3', config: {} }, 1);
    perturb(ia3.fragment, ia3.trainable[0], 3, 0.5);
    const dir = tempDir();
    await savePeftAdapter(dir, 'ia3', ia3);
    const st = readSafetensors(join(dir, 'adapter_model.safetensors'));
    expect(st.tensors.has('base_model.model.layers.0.self_attn.k_proj.ia3_l')).toBe(true);
    const loaded = readPeftAdapter(dir);
    const again = applyAdapter(base, { id: 'j', ...loaded.spec }, 2, { weights: loaded.weights });
    const feeds = decoderFeeds('llama', 1, 3, 2);
    expect(maxAbsDiff((await runFragment(ia3.fragment, feeds)).logits, (await runFragment(again.fragment, feeds)).logits)).toBe(0);

    const lora = applyLora(base, { r: 2 }, 1);
    for (const n of lora.trainable) if (n.includes('lora_B')) perturb(lora.fragment, n, 4, 0.1);
    const path = join(tempDir(), 'merged.onnx');
    saveMergedModel(path, lora);
    const merged = loadModel(path);
    const out = await runModel(merged, feeds);
    expect(maxAbsDiff(out.logits, (await runFragment(lora.fragment, feeds)).logits)).toBeLessThan(2e-5);
  });

  it('applies a node’s adapter list in order and collects trainables and aux losses', () => {
    const applied = applyAdapters(tinyDecoder('opt'), [
      { id: 'l', method: 'lora', config: { target_modules: ['q_proj'] } },
      { id: 'm', method: 'lora-moe', config: { target_modules: ['fc1'], num_experts: 2, top_k: 1 } },
    ], 5, { what: "node 'llm'" });
    expect(applied.trainable).toContain('layers.0.self_attn.q_proj.lora_A.default.weight');
    expect(applied.auxLosses).toEqual([
      { output: 'layers.0.fc1.moe_aux_loss', coefficient: 0.01 },
      { output: 'layers.1.fc1.moe_aux_loss', coefficient: 0.01 },
    ]);
    expect(() => applyAdapters(tinyDecoder('opt'), [{ id: 'z', method: 'lora', config: { target_modules: ['nope'] } }], 1, { what: "node 'llm'" })).toThrow(
      /node 'llm': adapter 'z' \(lora\): target_modules \[nope\]/,
    );
  });
});

describe('differentiability', () => {
  it('LoRA on the imported gpt2 fixture: gradients w.r.t. the LoRA weights match finite differences', async () => {
    const frag = fragmentFromModel(loadGpt2Fixture());
    const res = applyLora(frag, { r: 2, lora_alpha: 4, target_modules: ['c_attn', 'mlp_proj'] }, 3);
    // Non-zero B so that dL/dA is non-zero too.
    for (const n of res.trainable) if (n.includes('lora_B')) perturb(res.fragment, n, 8, 0.05);
    const wrt = ['h.0.c_attn.lora_A.default.weight', 'h.0.c_attn.lora_B.default.weight', 'h.1.mlp_proj.lora_B.default.weight'];
    const { model: promoted, values } = promoteInitializersToInputs(modelFromFragment(res.fragment), wrt);
    const { model, loss } = attachWeightedLoss(promoted, { logits: randomFloats([2, 8, 64], 5) }, ['logits']);
    const ids = { dtype: 'int64' as const, dims: [2, 8], data: BigInt64Array.from({ length: 16 }, (_, i) => BigInt((i * 5) % 64)) };
    const feeds = { input_ids: ids, ...values };
    const inputShapes = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, v.dims]));
    const { model: withGrads, grads } = buildGradientGraph(model, { loss, wrt, inputShapes });
    const analytic = await runModel(withGrads, feeds);
    const fd = await finiteDifferenceGradients(model, feeds, wrt, loss, { maxElementsPerTensor: 6, step: 1e-2 });
    for (const w of wrt) {
      const g = tensorToNumbers(analytic[grads.get(w)!]);
      expect(g.some((x) => x !== 0)).toBe(true);
      fd[w].indices.forEach((idx, k) => {
        const expected = fd[w].values[k];
        // Central differences of a float32 forward pass carry ~3e-3 of rounding noise here; a wrong rule is off by O(1).
        expect(Math.abs(g[idx] - expected)).toBeLessThanOrEqual(1e-3 * Math.abs(expected) + 5e-3);
      });
    }
  });
});
