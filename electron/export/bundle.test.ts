import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../onnx/proto.js';
import { readSafetensors } from '../onnx/safetensors.js';
import { type GraphDocument, parseGraphDocument } from '../engine/document.js';
import { Executor, RunError } from '../engine/executor.js';
import { hashBytes } from '../engine/keys.js';
import { exportBundle } from './bundle.js';
import { readManifest, verifyExport } from './manifest.js';

const graphsDir = join(import.meta.dirname, '..', '..', 'graphs');
const blip2 = (): GraphDocument => parseGraphDocument(readFileSync(join(graphsDir, 'blip2.graph.json'), 'utf8'), 'blip2.graph.json');

describe('bundle export', () => {
  let tmp: string;
  let image: string;
  let bundle: string;
  let originalText: string;
  const executor = new Executor();

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'composer-bundle-'));
    image = join(tmp, 'red.png');
    await sharp({ create: { width: 64, height: 64, channels: 3, background: '#d42' } }).png().toFile(image);
    const original = await executor.run(blip2(), { baseDir: graphsDir, inputs: { image: { path: image } } });
    originalText = original.outputs.llm.text as string;
    bundle = join(tmp, 'bundle');
    await exportBundle(blip2(), { baseDir: graphsDir, outDir: bundle, executor });
  });
  afterAll(() => executor.dispose());

  it('pins params, writes weights with their sha256, per-node ONNX, the tokenizer and a manifest', () => {
    const doc = parseGraphDocument(readFileSync(join(bundle, 'graph.json'), 'utf8'), 'graph.json');
    const byId = new Map(doc.nodes.map((n) => [n.id, n]));
    // 'auto' widths resolved to numbers; defaults written out.
    expect(byId.get('qformer')!.params).toMatchObject({ d_in: 64, d_out: 96, preset: 'tiny' });
    expect(byId.get('vit')!.params.preset).toBe('tiny');
    // The decoder and the tokenizer node point at the bundled tokenizer.
    expect(byId.get('llm')!.params.tokenizer).toBe('tokenizer.json');
    expect(byId.get('tokenize')!.params.tokenizer).toBe('tokenizer.json');
    // Every ONNX node with weights has a file; the embedding shares the decoder's (tied head).
    for (const id of ['vit', 'qformer', 'llm']) {
      const w = byId.get(id)!.weights!;
      expect(w.path).toBe(`weights/${id}.safetensors`);
      expect(hashBytes(readFileSync(join(bundle, w.path)))).toBe(w.sha256);
      expect(loadModel(join(bundle, `onnx/${id}.onnx`)).graph.inputs.length).toBeGreaterThan(0);
    }
    expect(byId.get('embed')!.weights).toBeUndefined();
    expect(readSafetensors(join(bundle, 'weights/llm.safetensors')).tensors.has('embed_tokens.weight')).toBe(true);
    const manifest = readManifest(bundle);
    expect(manifest.kind).toBe('bundle');
    expect(manifest.composer.name).toBe('vlm-composer');
    expect(manifest.files.map((f) => f.path)).toEqual(expect.arrayContaining(['graph.json', 'tokenizer.json', 'weights/vit.safetensors', 'onnx/vit.onnx']));
    expect(verifyExport(bundle)).toEqual([]);
    // No absolute paths anywhere in the pinned graph.
    expect(readFileSync(join(bundle, 'graph.json'), 'utf8')).not.toContain(tmpdir());
  });

  it('runs from another folder and gives the same text as the original graph', async () => {
    const elsewhere = join(mkdtempSync(join(tmpdir(), 'composer-bundle-copy-')), 'moved');
    cpSync(bundle, elsewhere, { recursive: true });
    const doc = parseGraphDocument(readFileSync(join(elsewhere, 'graph.json'), 'utf8'), 'graph.json');
    const fresh = new Executor();
    try {
      const res = await fresh.run(doc, { baseDir: elsewhere, inputs: { image: { path: image } } });
      expect(res.outputs.llm.text).toBe(originalText);
      expect(res.computed).toContain('vit');
    } finally {
      await fresh.dispose();
    }
  });

  it('an untied LLaMA decoder: the embedding gets its own weights file and the bundle reproduces the run', async () => {
    const name = 'llava-1.5.graph.json';
    const doc = parseGraphDocument(readFileSync(join(graphsDir, name), 'utf8'), name);
    const decoder = doc.nodes.find((n) => n.type === 'llm.decoder')!;
    const embed = doc.nodes.find((n) => n.type === 'llm.embed_tokens')!;
    const original = await executor.run(doc, { baseDir: graphsDir, inputs: { [doc.nodes.find((n) => n.type === 'io.image')!.id]: { path: image } } });
    const dir = join(mkdtempSync(join(tmpdir(), 'composer-bundle-llava-')), 'b');
    await exportBundle(doc, { baseDir: graphsDir, outDir: dir, executor });
    const pinned = parseGraphDocument(readFileSync(join(dir, 'graph.json'), 'utf8'), 'graph.json');
    expect(pinned.nodes.find((n) => n.id === embed.id)!.weights?.path).toBe(`weights/${embed.id}.safetensors`);
    expect(readSafetensors(join(dir, `weights/${decoder.id}.safetensors`)).tensors.has('embed_tokens.weight')).toBe(false);
    const fresh = new Executor();
    try {
      const res = await fresh.run(pinned, { baseDir: dir, inputs: { [doc.nodes.find((n) => n.type === 'io.image')!.id]: { path: image } } });
      expect(res.outputs[decoder.id].text).toBe(original.outputs[decoder.id].text);
    } finally {
      await fresh.dispose();
    }
  });

  it('a tampered weights file fails with an error naming it, and the manifest check names it too', async () => {
    const copy = join(mkdtempSync(join(tmpdir(), 'composer-bundle-bad-')), 'bundle');
    cpSync(bundle, copy, { recursive: true });
    const file = join(copy, 'weights', 'qformer.safetensors');
    const bytes = readFileSync(file);
    bytes[bytes.length - 1] ^= 0x40; // one bit of the last weight
    writeFileSync(file, bytes);
    const doc = parseGraphDocument(readFileSync(join(copy, 'graph.json'), 'utf8'), 'graph.json');
    const fresh = new Executor();
    try {
      const err = await fresh.run(doc, { baseDir: copy, inputs: { image: { path: image } } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RunError);
      expect((err as RunError).nodeId).toBe('qformer');
      expect((err as Error).message).toMatch(/weights\/qformer\.safetensors.*sha256/);
    } finally {
      await fresh.dispose();
    }
    expect(verifyExport(copy)).toEqual([expect.stringMatching(/'weights\/qformer\.safetensors' was changed/)]);
  });

  it('refuses a folder with other files, and replaces a previous export', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'composer-bundle-busy-'));
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    await expect(exportBundle(blip2(), { baseDir: graphsDir, outDir: dir, executor })).rejects.toThrow(/not empty.*manifest\.json/);
    const again = await exportBundle(blip2(), { baseDir: graphsDir, outDir: bundle, executor });
    expect(again.notes).toEqual([]);
    expect(verifyExport(bundle)).toEqual([]);
  });
});
