// Constant folding keeps numerics bit-for-bit (checked in ORT) while removing shape plumbing.

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from './builder.js';
import { type Model, type Tensor, emptyGraph, newModel, tensorFromNumbers, tensorToNumbers } from './ir.js';
import { foldConstants } from './fold.js';
import { loadModel, parseModel, serializeModel } from './proto.js';
import { runModel } from './ort.js';
import { readSafetensors } from './safetensors.js';
import { opCensus } from './support.js';

// The reference fixtures live beside the repository (../shared/fixtures).
const FIXTURES = fileURLToPath(new URL('../../../shared/fixtures', import.meta.url));

function refInputs(name: string): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = {};
  for (const [k, t] of readSafetensors(join(FIXTURES, `${name}.ref.safetensors`)).tensors) {
    if (k.startsWith('input.')) feeds[k.slice('input.'.length)] = t;
  }
  return feeds;
}

function expectIdentical(a: Record<string, Tensor>, b: Record<string, Tensor>): void {
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
  for (const k of Object.keys(a)) {
    expect(a[k].dtype, k).toBe(b[k].dtype);
    expect(a[k].dims, k).toEqual(b[k].dims);
    expect(Array.from(tensorToNumbers(a[k])), k).toEqual(Array.from(tensorToNumbers(b[k])));
  }
}

describe('folding the fixtures', () => {
  for (const name of ['gpt2_tiny', 'vit_tiny', 'mlp_projector']) {
    it(`${name}: same ORT outputs, no Constant nodes, fewer nodes`, async () => {
      const model = loadModel(join(FIXTURES, `${name}.onnx`));
      const folded = foldConstants(model);
      const before = opCensus(model);
      const after = opCensus(folded);
      expect(after.Constant ?? 0).toBe(0);
      expect(folded.graph.nodes.length).toBeLessThan(model.graph.nodes.length);
      // Shape plumbing is gone: no integer Unsqueeze/Concat chains feed Reshape any more.
      expect(after.Unsqueeze ?? 0).toBeLessThan(before.Unsqueeze ?? 1);
      expect(after.Shape ?? 0).toBe(0);
      // The input model is untouched.
      expect(opCensus(model)).toEqual(before);
      const feeds = refInputs(name);
      const roundTripped = parseModel(serializeModel(folded).model, { fileName: `${name} folded` });
      expectIdentical(await runModel(roundTripped, feeds), await runModel(model, feeds));
    });
  }

  it('vit_tiny with a symbolic batch keeps the Shape plumbing it cannot resolve and still runs identically', async () => {
    const model = loadModel(join(FIXTURES, 'vit_tiny.onnx'));
    const folded = foldConstants(model, { pixel_values: ['batch', 3, 16, 16] });
    expect(opCensus(folded).Shape).toBeGreaterThan(0);
    expect(folded.graph.inputs[0].shape).toEqual(['batch', 3, 16, 16]);
    const feeds = refInputs('vit_tiny');
    expectIdentical(await runModel(folded, feeds), await runModel(model, feeds));
  });
});

describe('folding a dynamic-shape graph', () => {
  // y = Reshape(x, [B, T, 2, C/2]) with the target built from Shape(x), the torch way, plus a Range of positions.
  function dynamicModel(): Model {
    const g = emptyGraph('dyn');
    const b = new GraphBuilder(g);
    const x = b.input('x', 'float32', ['B', 'T', 8]);
    const s = b.shape(x);
    const bt = b.op('Slice', [s, b.ints([0]), b.ints([2]), b.ints([0])]);
    const half = b.op('Div', [b.op('Gather', [s, b.ints([2])], { axis: 0 }), b.ints([2])]);
    const y = b.reshape(x, b.concat([bt, b.ints([2]), half], 0));
    const t = b.op('Gather', [s, b.constant('int64', [], [1])], { axis: 0 });
    const pos = b.op('Range', [b.constant('int64', [], [0]), t, b.constant('int64', [], [1])]);
    b.initializer('unused_weight', tensorFromNumbers('float32', [2], [1, 2]));
    g.outputs.push({ name: y, dtype: 'float32', shape: null }, { name: pos, dtype: 'int64', shape: null });
    return newModel(g, 17);
  }

  function input(bn: number, tn: number): Tensor {
    return tensorFromNumbers('float32', [bn, tn, 8], Array.from({ length: bn * tn * 8 }, (_, i) => i * 0.5 - 3));
  }

  it('with static input shapes the whole shape subgraph becomes initializers', async () => {
    const model = dynamicModel();
    const folded = foldConstants(model, { x: [3, 5, 8] });
    expect(folded.graph.nodes.map((n) => n.opType).sort()).toEqual(['Range', 'Reshape']);
    expect(folded.graph.initializers.has('unused_weight')).toBe(false);
    const reshapeTarget = folded.graph.initializers.get(folded.graph.nodes.find((n) => n.opType === 'Reshape')!.inputs[1])!;
    expect(Array.from(tensorToNumbers(reshapeTarget))).toEqual([3, 5, 2, 4]);
    expect(folded.graph.inputs[0].shape).toEqual([3, 5, 8]);
    expectIdentical(await runModel(folded, { x: input(3, 5) }), await runModel(model, { x: input(3, 5) }));
  });

  it('with symbolic shapes only what is known is folded and the model stays dynamic', async () => {
    const model = dynamicModel();
    const folded = foldConstants(model);
    expect(folded.graph.nodes.some((n) => n.opType === 'Shape')).toBe(true);
    for (const [bn, tn] of [
      [1, 2],
      [4, 7],
    ]) {
      expectIdentical(await runModel(folded, { x: input(bn, tn) }), await runModel(model, { x: input(bn, tn) }));
    }
  });

  it('a graph output produced by a foldable node stays produced by a node', async () => {
    const g = emptyGraph();
    const b = new GraphBuilder(g);
    const x = b.input('x', 'float32', [2, 3]);
    const s = b.shape(x);
    g.outputs.push({ name: s, dtype: 'int64', shape: null }, { name: b.op('Relu', [x]), dtype: 'float32', shape: null });
    const folded = foldConstants(newModel(g, 17));
    expect(folded.graph.nodes.some((n) => n.outputs.includes(s))).toBe(true);
    const out = await runModel(folded, { x: tensorFromNumbers('float32', [2, 3], [1, -2, 3, -4, 5, -6]) });
    expect(Array.from(tensorToNumbers(out[s]))).toEqual([2, 3]);
  });
});
