// Shape inference checked against onnxruntime: every intermediate value of the fixtures, and a table of small graphs
// covering every op we claim, is made a graph output, run, and its real dtype and dims compared with the inference.

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { GraphBuilder, float, floats } from './builder.js';
import { type DType, type Dim, type Model, type Tensor, dtypeCode, emptyGraph, newModel, tensorFromNumbers, tensorToNumbers } from './ir.js';
import { loadModel } from './proto.js';
import { runModel } from './ort.js';
import { readSafetensors } from './safetensors.js';
import { SHAPE_RULE_OPS, analyzeShapes, inferShapes, valueInfoOf } from './shapes.js';
import { SUPPORTED_OPS } from './support.js';

// The reference fixtures live beside the repository (../shared/fixtures).
const FIXTURES = fileURLToPath(new URL('../../../shared/fixtures', import.meta.url));

/** Makes every node output a graph output (typed by the inference, shape left to ORT) and runs the model. */
async function runAllValues(model: Model, feeds: Record<string, Tensor>, dtypes: Map<string, DType>): Promise<Record<string, Tensor>> {
  const g = model.graph;
  const outputs = new Set(g.outputs.map((o) => o.name));
  const extra = g.nodes.flatMap((n) => n.outputs).filter((o) => o && !outputs.has(o));
  const probe: Model = {
    ...model,
    graph: { ...g, outputs: [...g.outputs, ...extra.map((name) => ({ name, dtype: dtypes.get(name)!, shape: null }))] },
  };
  return runModel(probe, feeds, { optimize: false });
}

function refInputs(name: string): Record<string, Tensor> {
  const feeds: Record<string, Tensor> = {};
  for (const [k, t] of readSafetensors(join(FIXTURES, `${name}.ref.safetensors`)).tensors) {
    if (k.startsWith('input.')) feeds[k.slice('input.'.length)] = t;
  }
  return feeds;
}

describe('fixtures: every value against ORT', () => {
  for (const name of ['gpt2_tiny', 'vit_tiny', 'mlp_projector']) {
    it(`${name}: static shapes exact, symbolic batch keeps ranks and true dims`, async () => {
      const model = loadModel(join(FIXTURES, `${name}.onnx`));
      const info = inferShapes(model);
      const symbolic = inferShapes(model, Object.fromEntries(model.graph.inputs.map((i) => [i.name, ['batch', ...i.shape!.slice(1)]])));
      const got = await runAllValues(model, refInputs(name), new Map([...info].map(([k, v]) => [k, v.dtype])));
      const produced = model.graph.nodes.flatMap((n) => n.outputs).filter(Boolean);
      expect(Object.keys(got).length).toBe(produced.length);
      for (const v of produced) {
        const t = got[v];
        expect(info.get(v)?.dtype, v).toBe(t.dtype);
        expect(info.get(v)?.shape, v).toEqual(t.dims);
        const s = symbolic.get(v)!.shape;
        expect(s?.length, `rank of ${v}`).toBe(t.dims.length);
        s!.forEach((d, i) => {
          if (typeof d === 'number') expect(d, `${v}[${i}]`).toBe(t.dims[i]);
          else expect(d === 'batch' ? t.dims[i] : 2, `${v}[${i}] = ${d}`).toBe(2);
        });
      }
      // Inputs and initializers are described too.
      for (const k of model.graph.initializers.keys()) expect(info.has(k)).toBe(true);
      for (const i of model.graph.inputs) expect(symbolic.get(i.name)?.shape?.[0]).toBe('batch');
    });
  }

  it('mlp_projector: symbolic batch and sequence are carried through, and are right at another size', async () => {
    const model = loadModel(join(FIXTURES, 'mlp_projector.onnx'));
    model.graph.inputs[0].shape = ['batch', 'tokens', 32];
    const info = inferShapes(model);
    expect(info.get('image_embeds')?.shape).toEqual(['batch', 'tokens', 48]);
    const x = tensorFromNumbers('float32', [3, 5, 32], Array.from({ length: 480 }, (_, i) => Math.sin(i)));
    const got = await runAllValues(model, { image_features: x }, new Map([...info].map(([k, v]) => [k, v.dtype])));
    for (const [v, t] of Object.entries(got)) {
      const s = info.get(v)!.shape!;
      expect(s.map((d) => (d === 'batch' ? 3 : d === 'tokens' ? 5 : d)), v).toEqual(t.dims);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Op table

interface Case {
  name: string;
  opset?: number;
  inputs: Array<{ name: string; dtype: DType; dims: number[]; values?: number[] }>;
  build: (b: GraphBuilder, x: string[]) => void;
  /** Values whose rank may become unknown when dim 0 of every input is symbolic. */
  symbolicUnknown?: string[];
  /** Skip the symbolic variant (e.g. inputs whose dim 0 is not a free size). */
  noSymbolic?: boolean;
}

const I = (name: string, dims: number[], dtype: DType = 'float32', values?: number[]) => ({ name, dims, dtype, values });

const CASES: Case[] = [
  {
    name: 'unary elementwise',
    opset: 20,
    inputs: [I('x', [2, 3, 4])],
    build: (b, [x]) => {
      for (const op of ['Neg', 'Sqrt', 'Reciprocal', 'Exp', 'Log', 'Tanh', 'Sigmoid', 'Relu', 'Erf', 'Sin', 'Cos', 'Abs', 'Sign', 'Floor', 'Ceil', 'Round', 'Identity']) {
        b.op(op, [x]);
      }
      b.op('LeakyRelu', [x], { alpha: 0.1 });
      b.op('Gelu', [x], { approximate: 'tanh' });
      b.op('Clip', [x, b.scalar(-0.5), b.scalar(0.5)]);
      b.op('IsNaN', [x]);
      b.op('IsInf', [x]);
      b.op('Softmax', [x], { axis: 1 });
      b.op('LogSoftmax', [x], { axis: -1 });
      b.op('Trilu', [x, b.constant('int64', [], [1])], { upper: 0 });
      b.op('CumSum', [x, b.constant('int64', [], [2])]);
      b.op('Dropout', [x], {}, { outputs: ['drop_y', 'drop_mask'] });
      b.op('RandomUniformLike', [x]);
      b.op('RandomNormalLike', [x], { dtype: dtypeCode('float64') });
      b.op('Cast', [x], { to: dtypeCode('int32') });
      b.op('CastLike', [x, b.constant('float64', [], [1])]);
    },
  },
  {
    name: 'broadcasting arithmetic and logic',
    inputs: [I('x', [2, 3, 4]), I('y', [3, 1]), I('i', [2, 1, 4], 'int64', [1, 2, 3, 4, 5, 6, 7, 8]), I('j', [3, 1], 'int64', [3, -2, 5])],
    build: (b, [x, y, i, j]) => {
      for (const op of ['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Min', 'Max', 'Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual']) b.op(op, [x, y]);
      b.op('Sum', [x, y, b.constant('float32', [4], [1, 2, 3, 4])]);
      b.op('Mean', [y, x]);
      b.op('Mod', [i, j]);
      const p = b.op('Greater', [x, y]);
      const q = b.op('Less', [y, b.scalar(0)]);
      b.op('Not', [p]);
      for (const op of ['And', 'Or', 'Xor']) b.op(op, [p, q]);
      b.op('Where', [q, x, b.scalar(0)]);
    },
  },
  {
    name: 'MatMul ranks and Gemm',
    inputs: [I('a', [2, 3, 4]), I('v', [4]), I('w', [4, 5]), I('bw', [5, 1, 4, 6]), I('g', [4, 3])],
    noSymbolic: true,
    build: (b, [a, v, w, bw, g]) => {
      b.matmul(a, w);
      b.matmul(v, w);
      b.matmul(a, v);
      b.matmul(v, v);
      b.matmul(a, bw);
      b.op('Gemm', [g, b.constant('float32', [5, 4], Array(20).fill(1)), b.constant('float32', [5], [1, 2, 3, 4, 5])], { transA: 1, transB: 1, alpha: 0.5 });
    },
  },
  {
    name: 'convolutions',
    inputs: [I('x', [1, 4, 9, 10]), I('s', [2, 3, 11])],
    build: (b, [x, s]) => {
      const w = b.constant('float32', [6, 2, 3, 3], Array(108).fill(0.1));
      b.op('Conv', [x, w], { group: 2, strides: [2, 2], pads: [1, 0, 1, 2], dilations: [1, 2] });
      b.op('Conv', [x, w, b.constant('float32', [6], Array(6).fill(1))], { group: 2, auto_pad: 'SAME_UPPER', strides: [2, 3] });
      b.op('Conv', [s, b.constant('float32', [5, 3, 4], Array(60).fill(0.1))], { strides: [2] });
      const wt = b.constant('float32', [4, 3, 3, 3], Array(108).fill(0.1));
      b.op('ConvTranspose', [x, wt], { group: 2, strides: [2, 2], output_padding: [1, 0], pads: [1, 1, 0, 1] });
      b.op('ConvTranspose', [x, wt], { group: 2, strides: [2, 3], dilations: [2, 1] });
      b.op('MaxPool', [x], { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 }, { outputs: ['mp_y', 'mp_idx'] });
      b.op('MaxPool', [x], { kernel_shape: [2, 3], pads: [1, 1, 1, 1], dilations: [2, 1] });
      b.op('AveragePool', [x], { kernel_shape: [3, 2], strides: [2, 2], pads: [1, 0, 1, 0], count_include_pad: 1 });
      b.op('AveragePool', [x], { kernel_shape: [3, 3], strides: [3, 3], ceil_mode: 1 });
      b.op('AveragePool', [x], { kernel_shape: [3, 3], strides: [2, 2], auto_pad: 'SAME_LOWER' });
      b.op('GlobalAveragePool', [x]);
    },
  },
  {
    name: 'normalisations',
    opset: 21,
    inputs: [I('x', [2, 4, 3, 5])],
    build: (b, [x]) => {
      b.opN('LayerNormalization', [x, b.constant('float32', [3, 5], Array(15).fill(1)), b.constant('float32', [3, 5], Array(15).fill(0))], { axis: -2 }, ['ln_y', 'ln_mean', 'ln_inv']);
      const c4 = (v: number) => b.constant('float32', [4], Array(4).fill(v));
      b.op('InstanceNormalization', [x, c4(1), c4(0)]);
      b.op('GroupNormalization', [x, c4(1), c4(0)], { num_groups: 2 });
      b.op('BatchNormalization', [x, c4(1), c4(0), c4(0), c4(1)]);
    },
  },
  {
    name: 'reductions with axes as attributes (opset 17)',
    inputs: [I('x', [2, 3, 4])],
    build: (b, [x]) => {
      b.op('ReduceMean', [x], { axes: [-1], keepdims: 0 });
      b.op('ReduceSum', [x, b.ints([0, 2])], { keepdims: 1 });
      b.op('ReduceSum', [x], { keepdims: 0 });
      b.op('ReduceSum', [x, b.constant('int64', [0], [])], { keepdims: 1, noop_with_empty_axes: 1 });
      for (const op of ['ReduceL2', 'ReduceMax', 'ReduceMin', 'ReduceSumSquare', 'ReduceLogSumExp', 'ReduceProd']) b.op(op, [x], { axes: [1] });
      b.op('ReduceMax', [x], { keepdims: 0 });
      b.op('ArgMax', [x], { axis: 1, keepdims: 0 });
      b.op('ArgMin', [x], { axis: -1 });
    },
  },
  {
    name: 'reductions with axes as inputs (opset 18)',
    opset: 18,
    inputs: [I('x', [2, 3, 4])],
    build: (b, [x]) => {
      b.op('ReduceMean', [x, b.ints([1])], { keepdims: 0 });
      b.op('ReduceMax', [x, b.ints([-1, 0])]);
      b.op('ReduceL2', [x], { keepdims: 0 });
    },
  },
  {
    name: 'reshaping',
    opset: 18,
    inputs: [I('x', [2, 3, 4]), I('c', [3, 1])],
    build: (b, [x, c]) => {
      b.reshape(x, [0, -1]);
      b.op('Reshape', [x, b.ints([4, -1])], { allowzero: 1 });
      b.reshape(x, [-1, 2, 2]);
      b.op('Flatten', [x], { axis: 2 });
      b.op('Flatten', [x], { axis: 0 });
      b.op('Flatten', [x], { axis: -1 });
      const u = b.unsqueeze(x, [0, -1]);
      b.squeeze(u, [0, 4]);
      b.op('Squeeze', [c], {}, { name: 'squeeze_all' });
      b.transpose(x, [2, 0, 1]);
      b.op('Transpose', [x]);
      b.op('Expand', [c, b.ints([2, 1, 4])]);
      b.op('Tile', [x, b.ints([2, 1, 3])]);
      b.concat([x, x, b.op('Slice', [x, b.ints([0]), b.ints([1]), b.ints([2])])], -1);
      b.opN('Split', [x, b.ints([1, 3])], { axis: 2 }, 2);
      b.opN('Split', [x], { axis: 1, num_outputs: 3 }, 3);
      b.opN('Split', [b.op('Tile', [x, b.ints([1, 1, 2])])], { axis: 2, num_outputs: 3 }, 3);
    },
    symbolicUnknown: ['squeeze_all'],
  },
  {
    name: 'split with sizes input (opset 13)',
    opset: 13,
    inputs: [I('x', [2, 6])],
    build: (b, [x]) => {
      b.opN('Split', [x, b.ints([2, 4])], { axis: 1 }, 2);
      b.opN('Split', [x], { axis: -1 }, 2);
      b.op('Squeeze', [b.unsqueeze(x, [1]), b.ints([1])]);
    },
  },
  {
    name: 'slicing',
    inputs: [I('x', [5, 6, 7])],
    build: (b, [x]) => {
      b.op('Slice', [x, b.ints([1, -3]), b.ints([2 ** 31 - 1, -1]), b.ints([0, 2]), b.ints([1, 2])]);
      b.op('Slice', [x, b.ints([-1]), b.ints([-100]), b.ints([1]), b.ints([-2])]);
      b.op('Slice', [x, b.ints([2, 0]), b.ints([100, 3])]);
      b.op('Slice', [x, b.ints([4]), b.ints([1]), b.ints([-1])]);
    },
  },
  {
    name: 'gather and scatter',
    inputs: [
      I('x', [3, 4, 5]),
      I('idx', [2, 2], 'int64', [0, 3, -1, 2]),
      I('ge', [3, 2, 5], 'int64', Array(30).fill(1)),
      I('nd', [3, 2, 1], 'int64', [0, 1, 2, 0, 1, 2]),
      I('upd', [3, 2, 4, 5]),
    ],
    noSymbolic: true,
    build: (b, [x, idx, ge, nd, upd]) => {
      b.op('Gather', [x, idx], { axis: 1 });
      b.op('Gather', [x, b.constant('int64', [], [2])], { axis: -1 });
      b.op('GatherElements', [x, ge], { axis: 1 });
      b.op('GatherND', [x, nd], { batch_dims: 1 });
      b.op('GatherND', [x, b.constant('int64', [2, 2], [0, 1, 2, 3])]);
      b.op('ScatterND', [x, nd, upd], { reduction: 'add' });
      b.op('ScatterElements', [x, ge, b.op('GatherElements', [x, ge], { axis: 1 })], { axis: 1 });
    },
  },
  {
    name: 'resize, pad, einsum',
    opset: 18,
    inputs: [I('x', [1, 2, 4, 6]), I('m', [2, 3, 4])],
    build: (b, [x, m]) => {
      b.op('Resize', [x, '', b.constant('float32', [4], [1, 1, 2, 1.5])], { mode: 'nearest' });
      b.op('Resize', [x, '', '', b.ints([1, 2, 3, 5])], { mode: 'linear' });
      b.op('Resize', [x, '', '', b.ints([7, 9])], { axes: [2, 3] });
      b.op('Pad', [x, b.ints([0, 0, 1, 2, 0, 0, 3, 0])]);
      b.op('Pad', [x, b.ints([1, 2, 3, 4]), b.scalar(0), b.ints([1, -1])], { mode: 'constant' });
      b.op('Einsum', [m, b.constant('float32', [2, 4, 5], Array(40).fill(1))], { equation: 'bij,bjk->bik' });
      b.op('Einsum', [m], { equation: '...ij->...ji' });
      b.op('Einsum', [m, m], { equation: 'bij,bkj' });
      b.op('Einsum', [m], { equation: 'bij->' });
      b.op('Einsum', [m, b.constant('float32', [4], [1, 2, 3, 4])], { equation: '...j,j' });
    },
  },
  {
    name: 'resize with scales (opset 13)',
    opset: 13,
    inputs: [I('x', [1, 2, 4, 6])],
    build: (b, [x]) => {
      b.op('Resize', [x, b.constant('float32', [0], []), b.constant('float32', [4], [1, 1, 0.5, 1.7])]);
      b.op('Pad', [x, b.ints([0, 0, 1, 1, 0, 0, 1, 1])], { mode: 'reflect' });
    },
  },
  {
    name: 'shape tensors and generators',
    opset: 17,
    inputs: [I('x', [2, 3, 4]), I('lbl', [2, 4], 'int64', [0, 1, 2, 0, 1, 2, 0, 1])],
    build: (b, [x, lbl]) => {
      b.shape(x);
      b.op('Shape', [x], { start: 1 });
      b.op('Shape', [x], { start: -2, end: -1 });
      b.op('Size', [x]);
      b.op('ConstantOfShape', [b.shape(x)], { value: tensorFromNumbers('int32', [1], [3]) });
      b.op('Range', [b.constant('int64', [], [2]), b.constant('int64', [], [11]), b.constant('int64', [], [3])]);
      b.op('Range', [b.scalar(1), b.scalar(0), b.scalar(-0.25)]);
      b.op('NonZero', [b.op('Greater', [x, b.scalar(0)])]);
      b.op('OneHot', [lbl, b.constant('int64', [], [5]), b.constant('float32', [2], [0, 1])], { axis: 1 });
      b.opN('TopK', [x, b.ints([2])], { axis: 1 }, 2);
      b.opN('SoftmaxCrossEntropyLoss', [x, b.op('Slice', [lbl, b.ints([0]), b.ints([4]), b.ints([1])])], { reduction: 'none' }, 2);
      b.op('SoftmaxCrossEntropyLoss', [x, b.op('Slice', [lbl, b.ints([0]), b.ints([4]), b.ints([1])])]);
      b.op('Constant', [], { value_ints: [1, 2, 3] });
      b.op('Constant', [], { value_float: float(2.5) });
      b.op('Constant', [], { value_floats: floats([1, 2]) });
    },
    noSymbolic: true,
  },
];

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}

function buildCase(c: Case): { model: Model; feeds: Record<string, Tensor> } {
  const g = emptyGraph(c.name);
  const b = new GraphBuilder(g);
  const rnd = lcg(7);
  const feeds: Record<string, Tensor> = {};
  const names = c.inputs.map((i) => {
    const n = tensorFromNumbers(i.dtype, i.dims, i.values ?? Array.from({ length: i.dims.reduce((a, d) => a * d, 1) }, rnd));
    feeds[i.name] = n;
    return b.input(i.name, i.dtype, i.dims);
  });
  c.build(b, names);
  return { model: newModel(g, c.opset ?? 17), feeds };
}

describe('op table against ORT', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const { model, feeds } = buildCase(c);
      const info = inferShapes(model);
      const got = await runAllValues(model, feeds, new Map([...info].map(([k, v]) => [k, v.dtype])));
      const produced = model.graph.nodes.flatMap((n) => n.outputs).filter(Boolean);
      for (const v of produced) {
        const node = model.graph.nodes.find((n) => n.outputs.includes(v))!;
        const what = `${node.opType} ${node.name} → ${v}`;
        expect(info.get(v)?.dtype, what).toBe(got[v].dtype);
        // Random ops' outputs and data-dependent dims (NonZero) are only known in rank.
        if (node.opType === 'NonZero') expect(info.get(v)?.shape, what).toEqual([got[v].dims[0], null]);
        else expect(info.get(v)?.shape, what).toEqual(got[v].dims);
      }
      if (c.noSymbolic) return;
      const sym = inferShapes(model, Object.fromEntries(c.inputs.map((i) => [i.name, ['N', ...i.dims.slice(1)]])));
      for (const v of produced) {
        const s = sym.get(v)!.shape;
        if (c.symbolicUnknown?.some((u) => v.startsWith(u)) && s === null) continue;
        expect(s?.length, `rank of ${v} with symbolic N`).toBe(got[v].dims.length);
        s!.forEach((d, k) => {
          if (typeof d === 'number') expect(d, `${v}[${k}] with symbolic N`).toBe(got[v].dims[k]);
        });
      }
    });
  }
});

describe('coverage', () => {
  it('every supported op has a shape rule and is exercised by the op table above', () => {
    const exercised = new Set(CASES.flatMap((c) => buildCase(c).model.graph.nodes.map((n) => n.opType)));
    const missingRule = [...SUPPORTED_OPS].filter((op) => !SHAPE_RULE_OPS.has(op));
    const missingCase = [...SUPPORTED_OPS].filter((op) => !exercised.has(op));
    expect(missingRule).toEqual([]);
    expect(missingCase).toEqual([]);
  });
});

describe('integer value evaluator against ORT', () => {
  it('computes the same shape-tensor values ORT does', async () => {
    const g = emptyGraph();
    const b = new GraphBuilder(g);
    const x = b.input('x', 'float32', [3, 5, 8]);
    const s = b.shape(x);
    const neg = b.constant('int64', [3], [-7, 4, -2]);
    const d0 = b.op('Gather', [s, b.constant('int64', [], [0])], { axis: 0 });
    const pair = b.op('Gather', [s, b.ints([2, -1])], { axis: 0 });
    const grid = b.reshape(b.concat([s, neg], 0), [2, 3]);
    b.op('Gather', [grid, b.ints([1, 0])], { axis: 1 });
    b.op('Gather', [grid, b.constant('int64', [], [1])], { axis: 0 });
    b.op('Slice', [s, b.ints([-1]), b.ints([-(2 ** 31)]), b.ints([0]), b.ints([-1])]);
    b.op('Slice', [grid, b.ints([1]), b.ints([3]), b.ints([1])]);
    b.unsqueeze(d0, [0]);
    b.squeeze(pair, []);
    b.cast(s, 'int32');
    b.cast(neg, 'bool');
    for (const op of ['Add', 'Sub', 'Mul', 'Div', 'Mod', 'Min', 'Max', 'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual']) b.op(op, [s, neg]);
    b.op('Mod', [s, neg], { fmod: 1 });
    b.op('Mod', [neg, s]);
    b.op('Div', [neg, b.ints([2])]);
    b.op('Neg', [s]);
    b.op('Abs', [neg]);
    b.op('Not', [b.op('Less', [s, neg])]);
    b.op('Where', [b.op('Equal', [s, b.ints([5])]), neg, s]);
    b.op('ConstantOfShape', [pair], { value: tensorFromNumbers('int64', [1], [7]) });
    b.op('Range', [b.constant('int64', [], [10]), d0, b.constant('int64', [], [-3])]);
    b.op('Expand', [b.reshape(d0, [1, 1]), b.ints([2, 3])]);
    b.op('ReduceProd', [s], { keepdims: 0 });
    b.op('ReduceSum', [s, b.ints([0])], { keepdims: 1 });
    b.op('Size', [x]);
    b.op('Flatten', [b.reshape(s, [1, 3, 1])], { axis: 2 });
    const model = newModel(g, 17);
    const { info, values } = analyzeShapes(model);
    const got = await runAllValues(model, { x: tensorFromNumbers('float32', [3, 5, 8], new Array(120).fill(1)) }, new Map([...info].map(([k, v]) => [k, v.dtype])));
    for (const n of g.nodes) {
      for (const o of n.outputs) {
        const v = values.get(o);
        expect(v, `${n.opType} ${o} has a known value`).toBeDefined();
        expect(v!.dims, o).toEqual(got[o].dims);
        expect(v!.data, `${n.name} → ${o}`).toEqual(Array.from(tensorToNumbers(got[o])));
      }
    }
  });
});

describe('symbolic shape arithmetic', () => {
  it('resolves torch-style Shape → Gather → Concat → Reshape plumbing with symbolic dims', () => {
    const g = emptyGraph();
    const b = new GraphBuilder(g);
    const x = b.input('x', 'float32', ['batch', 'seq', 64]);
    const s = b.shape(x);
    const bs = b.op('Gather', [s, b.constant('int64', [1], [0])], { axis: 0 });
    const sq = b.op('Gather', [s, b.constant('int64', [1], [1])], { axis: 0 });
    const heads = b.reshape(x, b.concat([bs, sq, b.ints([4, -1])], 0));
    const merged = b.reshape(heads, b.concat([bs, b.ints([-1]), b.ints([16])], 0));
    const plus1 = b.op('Add', [sq, b.constant('int64', [1], [1])]);
    const padded = b.op('ConstantOfShape', [b.concat([bs, plus1], 0)], { value: tensorFromNumbers('float32', [1], [0]) });
    const pos = b.op('Range', [b.constant('int64', [], [0]), b.squeeze(sq, [0]), b.constant('int64', [], [1])]);
    const info = inferShapes(newModel(g, 17));
    expect(info.get(heads)?.shape).toEqual(['batch', 'seq', 4, 16]);
    expect(info.get(merged)?.shape).toEqual(['batch', '4*seq', 16]);
    expect(info.get(padded)?.shape).toEqual(['batch', 'seq+1']);
    expect(info.get(pos)?.shape).toEqual(['seq']);
    // With static input shapes everything is concrete.
    const fixed = inferShapes(newModel(g, 17), { x: [2, 5, 64] });
    expect(fixed.get(merged)?.shape).toEqual([2, 20, 16]);
    expect(fixed.get(padded)?.shape).toEqual([2, 6]);
  });

  it('valueInfoOf names a missing value', () => {
    const model = loadModel(join(FIXTURES, 'mlp_projector.onnx'));
    expect(valueInfoOf(model, 'image_embeds')).toEqual({ name: 'image_embeds', dtype: 'float32', shape: [2, 17, 48] });
    expect(() => valueInfoOf(model, 'nope')).toThrow(/no value named 'nope'/);
  });
});

describe('errors and unknown ops', () => {
  function single(op: string, shapes: Dim[][], attrs = {}, domain = ''): Model {
    const g = emptyGraph();
    const b = new GraphBuilder(g);
    const ins = shapes.map((s, i) => b.input(`in${i}`, 'float32', s));
    b.op(op, ins, attrs, { name: 'the_node', domain });
    return newModel(g, 17);
  }

  it('MatMul with concrete, different inner dims names the node', () => {
    expect(() => inferShapes(single('MatMul', [[2, 3], [4, 5]]))).toThrow(/node 'the_node' \(MatMul\): inner dimensions differ: \[2,3\] × \[4,5\]/);
    // Symbolic inner dims are not a contradiction.
    expect(inferShapes(single('MatMul', [['b', 'k'], [4, 5]])).get('the_node_out')?.shape).toEqual(['b', 5]);
  });

  it('incompatible broadcasts, concats and reshapes name the node', () => {
    expect(() => inferShapes(single('Add', [[2, 3], [4, 3]]))).toThrow(/node 'the_node' \(Add\): cannot broadcast/);
    expect(() => inferShapes(single('Concat', [[2, 3], [4, 5]], { axis: 0 }))).toThrow(/node 'the_node' \(Concat\): inputs disagree on dim 1/);
    const g = emptyGraph();
    const b = new GraphBuilder(g);
    b.op('Reshape', [b.input('x', 'float32', [2, 3]), b.ints([4, -1])], {}, { name: 'rs' });
    expect(() => inferShapes(newModel(g, 17))).toThrow(/node 'rs' \(Reshape\): cannot reshape \[2,3\] \(6 elements\)/);
  });

  it('an unknown op gets its first input dtype and an unknown shape, without throwing', () => {
    const info = inferShapes(single('FancyAttention', [[2, 3]], {}, 'com.example'));
    expect(info.get('the_node_out')).toEqual({ name: 'the_node_out', dtype: 'float32', shape: null });
  });

  it('input shapes must name real inputs and match their rank', () => {
    const model = single('Relu', [['b', 3]]);
    expect(() => inferShapes(model, { nope: [1] })).toThrow(/no input of that name/);
    expect(() => inferShapes(model, { in0: [1, 2, 3] })).toThrow(/input 'in0' has rank 2/);
  });
});
