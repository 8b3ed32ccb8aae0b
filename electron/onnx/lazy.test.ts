// File-backed tensors: read on access, never kept by the tensor; sessions built from them (in memory or through the
// external-data path) equal those built from ordinary tensors; a model folder's weights arrive file-backed.

import { createHash } from 'node:crypto';
import { appendFileSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadHfNodeWeights } from '../formats/hf/weights.js';
import { openHfFolder } from '../formats/hf/folder.js';
import { importHfFolder } from '../formats/hf/import.js';
import { writeTinyLlamaFolder } from '../formats/hf/tiny-llama.test-support.js';
import { GraphBuilder } from './builder.js';
import { emptyGraph, newModel, tensorFromNumbers, tensorToNumbers } from './ir.js';
import { isLazyTensor, lazyTensor, releaseLazyValues, tensorByteLength, writeTensorBytes } from './lazy.js';
import { readSafetensorsLazily, writeSafetensors } from './safetensors.js';
import { createSession, runSession } from './ort.js';

describe('file-backed tensors', () => {
  it('read on access (once per synchronous use), counted without reading, ordinary once assigned', () => {
    let reads = 0;
    const t = lazyTensor('float32', [2, 3], () => {
      reads++;
      return Float32Array.from([1, 2, 3, 4, 5, 6]);
    });
    expect(reads).toBe(0);
    expect(tensorByteLength(t)).toBe(24);
    expect(reads).toBe(0);
    let sum = 0;
    for (let i = 0; i < 6; i++) sum += (t.data as Float32Array)[i];
    expect(sum).toBe(21);
    expect(reads).toBe(1);
    expect({ ...t }.data).toEqual(Float32Array.from([1, 2, 3, 4, 5, 6]));
    expect(isLazyTensor(t)).toBe(true);
    t.data = new Float32Array(6);
    expect(isLazyTensor(t)).toBe(false);
    expect(Array.from(t.data as Float32Array)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('a read of the wrong size is an error naming the tensor', () => {
    const t = lazyTensor('float32', [4], () => new Float32Array(3), "weight 'w'");
    expect(() => t.data).toThrow(/weight 'w': read 3 values, its shape \[4\] needs 4/);
  });

  it('a session of file-backed weights equals the in-memory one, through the external-data path too', async () => {
    const g = emptyGraph('lazy');
    const b = new GraphBuilder(g);
    b.input('x', 'float32', [2, 64]);
    const w = Float32Array.from({ length: 64 * 32 }, (_, i) => Math.sin(i));
    const bias = Float32Array.from({ length: 32 }, (_, i) => i / 7);
    let reads = 0;
    let streamed = 0;
    // w streams in two pieces (what a folder tensor does from its shard); bias has no streamer and is read whole.
    const half = (w.length / 2) * 4;
    const streamW = (write: (bytes: Uint8Array) => void) => {
      streamed++;
      const bytes = new Uint8Array(w.buffer);
      write(bytes.subarray(0, half));
      write(bytes.subarray(half));
    };
    b.initializer('w', lazyTensor('float32', [64, 32], () => (reads++, w.slice()), "weight 'w'", streamW));
    b.initializer('bias', lazyTensor('float32', [32], () => (reads++, bias.slice())));
    b.op('Add', [b.matmul('x', 'w'), 'bias'], {}, { outputs: ['y'] });
    b.output('y', 'float32', [2, 32]);
    const lazy = newModel(g, 17);
    const eager = newModel({ ...g, initializers: new Map([['w', { dtype: 'float32', dims: [64, 32], data: w }], ['bias', { dtype: 'float32', dims: [32], data: bias }]]) }, 17);
    const x = tensorFromNumbers('float32', [2, 64], Array.from({ length: 128 }, (_, i) => Math.cos(i)));
    const before = new Set(readdirSync(tmpdir()).filter((f) => f.startsWith('composer-session-')));
    const want = (await runSession(await createSession(eager), { x })).y.data as Float32Array;
    const inMemory = await createSession(lazy, { externalDataBytes: 1e9 });
    expect(reads).toBe(2);
    const external = await createSession(lazy, { externalDataBytes: 1024 });
    expect(streamed).toBe(1);
    expect(reads).toBe(3);
    expect(Array.from((await runSession(inMemory, { x })).y.data as Float32Array)).toEqual(Array.from(want));
    expect(Array.from((await runSession(external, { x })).y.data as Float32Array)).toEqual(Array.from(want));
    expect(readdirSync(tmpdir()).filter((f) => f.startsWith('composer-session-') && !before.has(f))).toEqual([]);
    await Promise.all([inMemory.release(), external.release()]);
  });

  it("a model folder's weights are file-backed, read only when used, equal to the shards' float32 values", () => {
    const dir = writeTinyLlamaFolder(join(mkdtempSync(join(tmpdir(), 'composer-lazy-')), 'tiny-llama'));
    const { doc } = importHfFolder(dir);
    const llm = doc.nodes.find((n) => n.type === 'llm.decoder')!;
    const progress: number[] = [];
    const weights = loadHfNodeWeights(dir, llm.weights!.hf!, llm.params as Record<string, unknown>, (read) => progress.push(read));
    expect(progress).toEqual([]);
    expect(weights.size).toBeGreaterThan(0);
    for (const t of weights.values()) expect(isLazyTensor(t)).toBe(true);
    const folder = openHfFolder(dir);
    const head = weights.get('lm_head.weight')!;
    expect(Array.from(head.data as Float32Array)).toEqual(Array.from(folder.weights.readFloat32('lm_head.weight').data as Float32Array));
    expect(progress.length).toBe(1);
    // Streamed in pieces from the shard, the same float32 bytes.
    const pieces: Uint8Array[] = [];
    writeTensorBytes(weights.get('norm.weight')!, (bytes) => pieces.push(bytes.slice()));
    const norm = folder.weights.readFloat32('model.norm.weight').data as Float32Array;
    expect(Buffer.concat(pieces).equals(Buffer.from(norm.buffer, norm.byteOffset, norm.byteLength))).toBe(true);
    expect(progress.length).toBe(2);
    // A second read reports nothing more.
    for (const t of weights.values()) void t.data;
    for (const t of weights.values()) void t.data;
    expect(progress.length).toBe(weights.size);
  });

  it('a safetensors file read lazily: hashed in chunks, float tensors file-backed as float32, others read now', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'composer-lazy-st-')), 'w.safetensors');
    const values = Array.from({ length: 12 }, (_, i) => (i - 5) / 4);
    writeSafetensors(path, {
      f32: tensorFromNumbers('float32', [3, 4], values),
      bf16: tensorFromNumbers('bfloat16', [12], values),
      f16: tensorFromNumbers('float16', [2, 6], values),
      ids: tensorFromNumbers('int64', [3], [1, 2, 3]),
    });
    const { tensors, sha256 } = readSafetensorsLazily(path, 'w.safetensors');
    expect(sha256).toBe(createHash('sha256').update(readFileSync(path)).digest('hex'));
    for (const name of ['f32', 'bf16', 'f16']) {
      const t = tensors.get(name)!;
      expect(isLazyTensor(t)).toBe(true);
      expect(t.dtype).toBe('float32');
      expect(Array.from(t.data as Float32Array)).toEqual(values);
      const pieces: Uint8Array[] = [];
      writeTensorBytes(t, (bytes) => pieces.push(bytes.slice()));
      expect(Array.from(new Float32Array(Uint8Array.from(Buffer.concat(pieces)).buffer))).toEqual(values);
    }
    expect(tensors.get('f16')!.dims).toEqual([2, 6]);
    expect(isLazyTensor(tensors.get('ids')!)).toBe(false);
    expect(Array.from(tensorToNumbers(tensors.get('ids')!))).toEqual([1, 2, 3]);
    // A file that changes under a file-backed tensor is an error naming it, not other values.
    const f32 = tensors.get('f32')!;
    appendFileSync(path, 'x');
    releaseLazyValues();
    expect(() => f32.data).toThrow(/'w.safetensors' changed since it was opened/);
  });
});
