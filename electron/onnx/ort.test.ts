import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { tensorFromNumbers } from './ir.js';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createSession, detectExecutionProviders, runModel, runSession } from './ort.js';
import { GraphBuilder } from './builder.js';
import { emptyGraph, newModel } from './ir.js';

describe('execution providers', () => {
  it('reports only providers that run a model, best first, ending with the CPU', async () => {
    const eps = await detectExecutionProviders();
    expect(eps.at(-1)).toBe('cpu');
    const listed = ort.listSupportedBackends().map((b) => b.name);
    for (const ep of eps) expect(ep === 'cpu' || listed.includes(ep)).toBe(true);
    const g = emptyGraph('neg');
    const b = new GraphBuilder(g);
    b.input('x', 'float32', [2]);
    b.op('Neg', ['x'], {}, { outputs: ['y'] });
    b.output('y', 'float32', [2]);
    for (const ep of eps) {
      const out = await runModel(newModel(g, 17), { x: tensorFromNumbers('float32', [2], [1, -2]) }, { executionProviders: [ep] });
      expect(Array.from(out.y.data as Float32Array)).toEqual([-1, 2]);
    }
  });
});

describe('sessions past protobuf\'s 2 GiB', () => {
  // The same model in memory and through the external-data path (forced by a tiny threshold here; real decoders
  // cross EXTERNAL_SESSION_BYTES on their own) gives the same outputs, and leaves no temp folder behind.
  it('a model over the threshold loads from external data with the same outputs', async () => {
    const g = emptyGraph('big');
    const b = new GraphBuilder(g);
    b.input('x', 'float32', [2, 64]);
    const w = Float32Array.from({ length: 64 * 32 }, (_, i) => Math.sin(i));
    b.initializer('w', { dtype: 'float32', dims: [64, 32], data: w });
    b.initializer('bias', { dtype: 'float32', dims: [32], data: Float32Array.from({ length: 32 }, (_, i) => i / 7) });
    b.op('Add', [b.matmul('x', 'w'), 'bias'], {}, { outputs: ['y'] });
    b.output('y', 'float32', [2, 32]);
    const model = newModel(g, 17);
    const x = tensorFromNumbers('float32', [2, 64], Array.from({ length: 128 }, (_, i) => Math.cos(i)));
    const before = new Set(readdirSync(tmpdir()).filter((f) => f.startsWith('composer-session-')));
    const small = await createSession(model);
    const large = await createSession(model, { externalDataBytes: 1024 });
    const a = (await runSession(small, { x })).y.data as Float32Array;
    const c = (await runSession(large, { x })).y.data as Float32Array;
    expect(Array.from(c)).toEqual(Array.from(a));
    const after = readdirSync(tmpdir()).filter((f) => f.startsWith('composer-session-') && !before.has(f));
    expect(after).toEqual([]);
  });
});
