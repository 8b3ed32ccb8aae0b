// `--format hf` with adapters: a LoRA trained on BLIP-2's OPT decoder is folded into the exported
// Blip2ForConditionalGeneration weights with `merge` (the re-imported decoder answers as the trained decoder with its
// adapter does), or written beside the untouched base in PEFT format without it (it answers as before training).

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type GraphDocument, parseGraphDocument } from '../engine/document.js';
import { Executor } from '../engine/executor.js';
import { train } from '../engine/trainer/trainer.js';
import { type Tensor, tensorFromNumbers } from '../onnx/ir.js';
import { importHfFolder } from '../formats/hf/import.js';
import { expectClose, relativeError } from '../formats/hf/fixtures.test-support.js';
import { exportHfFolder } from './hf.js';
import { readSafetensorsHeader } from '../onnx/safetensors.js';

const graphsDir = join(import.meta.dirname, '..', '..', 'graphs');
const tmp = mkdtempSync(join(tmpdir(), 'vlmc-hf-adapters-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('vlmc export --format hf with a trained LoRA', () => {
  const executor = new Executor();
  afterAll(() => executor.dispose());
  const base = parseGraphDocument(readFileSync(join(graphsDir, 'blip2.graph.json'), 'utf8'), 'blip2.graph.json');
  const out = join(tmp, 'trained');

  /** BLIP-2's text path alone (prompt → tokenize → embed → llm): the decoder without the image prefix. */
  function textPath(doc: GraphDocument): GraphDocument {
    const keep = new Set(['prompt', 'template', 'tokenize', 'embed', 'llm', 'answer']);
    const edges = doc.edges.filter((e) => keep.has(e.from.node) && keep.has(e.to.node) && e.to.node !== 'llm');
    edges.push({ from: { node: 'embed', port: 'inputs_embeds' }, to: { node: 'llm', port: 'inputs_embeds' } });
    edges.push({ from: { node: 'tokenize', port: 'attention_mask' }, to: { node: 'llm', port: 'attention_mask' } });
    return { ...doc, nodes: doc.nodes.filter((n) => keep.has(n.id)), edges };
  }

  /** Decoder logits on fixed embeddings fed at the embedding node. */
  async function logits(doc: GraphDocument, baseDir: string, D: number): Promise<Tensor> {
    const T = 5;
    const x = tensorFromNumbers('float32', [1, T, D], Float32Array.from({ length: T * D }, (_, i) => Math.sin(i * 0.7) * 0.5));
    const mask = tensorFromNumbers('int64', [1, T], [1, 1, 1, 1, 1]);
    const one = { ...doc, nodes: doc.nodes.map((n) => (n.type === 'llm.decoder' ? { ...n, params: { ...n.params, max_new_tokens: 1 } } : n)) };
    const feeds = { embed: { inputs_embeds: x }, tokenize: { attention_mask: mask, input_ids: tensorFromNumbers('int64', [1, T], [1, 2, 3, 4, 5]) } };
    const res = await executor.run(one, { baseDir, targets: ['llm'], feeds });
    return res.outputs.llm.logits as Tensor;
  }

  it('merges the LoRA into the weights, or writes it beside the base as PEFT', async () => {
    await train({ graph: base, baseDir: graphsDir, recipe: 'llava-stage2', adapter: { method: 'lora', config: {} }, steps: 2, batchSize: 2, learningRate: 1e-2, dataset: 'shapes', datasetSize: 4, out });
    const trained = parseGraphDocument(readFileSync(join(out, 'graph.json'), 'utf8'), 'graph.json');
    const llm = trained.nodes.find((n) => n.type === 'llm.decoder')!;
    expect(llm.adapters.length).toBe(1);

    const merged = join(tmp, 'merged');
    const res = await exportHfFolder(trained, { baseDir: out, outDir: merged, executor, merge: true });
    expect(res.notes.join('\n')).toMatch(new RegExp(`node '${llm.id}': its LoRA is merged`));
    expect(existsSync(join(merged, 'adapters'))).toBe(false);
    const card = readFileSync(join(merged, 'README.md'), 'utf8');
    expect(card).toMatch(/Recipe `llava-stage2` on dataset `shapes`, 2 of 2 steps, batch 2/);
    expect(card).toMatch(/Measured loss: first step \d/);
    expect(card).toMatch(/Frozen nodes: .*`vit`/);
    const cfg = JSON.parse(readFileSync(join(merged, 'config.json'), 'utf8')) as { model_type: string; text_config: { hidden_size: number } };
    expect(cfg.model_type).toBe('blip-2');
    const D = cfg.text_config.hidden_size;
    const withAdapter = await logits(textPath(trained), out, D);
    const before = await logits(textPath(base), graphsDir, D);
    // The adapter trained: the decoder's answer moved (else the comparisons below could not tell merged from base).
    expect(relativeError(withAdapter, before).rel).toBeGreaterThan(1e-3);
    expectClose(await logits(textPath(importHfFolder(merged).doc), merged, D), withAdapter, 1e-5, 'merged LoRA re-import');

    const beside = join(tmp, 'beside');
    const res2 = await exportHfFolder(trained, { baseDir: out, outDir: beside, executor });
    expect(res2.files.map((f) => f.path)).toEqual(expect.arrayContaining([`adapters/${llm.id}/adapter_config.json`, `adapters/${llm.id}/adapter_model.safetensors`]));
    // PEFT finds each adapted layer under the exported state dict's name (Blip2's OPT: language_model.model.decoder.…).
    const keys = readSafetensorsHeader(join(beside, 'adapters', llm.id, 'adapter_model.safetensors')).entries.map((e) => e.name);
    expect(keys.length).toBeGreaterThan(0);
    for (const k of keys) expect(k).toMatch(/^base_model\.model\.language_model\.model\.decoder\.layers\.\d+\.self_attn\.[qv]_proj\.lora_[AB]\.weight$/);
    const exported = new Set(readSafetensorsHeader(join(beside, 'model.safetensors')).entries.map((e) => e.name));
    for (const k of keys) expect(exported.has(`${k.replace(/^base_model\.model\./, '').replace(/\.lora_[AB]\.weight$/, '')}.weight`), k).toBe(true);
    expectClose(await logits(textPath(importHfFolder(beside).doc), beside, D), before, 1e-6, 'base re-import (adapter beside)');
  }, 120_000);
});
