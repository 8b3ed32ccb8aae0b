// `--format hf`: LLM graphs export as folders transformers loads — config.json keys and values, safetensors names
// and shapes equal to the fixtures tools/hf_reference.py wrote with transformers — and `vlmc import` of the exported
// folder gives the same logits and greedy tokens as the graph it came from (imported fixtures and seeded tiny
// presets), in f32, bf16 and sharded.

import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Executor } from '../engine/executor.js';
import { type GraphDocument, graphDocumentFromJson } from '../engine/document.js';
import type { Tensor } from '../onnx/ir.js';
import { readSafetensorsHeader } from '../onnx/safetensors.js';
import { importHfFolder } from '../formats/hf/import.js';
import { expectClose, fixtureDir, loadExpected, tokenRows } from '../formats/hf/fixtures.test-support.js';
import { exportHfFolder, shardTensors } from './hf.js';
import { ExportError } from './manifest.js';
import { loadGraph } from '../cli/graph-file.js';
import { exportCommand } from '../cli/export.js';
import { type ExportJobEvent, exportGraph } from './index.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmc-hf-export-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const outDir = (name: string) => join(tmp, `${name}-${n++}`);

/** GPT-2's causal-mask buffers: save_pretrained of old transformers kept them, from_pretrained recomputes them. */
const BUFFERS = /(^|\.)attn\.(masked_)?bias$/;

/** name → shape of every tensor of a folder (all shards). */
function folderTensors(dir: string): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.safetensors'))) {
    for (const e of readSafetensorsHeader(join(dir, f)).entries) out.set(e.name, e.shape);
  }
  return out;
}

function json(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
}

/** Every key we write is one transformers wrote, with the same value (numbers to 1e-9 relative). */
function expectConfigMatches(ours: Record<string, unknown>, ref: Record<string, unknown>, where: string): void {
  for (const [k, v] of Object.entries(ours)) {
    if (k === 'torch_dtype' || k === 'transformers_version') continue;
    // The tokenizer's pad token, which GPT-2's reference config leaves out (transformers reads it when present).
    if (k === 'pad_token_id' && !Object.hasOwn(ref, k)) continue;
    expect(Object.hasOwn(ref, k), `${where}: config key '${k}' is not one transformers writes (${Object.keys(ref).join(', ')})`).toBe(true);
    const r = ref[k];
    if (typeof v === 'number' && typeof r === 'number') expect(Math.abs(v - r), `${where}.${k}`).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(r)));
    else if (v !== null && typeof v === 'object' && !Array.isArray(v) && r !== null && typeof r === 'object' && !Array.isArray(r)) {
      expectConfigMatches(v as Record<string, unknown>, r as Record<string, unknown>, `${where}.${k}`);
    } else expect(v, `${where}.${k}`).toEqual(r);
  }
}

async function logitsAndTokens(executor: Executor, doc: GraphDocument, baseDir: string, ids: Tensor, mask: Tensor, steps: number) {
  const set = (d: GraphDocument, k: number): GraphDocument => ({ ...d, nodes: d.nodes.map((x) => (x.type === 'llm.decoder' ? { ...x, params: { ...x.params, max_new_tokens: k } } : x)) });
  const tokenize = doc.nodes.find((x) => x.type === 'text.tokenize')!.id;
  const one = await executor.run(set(doc, 1), { baseDir, targets: ['llm'], feeds: { [tokenize]: { input_ids: ids, attention_mask: mask } } });
  const greedy = await executor.run(set(doc, steps), { baseDir, targets: ['llm'], feeds: { [tokenize]: { input_ids: ids, attention_mask: mask } } });
  return { logits: one.outputs.llm.logits as Tensor, tokens: tokenRows(greedy.outputs.llm.generated_ids as Tensor) };
}

const CASES = [
  { name: 'llama', cls: 'LlamaForCausalLM' },
  { name: 'mistral', cls: 'MistralForCausalLM' },
  { name: 'qwen2', cls: 'Qwen2ForCausalLM' },
  { name: 'opt', cls: 'OPTForCausalLM' },
  { name: 'gpt2', cls: 'GPT2LMHeadModel' },
] as const;

describe('vlmc export --format hf: causal LMs', () => {
  const executor = new Executor();
  afterAll(() => executor.dispose());

  for (const c of CASES) {
    describe(c.name, () => {
      const fixture = fixtureDir(c.name);
      const { doc } = importHfFolder(fixture);
      const expected = loadExpected(c.name);
      let dir = '';

      it(`exports ${c.cls} with transformers' config keys and tensor names`, async () => {
        dir = outDir(c.name);
        const res = await exportHfFolder(doc, { baseDir: fixture, outDir: dir, executor });
        expect(res.entry).toBe('config.json');
        const cfg = json(join(dir, 'config.json'));
        const ref = json(join(fixture, 'config.json'));
        expect(cfg.architectures).toEqual([c.cls]);
        expect(cfg.model_type).toBe(ref.model_type);
        expect(cfg.torch_dtype).toBe('float32');
        expectConfigMatches(cfg, ref, `${c.name}/config.json`);
        // The keys the import needs are all written (so a dropped key fails here, not in transformers).
        const modelKeys = ['vocab_size', 'eos_token_id', c.name === 'gpt2' ? 'n_embd' : 'hidden_size'];
        for (const k of modelKeys) expect(cfg, `${c.name}: ${k}`).toHaveProperty(k);
        expectConfigMatches(json(join(dir, 'generation_config.json')), json(join(fixture, 'generation_config.json')), `${c.name}/generation_config.json`);
        const want = new Map([...folderTensors(fixture)].filter(([k]) => !BUFFERS.test(k)));
        expect(Object.fromEntries(folderTensors(dir))).toEqual(Object.fromEntries(want));
        const tc = json(join(dir, 'tokenizer_config.json'));
        const refTc = json(join(fixture, 'tokenizer_config.json'));
        expect(tc.eos_token).toEqual(refTc.eos_token);
        expect(readFileSync(join(dir, 'tokenizer.json'), 'utf8')).toBe(readFileSync(join(fixture, 'tokenizer.json'), 'utf8'));
        expect(readFileSync(join(dir, 'README.md'), 'utf8')).toContain(c.cls);
      });

      it('re-imports to the same logits and greedy tokens', async () => {
        const back = importHfFolder(dir);
        expect(back.summary.class).toBe(c.cls);
        const ids = expected.get('greedy.input_ids');
        const mask = expected.get('greedy.attention_mask');
        const steps = tokenRows(expected.get('greedy.tokens'))[0].length;
        const a = await logitsAndTokens(executor, doc, fixture, ids, mask, steps);
        const b = await logitsAndTokens(executor, back.doc, dir, ids, mask, steps);
        expectClose(b.logits, a.logits, 1e-6, `${c.name} re-imported logits`);
        expect(b.tokens).toEqual(a.tokens);
      });
    });
  }

  it('writes bf16 (lossless for a bf16 checkpoint) and shards with an index past the threshold', async () => {
    const fixture = fixtureDir('llama');
    const { doc } = importHfFolder(fixture);
    const dir = outDir('llama-bf16-sharded');
    const res = await exportHfFolder(doc, { baseDir: fixture, outDir: dir, executor, dtype: 'bf16', maxShardBytes: 40_000 });
    const index = json(join(dir, 'model.safetensors.index.json')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    const shards = [...new Set(Object.values(index.weight_map))].sort();
    expect(shards.length).toBeGreaterThan(1);
    expect(shards[0]).toBe(`model-00001-of-${String(shards.length).padStart(5, '0')}.safetensors`);
    expect(res.files.map((f) => f.path)).toEqual(expect.arrayContaining([...shards, 'model.safetensors.index.json']));
    expect(readdirSync(dir)).not.toContain('model.safetensors');
    expect(json(join(dir, 'config.json')).torch_dtype).toBe('bfloat16');
    let total = 0;
    for (const s of shards) {
      for (const e of readSafetensorsHeader(join(dir, s)).entries) {
        expect(e.storedDtype).toBe('BF16');
        expect(index.weight_map[e.name]).toBe(s);
        total += e.end - e.begin;
      }
    }
    expect(index.metadata.total_size).toBe(total);
    const expected = loadExpected('llama');
    const ids = expected.get('greedy.input_ids');
    const mask = expected.get('greedy.attention_mask');
    const a = await logitsAndTokens(executor, doc, fixture, ids, mask, 4);
    const b = await logitsAndTokens(executor, importHfFolder(dir).doc, dir, ids, mask, 4);
    expectClose(b.logits, a.logits, 1e-6, 'bf16 sharded re-import');
    expect(b.tokens).toEqual(a.tokens);
  });

  for (const flavour of ['llama', 'opt', 'gpt2'] as const) {
    it(`a seeded tiny ${flavour} graph exports and re-imports to the same logits`, async () => {
      const doc = graphDocumentFromJson(
        {
          format: 'composer.graph',
          version: 1,
          name: `tiny ${flavour}`,
          seed: 7,
          nodes: [
            { id: 'prompt', type: 'io.text', params: { text: 'a cat' } },
            { id: 'tok', type: 'text.tokenize', params: {} },
            { id: 'embed', type: 'llm.embed_tokens', params: { preset: 'tiny', flavour } },
            { id: 'llm', type: 'llm.decoder', params: { preset: 'tiny', flavour, max_new_tokens: 3 } },
            { id: 'out', type: 'io.text_output', params: {} },
          ],
          edges: [
            { from: { node: 'prompt', port: 'text' }, to: { node: 'tok', port: 'text' } },
            { from: { node: 'tok', port: 'input_ids' }, to: { node: 'embed', port: 'input_ids' } },
            { from: { node: 'embed', port: 'inputs_embeds' }, to: { node: 'llm', port: 'inputs_embeds' } },
            { from: { node: 'tok', port: 'attention_mask' }, to: { node: 'llm', port: 'attention_mask' } },
            { from: { node: 'llm', port: 'text' }, to: { node: 'out', port: 'text' } },
          ],
        },
        'tiny',
      );
      const dir = outDir(`tiny-${flavour}`);
      await exportHfFolder(doc, { baseDir: tmp, outDir: dir, executor });
      const cfg = json(join(dir, 'config.json'));
      expect(cfg.model_type).toBe(flavour);
      const back = importHfFolder(dir);
      const ids: Tensor = { dtype: 'int64', dims: [1, 5], data: BigInt64Array.from([1n, 20n, 31n, 42n, 53n]) };
      const mask: Tensor = { dtype: 'int64', dims: [1, 5], data: BigInt64Array.from([1n, 1n, 1n, 1n, 1n]) };
      const set = (d: GraphDocument): GraphDocument => ({ ...d, nodes: d.nodes.map((x) => (x.type === 'llm.decoder' ? { ...x, params: { ...x.params, max_new_tokens: 1 } } : x)) });
      const a = await executor.run(set(doc), { baseDir: tmp, targets: ['llm'], feeds: { tok: { input_ids: ids, attention_mask: mask } } });
      const b = await executor.run(set(back.doc), { baseDir: dir, targets: ['llm'], feeds: { tokenize: { input_ids: ids, attention_mask: mask } } });
      expectClose(b.outputs.llm.logits as Tensor, a.outputs.llm.logits as Tensor, 1e-6, `tiny ${flavour}`);
    });
  }

  it('refuses a graph with no language model, naming what it looked for', async () => {
    const doc = graphDocumentFromJson(
      { format: 'composer.graph', version: 1, name: 'just text', nodes: [{ id: 'prompt', type: 'io.text', params: { text: 'x' } }], edges: [] },
      'x',
    );
    await expect(exportHfFolder(doc, { baseDir: tmp, outDir: outDir('none'), executor })).rejects.toThrow(ExportError);
    await expect(exportHfFolder(doc, { baseDir: tmp, outDir: outDir('none'), executor })).rejects.toThrow(/LlamaForCausalLM.*llm\.decoder/);
  });
});

describe('templates without a transformers class', () => {
  const executor = new Executor();
  afterAll(() => executor.dispose());

  it("Flamingo exports its language model and says which parts it could not express and why", async () => {
    const { doc, baseDir } = loadGraph(join(import.meta.dirname, '..', '..', 'graphs', 'flamingo.graph.json'));
    const dir = outDir('flamingo');
    const res = await exportHfFolder(doc, { baseDir, outDir: dir, executor });
    expect(json(join(dir, 'config.json')).architectures).toEqual(['LlamaForCausalLM']);
    const notes = res.notes.join('\n');
    expect(notes).toMatch(/node 'xattn' \(projector\.gated_xattn.*not exported: Flamingo's single gated cross-attention block has no transformers class/);
    expect(notes).toMatch(/node 'perceiver'/);
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toContain("node 'xattn'");
    expect(importHfFolder(dir).summary.class).toBe('LlamaForCausalLM');
  });

  it('vlmc export --format hf --dtype f16 writes the folder from the command line', async () => {
    const dir = outDir('cli');
    const lines: string[] = [];
    const code = await exportCommand([join(import.meta.dirname, '..', '..', 'graphs', 'llava-1.5.graph.json'), '--format', 'hf', '--dtype', 'f16', '--out', dir], (l) => lines.push(l));
    expect(code).toBe(0);
    expect(json(join(dir, 'config.json')).torch_dtype).toBe('float16');
    expect(lines.join('\n')).toContain('vlmc import');
  });
});

describe("the host's export job", () => {
  it("format 'hf-folder' (the Export panel's) writes the folder and reports its files", async () => {
    const { doc } = importHfFolder(fixtureDir('gpt2'));
    const dir = outDir('host');
    const events: ExportJobEvent[] = [];
    await exportGraph({ id: 'j1', document: doc, format: 'hf-folder', folder: dir, baseDir: fixtureDir('gpt2') }, (e) => events.push(e));
    const done = events.find((e) => e.type === 'done');
    expect(events.find((e) => e.type === 'error')?.message).toBeUndefined();
    expect(done?.files?.map((f) => f.path)).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'tokenizer.json', 'README.md']));
    expect(json(join(dir, 'config.json')).architectures).toEqual(['GPT2LMHeadModel']);
  });
});

describe('shardTensors', () => {
  it('keeps each shard under the limit, a larger tensor alone', () => {
    const sizes: Record<string, number> = { a: 4, b: 4, c: 10, d: 1 };
    expect(shardTensors(['a', 'b', 'c', 'd'], (k) => sizes[k], 8)).toEqual([['a', 'b'], ['c'], ['d']]);
  });
});
