// vlmc import on folders as people have them (the hub cache's symlinked snapshots) and as they break: every bad
// folder is refused with a message naming the file, tensor or field, and nothing outside the folder is read.

import { mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Executor } from '../../engine/executor.js';
import { hashBytes } from '../../engine/keys.js';
import { type Tensor, tensorFromNumbers } from '../../onnx/ir.js';
import { readSafetensors, writeSafetensors } from '../../onnx/safetensors.js';
import { importHfFolder } from './import.js';
import { writeTinyLlamaFolder } from './tiny-llama.test-support.js';
import { importCommand } from '../../cli/import.js';
import { runCommand } from '../../cli/run.js';
import { spawnSync } from 'node:child_process';

const root = mkdtempSync(join(tmpdir(), 'composer-import-'));
let n = 0;
const freshFolder = (): string => writeTinyLlamaFolder(join(root, `llama-${n++}`));

function editConfig(dir: string, edit: (c: Record<string, unknown>) => void): void {
  const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  edit(c);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
}

function editWeights(dir: string, edit: (t: Map<string, Tensor>) => void): void {
  const file = join(dir, 'model.safetensors');
  const { tensors } = readSafetensors(file);
  edit(tensors);
  writeSafetensors(file, tensors, { format: 'pt' });
}

/** The hub cache layout: models--org--name/snapshots/<rev>/<file> → ../../blobs/<sha256>. */
function asHubCache(dir: string): string {
  const repo = join(root, `hub-${n++}`, 'models--test-org--tiny-llama');
  const snapshot = join(repo, 'snapshots', 'f00dfeed');
  mkdirSync(join(repo, 'blobs'), { recursive: true });
  mkdirSync(snapshot, { recursive: true });
  mkdirSync(join(repo, 'refs'), { recursive: true });
  writeFileSync(join(repo, 'refs', 'main'), 'f00dfeed');
  for (const f of readdirSync(dir)) {
    const bytes = readFileSync(join(dir, f));
    const blob = hashBytes(bytes);
    writeFileSync(join(repo, 'blobs', blob), bytes);
    symlinkSync(join('..', '..', 'blobs', blob), join(snapshot, f));
  }
  return snapshot;
}

describe('vlmc import', () => {
  const executor = new Executor();
  afterAll(async () => {
    await executor.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  const generate = async (dir: string, prompt: string): Promise<string> => {
    const { doc } = importHfFolder(dir);
    const res = await executor.run(doc, { baseDir: dir, inputs: { prompt: { text: prompt } } });
    return res.outputs.llm.text as string;
  };

  it('a hub-cache snapshot (symlinks into blobs/) imports and answers as the plain folder does', async () => {
    const plain = freshFolder();
    const hub = asHubCache(plain);
    const { summary } = importHfFolder(hub);
    expect(summary.name).toBe('test-org/tiny-llama');
    expect(summary.dtypes).toEqual(['bfloat16']);
    const a = await generate(plain, 'a red circle');
    expect(a.length).toBeGreaterThan(0);
    expect(await generate(hub, 'a red circle')).toBe(a);
  });

  it('an unknown architecture is refused with the list of supported ones', () => {
    const dir = freshFolder();
    editConfig(dir, (c) => {
      c.architectures = ['FalconForCausalLM'];
      c.model_type = 'falcon';
    });
    expect(() => importHfFolder(dir)).toThrow(/architecture 'FalconForCausalLM' is not supported; Composer imports .*LlamaForCausalLM.*GPT2LMHeadModel/);
  });

  it('a missing tensor is named with the folder files; an unexpected one with its file', () => {
    const missing = freshFolder();
    editWeights(missing, (t) => t.delete('model.layers.1.mlp.up_proj.weight'));
    expect(() => importHfFolder(missing)).toThrow(/no tensor 'model\.layers\.1\.mlp\.up_proj\.weight' \(needed for weight 'layers\.1\.mlp\.up_proj\.weight'; files: model\.safetensors\)/);
    const extra = freshFolder();
    editWeights(extra, (t) => t.set('model.layers.0.mlp.extra.weight', t.get('model.norm.weight')!));
    expect(() => importHfFolder(extra)).toThrow(/'model\.layers\.0\.mlp\.extra\.weight' \(model\.safetensors\)/);
  });

  it('a tensor whose shape the config does not imply is named with its file and both shapes', () => {
    const dir = freshFolder();
    editConfig(dir, (c) => (c.intermediate_size = 48));
    expect(() => importHfFolder(dir)).toThrow(/tensor 'model\.layers\.0\.mlp\.gate_proj\.weight' in 'model\.safetensors' has shape \[64,32\], but config\.json implies \[48,32\]/);
  });

  it('config fields out of range or not implemented are refused by name', () => {
    const zeroHeads = freshFolder();
    editConfig(zeroHeads, (c) => (c.num_attention_heads = 0));
    expect(() => importHfFolder(zeroHeads)).toThrow(/config\.json: num_attention_heads must be ≥ 1, got 0/);
    const yarn = freshFolder();
    editConfig(yarn, (c) => (c.rope_scaling = { rope_type: 'yarn', factor: 4 }));
    expect(() => importHfFolder(yarn)).toThrow(/rope_scaling type 'yarn' is not supported/);
    const act = freshFolder();
    editConfig(act, (c) => (c.hidden_act = 'gelu'));
    expect(() => importHfFolder(act)).toThrow(/config\.json: hidden_act = "gelu"/);
  });

  it("legacy buffers are skipped with a note; a tied head saved anyway is accepted", () => {
    const dir = freshFolder();
    editWeights(dir, (t) => t.set('model.layers.0.self_attn.rotary_emb.inv_freq', t.get('model.norm.weight')!));
    expect(importHfFolder(dir).notes.join('\n')).toMatch(/skipped 1 buffer.*rotary_emb\.inv_freq/);
  });

  it('a shard replaced after the import is an error naming the folder, not a silent change', async () => {
    const dir = freshFolder();
    const { doc } = importHfFolder(dir);
    // Same name, shape and dtype (the header does not change): only the values do, as after training in place.
    editWeights(dir, (t) => t.set('model.norm.weight', tensorFromNumbers('bfloat16', [32], new Array(32).fill(2))));
    const fresh = new Executor();
    try {
      await expect(fresh.run(doc, { baseDir: dir, inputs: { prompt: { text: 'a' } } })).rejects.toThrow(/changed since the graph was imported/);
    } finally {
      await fresh.dispose();
    }
  });

  it('the CLI: import writes a graph with folder-relative paths, run --json lists the token ids, --save-outputs and --feed', async () => {
    const dir = freshFolder();
    const lines: string[] = [];
    const out = (l: string) => lines.push(l);
    const graph = join(root, 'graphs', 'tiny.graph.json');
    expect(await importCommand([dir, '--out', graph], out)).toBe(0);
    const saved = JSON.parse(readFileSync(graph, 'utf8')) as { nodes: Array<{ id: string; weights?: { path: string } }> };
    expect(saved.nodes.find((x) => x.id === 'llm')?.weights?.path).toBe(join('..', `llama-${n - 1}`));
    lines.length = 0;
    const outDir = join(root, 'outputs');
    expect(await runCommand([graph, '--prompt', 'a red circle', '--max-new-tokens', '4', '--json', '--save-outputs', outDir], out)).toBe(0);
    const result = JSON.parse(lines[lines.length - 1]) as { generated: Record<string, number[][]> };
    expect(result.generated.llm[0].length).toBeGreaterThan(0);
    expect(result.generated.llm[0].length).toBeLessThanOrEqual(4);
    const tokenized = readSafetensors(join(outDir, 'tokenize.safetensors')).tensors;
    expect(tokenized.get('input_ids')?.dims[0]).toBe(1);
    // The same ids fed back in give the same answer without the tokenizer running.
    lines.length = 0;
    expect(await runCommand([graph, '--feed', `tokenize=${join(outDir, 'tokenize.safetensors')}`, '--max-new-tokens', '4', '--json'], out)).toBe(0);
    const fed = JSON.parse(lines[lines.length - 1]) as { generated: Record<string, number[][]> };
    expect(fed.generated.llm).toEqual(result.generated.llm);
  });

  it('the CLI exits 1 with the message for a bad folder, never a stack trace', () => {
    const dir = freshFolder();
    renameSync(join(dir, 'model.safetensors'), join(dir, 'pytorch_model.bin'));
    const repo = join(import.meta.dirname, '..', '..', '..');
    const r = spawnSync(join(repo, 'node_modules', '.bin', 'tsx'), [join(repo, 'electron', 'cli.ts'), 'import', dir], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/pytorch_model\.bin: Composer reads safetensors/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
