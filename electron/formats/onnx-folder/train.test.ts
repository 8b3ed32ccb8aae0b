// Training through imported ONNX-folder decoders: adapters attach inside a merged decoder's If branches, the If
// on use_cache_branch is inlined on the branch training takes (an empty past), and the gradients equal finite
// differences of the real file run by onnxruntime (If included). The trainer runs LoRA on the imported graphs.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { attachWeightedLoss, finiteDifferenceGradients, promoteInitializersToInputs } from '../../autodiff/gradcheck.js';
import { buildGradientGraph } from '../../autodiff/gradient.js';
import { trainCommand } from '../../cli/train.js';
import { fragmentFromModel, modelFromFragment } from '../../nodes/adapters/common.js';
import { perturb, randomFloats } from '../../nodes/adapters/fixtures.test-support.js';
import { applyAdapters } from '../../nodes/adapters/index.js';
import type { AdapterSpecInput } from '../../nodes/adapters/index.js';
import { type Model, type Tensor, tensorToNumbers } from '../../onnx/ir.js';
import { runModel } from '../../onnx/ort.js';
import { loadModel } from '../../onnx/proto.js';
import { importHfFolder } from '../hf/import.js';
import { folderOf, reference } from './test-support.js';

const tmp = mkdtempSync(join(tmpdir(), 'onnx-folder-train-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Prompt feeds of a decoder file: ids, a full mask, positions 0..T-1 and an empty past (what training feeds). */
function promptFeeds(model: Model, ids: number[]): Record<string, Tensor> {
  const T = ids.length;
  const embeds = model.graph.inputs.find((v) => v.name === 'inputs_embeds');
  const feeds: Record<string, Tensor> = {
    ...(embeds
      ? { inputs_embeds: randomFloats([1, T, embeds.shape![2] as number], 11) }
      : { input_ids: { dtype: 'int64', dims: [1, T], data: BigInt64Array.from(ids, BigInt) } }),
    attention_mask: { dtype: 'int64', dims: [1, T], data: new BigInt64Array(T).fill(1n) },
    position_ids: { dtype: 'int64', dims: [1, T], data: BigInt64Array.from({ length: T }, (_, i) => BigInt(i)) },
  };
  for (const inp of model.graph.inputs) {
    if (!inp.name.startsWith('past_key_values.')) continue;
    const [, kvH, , hd] = inp.shape!;
    feeds[inp.name] = { dtype: 'float32', dims: [1, kvH as number, 0, hd as number], data: new Float32Array(0) };
  }
  return feeds;
}

/** The graph with use_cache_branch fixed (as the trainer fixes it): false = no past, the prompt branch. */
function fixCacheBranch(model: Model, value: boolean): Model {
  const g = model.graph;
  if (!g.inputs.some((v) => v.name === 'use_cache_branch')) return model;
  const initializers = new Map(g.initializers);
  initializers.set('use_cache_branch', { dtype: 'bool', dims: [1], data: Uint8Array.of(value ? 1 : 0) });
  return { ...model, graph: { ...g, inputs: g.inputs.filter((v) => v.name !== 'use_cache_branch'), initializers } };
}

async function gradcheck(file: string, spec: AdapterSpecInput, wrtCount: number) {
  const base = loadModel(join(folderOf(''), file));
  const res = applyAdapters(fragmentFromModel(base), [spec], 3, { what: `'${file}'`, training: false });
  for (const n of res.trainable) if (n.includes('lora_B')) perturb(res.fragment, n, 8, 0.05);
  const wrt = res.trainable.slice(0, wrtCount);
  const adapted = fixCacheBranch(modelFromFragment(res.fragment), false);
  const { model: promoted, values } = promoteInitializersToInputs(adapted, wrt);
  const ids = reference('llama').input_ids.slice(0, 6);
  const { model, loss } = attachWeightedLoss(promoted, { logits: randomFloats([1, ids.length, 316], 5) }, ['logits']);
  const feeds = { ...promptFeeds(base, ids), ...values };
  const inputShapes = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, v.dims]));
  const { model: withGrads, grads } = buildGradientGraph(model, { loss, wrt, inputShapes });
  const analytic = await runModel(withGrads, feeds);
  // Finite differences of the model as it is, If and all, run by onnxruntime.
  const fd = await finiteDifferenceGradients(model, feeds, wrt, loss, { maxElementsPerTensor: 6, step: 1e-2 });
  let compared = 0;
  for (const w of wrt) {
    const g = tensorToNumbers(analytic[grads.get(w)!]);
    expect(g.some((x) => x !== 0)).toBe(true);
    fd[w].indices.forEach((idx, k) => {
      const expected = fd[w].values[k];
      // Central differences of a float32 forward carry ~3e-3 of rounding noise; a wrong branch or rule is off by O(1).
      expect(Math.abs(g[idx] - expected)).toBeLessThanOrEqual(1e-3 * Math.abs(expected) + 5e-3);
      compared++;
    });
  }
  return { withGrads, wrt, compared, model };
}

describe('gradients through imported ONNX-folder decoders', () => {
  it('LoRA inside the merged decoder: the If on use_cache_branch is inlined on the taken branch; gradients equal finite differences', async () => {
    const { withGrads, wrt, compared, model } = await gradcheck('llama_merged/onnx/decoder_model_merged.onnx', { id: 'lora', method: 'lora', config: { r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj', 'down_proj'] } }, 3);
    expect(model.graph.nodes.filter((n) => n.opType === 'If')).toHaveLength(1);
    expect(withGrads.graph.nodes.some((n) => n.opType === 'If')).toBe(false);
    expect(wrt[0]).toMatch(/^model\.layers\.0\.self_attn\.q_proj\.lora_A\./);
    expect(compared).toBeGreaterThanOrEqual(12);
  }, 60_000);

  it('prefix tuning on a model.onnx with past ports: gradients equal finite differences', async () => {
    const { compared } = await gradcheck('llama/onnx/model.onnx', { id: 'prefix', method: 'prefix', config: { num_virtual_tokens: 3 } }, 2);
    expect(compared).toBeGreaterThanOrEqual(6);
  }, 60_000);

  it("prompt tuning on the VLM's merged decoder (inputs_embeds read inside both branches): gradients equal finite differences", async () => {
    const { compared } = await gradcheck('vlm/onnx/decoder_model_merged.onnx', { id: 'prompt', method: 'prompt', config: { num_virtual_tokens: 3 } }, 1);
    expect(compared).toBeGreaterThanOrEqual(6);
  }, 60_000);

  it('an If whose condition depends on the data is refused naming the node and the condition', () => {
    const model = loadModel(join(folderOf('llama_merged'), 'onnx/decoder_model_merged.onnx'));
    const { model: withLoss, loss } = attachWeightedLoss(model, { logits: randomFloats([1, 4, 316], 5) }, ['logits']);
    expect(() => buildGradientGraph(withLoss, { loss, wrt: ['lm_head.weight'] })).toThrow(/If node 'optimum::if': its condition 'use_cache_branch' depends on the data/);
  });
});

describe('the trainer on imported ONNX folders', () => {
  it('LoRA through `vlmc train` on the merged and the plain decoder: the same losses (same weights), and the trained graph generates', async () => {
    const losses: number[][] = [];
    for (const name of ['llama', 'llama_merged']) {
      const graph = join(tmp, `${name}.graph.json`);
      const { doc } = importHfFolder(folderOf(name), { graphDir: tmp });
      writeFileSync(graph, JSON.stringify(doc));
      const lines: string[] = [];
      const out = join(tmp, `trained-${name}`);
      const code = await trainCommand([graph, '--recipe', 'lm', '--adapter', 'lora', '--steps', '3', '--batch', '2', '--dataset-size', '8', '--out', out, '--json'], (l) => lines.push(l));
      expect(code).toBe(0);
      const events = lines.map((l) => JSON.parse(l) as { type: string; loss?: number; nodes?: { train: string[] } });
      losses.push(events.filter((e) => e.type === 'step').map((e) => e.loss!));
    }
    expect(losses[0]).toHaveLength(3);
    for (let i = 0; i < 3; i++) expect(Math.abs(losses[1][i] - losses[0][i])).toBeLessThan(1e-4);
    const { runCommand } = await import('../../cli/run.js');
    const lines: string[] = [];
    expect(await runCommand([join(tmp, 'trained-llama_merged', 'graph.json'), '--prompt', reference('llama').prompt, '--json'], (l) => lines.push(l))).toBe(0);
    const result = JSON.parse(lines[lines.length - 1]) as { outputs: { llm: { generated_ids: { values: number[] } } } };
    expect(result.outputs.llm.generated_ids.values).toHaveLength(12);
  }, 120_000);

  it('training a quantised precision: the import says its int8 weights stay frozen; LoRA, which cannot attach to them, names the node and op', async () => {
    const { doc, notes } = importHfFolder(folderOf('gpt2'), { graphDir: tmp, precision: 'q8' });
    expect(notes.join('\n')).toMatch(/they stay frozen; adapters train beside them/);
    const graph = join(tmp, 'gpt2-q8.graph.json');
    writeFileSync(graph, JSON.stringify(doc));
    await expect(trainCommand([graph, '--recipe', 'lm', '--adapter', 'lora', '--steps', '1', '--batch', '2', '--dataset-size', '4', '--json'], () => undefined)).rejects.toThrow(
      /node 'llm': adapter 'lora' \(lora\): .*the linear layers read quantised weights \(DequantizeLinear node '[^']+' feeds MatMul '[^']+'\): quantised weights stay frozen/,
    );
    // 4-bit MatMulNBits weights: the same, naming the node.
    const q4 = importHfFolder(folderOf('llama'), { graphDir: tmp, precision: 'q4' }).doc;
    const q4Graph = join(tmp, 'llama-q4.graph.json');
    writeFileSync(q4Graph, JSON.stringify(q4));
    await expect(trainCommand([q4Graph, '--recipe', 'lm', '--adapter', 'lora', '--steps', '1', '--batch', '2', '--dataset-size', '4', '--json'], () => undefined)).rejects.toThrow(
      /adapter 'lora' \(lora\): .*the linear layers are quantised \(MatMulNBits node '[^']+', 4-bit weights\): quantised weights stay frozen/,
    );
  }, 60_000);
});
