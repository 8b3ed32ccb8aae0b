// Backward-graph properties beyond single rules: size-agnostic graphs, clear errors, stop paths, accumulation.

import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../onnx/builder.js';
import { type Tensor, emptyGraph, newModel, tensorFromNumbers, tensorToNumbers } from '../onnx/ir.js';
import { createSession, runSession } from '../onnx/ort.js';
import { inferShapes } from '../onnx/shapes.js';
import { attachWeightedLoss, compareToReference, finiteDifferenceGradients, randomTensorLike } from './gradcheck.js';
import { buildGradientGraph } from './gradient.js';
import { planGradients } from './requires-grad.js';
import { gradientsFor } from './rules/rule-check.test-support.js';

describe('one backward graph with a symbolic batch dim', () => {
  it('gives correct gradients at two batch sizes', async () => {
    // y = Tanh(LayerNorm(x·W + b) ⊙ gate) with x [batch, 4], gate [batch, 1] (broadcast over a symbolic dim).
    const graph = emptyGraph('batch_agnostic');
    const b = new GraphBuilder(graph);
    b.input('x', 'float32', ['batch', 4]);
    b.input('gate', 'float32', ['batch', 1]);
    b.input('W', 'float32', [4, 3]);
    b.input('bias', 'float32', [3]);
    const scale = b.constant('float32', [3], [1.2, 0.8, 1]);
    const h = b.add(b.matmul('x', 'W'), 'bias');
    const ln = b.op('LayerNormalization', [h, scale], { axis: -1 });
    const y = b.op('Tanh', [b.mul(ln, 'gate')], {}, { outputs: ['y'] });
    b.output(y, 'float32', ['batch', 3]);
    // Loss weights of shape [3] broadcast over any batch.
    const { model, loss } = attachWeightedLoss(newModel(graph, 17), { y: randomTensorLike('float32', [3], 5) }, ['y']);
    const wrt = ['x', 'gate', 'W', 'bias'];
    const feedsFor = (batch: number): Record<string, Tensor> => ({
      x: randomTensorLike('float32', [batch, 4], 11 + batch),
      gate: randomTensorLike('float32', [batch, 1], 17 + batch),
      W: randomTensorLike('float32', [4, 3], 23),
      bias: randomTensorLike('float32', [3], 29),
    });
    const feedSets = [feedsFor(2), feedsFor(3)];
    const shapes = { x: ['batch', 4], gate: ['batch', 1], W: [4, 3], bias: [3] };
    const results = await gradientsFor(model, loss, wrt, shapes, feedSets);
    for (let k = 0; k < feedSets.length; k++) {
      const fd = await finiteDifferenceGradients(model, feedSets[k], wrt, loss, { step: 3e-3 });
      for (const w of wrt) {
        expect(results[k][w].dims).toEqual(feedSets[k][w].dims);
        const check = compareToReference(w, results[k][w], fd[w].values, { rtol: 1e-2, atol: 1e-3 }, fd[w].indices);
        expect(check.ok, `${w} at batch ${feedSets[k].x.dims[0]}: max abs ${check.maxAbsError}`).toBe(true);
      }
    }
  });
});

describe('errors and stop paths', () => {
  it('names the op and node of an unsupported op on the gradient path', () => {
    const graph = emptyGraph('unsupported');
    const b = new GraphBuilder(graph);
    b.input('m', 'float32', [3, 3]);
    const d = b.op('Det', ['m'], {}, { name: 'my_det' });
    b.output(d, 'float32', []);
    expect(() => buildGradientGraph(newModel(graph, 17), { loss: d, wrt: ['m'] })).toThrow(
      /Det node 'my_det' lies on the gradient path but the op has no gradient rule/,
    );
  });

  it('names the domain of a contrib op on the gradient path', () => {
    const graph = emptyGraph('contrib');
    const b = new GraphBuilder(graph);
    b.input('x', 'float32', [2, 3]);
    const y = b.op('FastGelu', ['x'], {}, { name: 'fused_gelu', domain: 'com.microsoft' });
    const l = b.op('ReduceSum', [y], { keepdims: 0 });
    b.output(l, 'float32', []);
    const model = newModel(graph, 17);
    model.opsets['com.microsoft'] = 1;
    expect(() => buildGradientGraph(model, { loss: l, wrt: ['x'] })).toThrow(/FastGelu node 'fused_gelu'.*domain 'com\.microsoft'/);
  });

  it('sends no gradient through shape, index and integer paths', async () => {
    // W reaches the loss only through Shape, ArgMax and a float→int→float round trip; x reaches it directly.
    const graph = emptyGraph('stops');
    const b = new GraphBuilder(graph);
    b.input('x', 'float32', [2, 3]);
    b.input('W', 'float32', [2, 3]);
    const ones = b.op('ConstantOfShape', [b.shape('W')], { value: tensorFromNumbers('float32', [1], [1]) });
    const arg = b.cast(b.op('ArgMax', ['W'], { axis: 1, keepdims: 1 }), 'float32');
    const rounded = b.cast(b.cast('W', 'int64'), 'float32');
    const reshaped = b.reshape('x', b.shape('W'));
    const y = b.add(b.add(b.mul(reshaped, ones), arg), rounded);
    const l = b.op('ReduceSum', [b.mul(y, y)], { keepdims: 0 });
    b.output(l, 'float32', []);
    const model = newModel(graph, 17);

    const plan = planGradients(graph, inferShapes(model), ['x', 'W'], l);
    expect(plan.unreachable).toEqual(['W']);
    const onPath = new Set(plan.nodes.map((n) => n.opType));
    for (const op of ['Shape', 'ConstantOfShape', 'ArgMax', 'Cast']) expect(onPath.has(op), op).toBe(false);

    const { model: withGrads, grads, unreachable } = buildGradientGraph(model, { loss: l, wrt: ['x', 'W'] });
    expect(unreachable).toEqual(['W']);
    const session = await createSession(withGrads);
    try {
      const x = randomTensorLike('float32', [2, 3], 3);
      const W = randomTensorLike('float32', [2, 3], 4);
      const out = await runSession(session, { x, W }, [grads.get('x')!, grads.get('W')!]);
      expect(Array.from(tensorToNumbers(out[grads.get('W')!]))).toEqual([0, 0, 0, 0, 0, 0]);
      expect(Array.from(tensorToNumbers(out[grads.get('x')!])).some((v) => v !== 0)).toBe(true);
    } finally {
      await session.release();
    }
  });

  it('accumulates the contributions of an input used twice (x·x)', async () => {
    const graph = emptyGraph('square');
    const b = new GraphBuilder(graph);
    b.input('x', 'float32', [4]);
    const l = b.op('ReduceSum', [b.mul('x', 'x')], { keepdims: 0 });
    b.output(l, 'float32', []);
    const { model, grads } = buildGradientGraph(newModel(graph, 17), { loss: l, wrt: ['x'] });
    const session = await createSession(model);
    try {
      const x = tensorFromNumbers('float32', [4], [1, -2, 0.5, 3]);
      const out = await runSession(session, { x }, [grads.get('x')!]);
      expect(Array.from(tensorToNumbers(out[grads.get('x')!]))).toEqual([2, -4, 1, 6]);
    } finally {
      await session.release();
    }
  });
});
