// The float64 twin used by finite differences: widened types, float64 replacements (erf, Conv, pools, norms,
// hard activations, nearest Resize), float32 fallback per op type.

import { describe, expect, it } from 'vitest';
import { type AttrsInput, GraphBuilder } from '../onnx/builder.js';
import { type Model, type Tensor, emptyGraph, newModel, tensorFromNumbers, tensorToNumbers } from '../onnx/ir.js';
import { createSession, runSession } from '../onnx/ort.js';
import { createFloat64Session, widenFeeds, widenToFloat64 } from './float64.js';
import { compareToReference, randomTensorLike } from './gradcheck.js';

function unaryModel(op: string, n: number): Model {
  const graph = emptyGraph('unary');
  const b = new GraphBuilder(graph);
  b.input('x', 'float32', [n]);
  b.output(b.op(op, ['x'], {}, { outputs: ['y'] }), 'float32', [n]);
  return newModel(graph, 17);
}

describe('float64 twin', () => {
  it('computes erf to ~1e-13 in float64 ops (float32 Erf is only good to ~1e-7)', async () => {
    // erf at these points, to 16 digits.
    const table: Array<[number, number]> = [
      [0, 0],
      [0.1, 0.1124629160182849],
      [-0.5, -0.5204998778130465],
      [1, 0.8427007929497149],
      [2, 0.9953222650189527],
      [2.5, 0.999593047982555],
      [-3, -0.9999779095030014],
      [6, 1],
    ];
    const model = unaryModel('Erf', table.length);
    const twin = await createFloat64Session(model);
    expect(twin).not.toBeNull();
    expect(twin!.narrowed).toEqual([]);
    expect(twin!.model.graph.nodes.some((n) => n.opType === 'Erf')).toBe(false);
    const x = tensorFromNumbers('float64', [table.length], table.map(([v]) => v));
    const y = tensorToNumbers((await runSession(twin!.session, { x }, ['y'])).y);
    await twin!.session.release();
    table.forEach(([, want], i) => expect(Math.abs(y[i] - want)).toBeLessThan(1e-13));
  });

  it('widens inputs, outputs, initializers, constants and casts', () => {
    const graph = emptyGraph('w');
    const b = new GraphBuilder(graph);
    b.input('x', 'float32', [2]);
    const w = b.initializer('w', tensorFromNumbers('float32', [2], [1, 2]));
    const c = b.constant('float32', [], [0.5]);
    const y = b.op('Cast', [b.op('Mul', [b.op('Add', ['x', w]), c])], { to: 1 }, { outputs: ['y'] });
    b.output(y, 'float32', [2]);
    const twin = widenToFloat64(newModel(graph, 17));
    expect(twin.graph.inputs[0].dtype).toBe('float64');
    expect(twin.graph.outputs[0].dtype).toBe('float64');
    expect(twin.graph.initializers.get('w')?.dtype).toBe('float64');
    expect(twin.graph.nodes.find((n) => n.opType === 'Cast')?.attrs.to).toEqual({ type: 'int', value: 11 });
    const constant = twin.graph.nodes.find((n) => n.opType === 'Constant');
    if (constant) expect(constant.attrs.value).toMatchObject({ type: 'tensor', value: { dtype: 'float64' } });
    else expect([...twin.graph.initializers.values()].every((t) => t.dtype !== 'float32')).toBe(true);
    expect(widenFeeds({ x: tensorFromNumbers('float32', [1], [1]) }).x.dtype).toBe('float64');
  });

  it('runs op types without a float64 kernel or replacement in float32 and names them', async () => {
    const graph = emptyGraph('elu');
    const b = new GraphBuilder(graph);
    b.input('x', 'float32', [3]);
    b.output(b.op('Tanh', [b.op('Elu', ['x'])], {}, { outputs: ['y'] }), 'float32', [3]);
    const twin = await createFloat64Session(newModel(graph, 17));
    expect(twin?.narrowed).toEqual(['Elu']);
    const x = tensorFromNumbers('float64', [3], [-1, 0.5, 2]);
    const y = tensorToNumbers((await runSession(twin!.session, { x }, ['y'])).y);
    await twin!.session.release();
    expect(Math.abs(y[0] - Math.tanh(Math.exp(-1) - 1))).toBeLessThan(1e-6);
    expect(Math.abs(y[2] - Math.tanh(2))).toBeLessThan(1e-12);
  });

  // Each replacement computes what the float32 op computes (to float32 accuracy), with no float32 op left.
  const replacements: Array<{ name: string; op: string; inputs: Array<{ dims: number[]; init?: boolean }>; attrs?: AttrsInput }> = [
    { name: 'Conv grouped, strided, dilated, padded', op: 'Conv', inputs: [{ dims: [2, 4, 7, 6] }, { dims: [6, 2, 2, 3], init: true }, { dims: [6], init: true }], attrs: { group: 2, strides: [2, 1], dilations: [1, 2], pads: [1, 0, 0, 2] } },
    { name: 'Conv 1-D depthwise', op: 'Conv', inputs: [{ dims: [1, 3, 9] }, { dims: [3, 1, 3] }], attrs: { group: 3, pads: [1, 1] } },
    { name: 'GlobalAveragePool', op: 'GlobalAveragePool', inputs: [{ dims: [2, 3, 4, 5] }] },
    { name: 'InstanceNormalization', op: 'InstanceNormalization', inputs: [{ dims: [2, 3, 4, 5] }, { dims: [3], init: true }, { dims: [3], init: true }], attrs: { epsilon: 1e-3 } },
    { name: 'HardSigmoid', op: 'HardSigmoid', inputs: [{ dims: [4, 5] }], attrs: { alpha: 0.3, beta: 0.4 } },
    { name: 'HardSwish', op: 'HardSwish', inputs: [{ dims: [4, 5] }] },
    { name: 'Resize nearest x2', op: 'Resize', inputs: [{ dims: [1, 2, 3, 3] }], attrs: { mode: 'nearest' } },
  ];
  for (const r of replacements) {
    it(`replaces ${r.name} with float64 ops`, async () => {
      const graph = emptyGraph('op');
      const b = new GraphBuilder(graph);
      const feeds: Record<string, Tensor> = {};
      const names = r.inputs.map((spec, i) => {
        const t = randomTensorLike('float32', spec.dims, 11 + i, 3);
        if (spec.init) return b.initializer(`w${i}`, t);
        feeds[`x${i}`] = t;
        return b.input(`x${i}`, 'float32', spec.dims);
      });
      if (r.op === 'Resize') names.push('', b.constant('float32', [4], [1, 1, 2, 2]));
      b.output(b.op(r.op, names, r.attrs ?? {}, { outputs: ['y'] }), 'float32', null);
      const model = newModel(graph, 17);
      const twin = await createFloat64Session(model);
      expect(twin?.narrowed).toEqual([]);
      expect(twin!.model.graph.nodes.some((n) => n.opType === r.op && r.op !== 'Resize')).toBe(false);
      const ours = tensorToNumbers((await runSession(twin!.session, widenFeeds(feeds), ['y'])).y);
      await twin!.session.release();
      const session = await createSession(model);
      const want = (await runSession(session, feeds, ['y'])).y;
      await session.release();
      expect(ours.length).toBe(tensorToNumbers(want).length);
      expect(compareToReference('y', want, ours, { rtol: 1e-5, atol: 1e-5 }).ok).toBe(true);
    });
  }
});

describe('compareToReference', () => {
  it('matches equal infinities and never a NaN', () => {
    const ours = tensorFromNumbers('float32', [3], [Infinity, -Infinity, Number.NaN]);
    const tol = { rtol: 1e-3, atol: 1e-5 };
    expect(compareToReference('t', ours, [Infinity, -Infinity, 0], tol, [0, 1]).ok).toBe(true);
    expect(compareToReference('t', ours, [Number.NaN], tol, [2]).ok).toBe(false);
    expect(compareToReference('t', ours, [-Infinity], tol, [0]).ok).toBe(false);
  });
});
