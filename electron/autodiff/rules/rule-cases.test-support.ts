// The finite-difference test table: at least one case per VJP rule, plus broadcasting, symbolic-dim and
// partial-gradient variants. Each family's *.test.ts runs its list; index.test.ts checks that every rule is covered.

import type { Dim } from '../../onnx/ir.js';
import type { InputSpec, RuleCase } from './rule-check.test-support.js';

/** A float graph input. */
const f = (dims: number[], opts: Partial<InputSpec> = {}): InputSpec => ({ dims, ...opts });
/** A float input that needs no gradient. */
const fNo = (dims: number[], opts: Partial<InputSpec> = {}): InputSpec => ({ dims, grad: false, ...opts });
/** An int64 constant (indices, axes, shapes, pads). */
const i64 = (dims: number[], values: number[]): InputSpec => ({ dims, dtype: 'int64', values, constant: true });
const ints = (values: number[]) => i64([values.length], values);
/** A float32 constant. */
const fConst = (dims: number[], values: number[]): InputSpec => ({ dims, values, constant: true });
/** A float input with symbolic dims in the symbolic run. */
const fSym = (dims: number[], symbolic: Dim[], opts: Partial<InputSpec> = {}): InputSpec => ({ dims, symbolic, ...opts });
const away = (dims: number[], margin = 0.1): InputSpec => ({ dims, awayFromZero: margin });
/** Well-separated values, for max/min-like ops. */
const distinct = (dims: number[]): InputSpec => ({ dims, distinct: true });

const unary = (op: string, spec: InputSpec = f([2, 3]), extra: Partial<RuleCase> = {}): RuleCase => ({
  name: op,
  op,
  inputs: [spec],
  ...extra,
});

export const ELEMENTWISE_CASES: RuleCase[] = [
  { name: 'Add broadcast [2,3]+[3]', op: 'Add', inputs: [f([2, 3]), f([3])] },
  { name: 'Add both broadcast [2,1,3]+[4,1]', op: 'Add', inputs: [f([2, 1, 3]), f([4, 1])] },
  {
    name: 'Add symbolic dims that may be 1 (dynamic sumTo)',
    op: 'Add',
    inputs: [fSym([2, 3], ['b', 'n']), fSym([1, 3], ['one', 'n'])],
  },
  { name: 'Add partial (second input only)', op: 'Add', inputs: [fNo([2, 3]), f([2, 3])] },
  { name: 'Sub broadcast', op: 'Sub', inputs: [f([2, 3]), f([2, 1])] },
  { name: 'Mul broadcast size-1 dims', op: 'Mul', inputs: [f([2, 3, 4]), f([3, 1])] },
  { name: 'Mul symbolic batch broadcast', op: 'Mul', inputs: [fSym([3, 2, 4], ['b', 2, 4]), fSym([1, 2, 1], ['u', 2, 'v'])] },
  { name: 'Div broadcast', op: 'Div', inputs: [f([2, 3]), away([3], 0.5)] },
  { name: 'Div partial (denominator only)', op: 'Div', inputs: [fNo([2, 3]), away([2, 1], 0.5)] },
  { name: 'Sum of three with broadcast', op: 'Sum', inputs: [f([2, 3]), f([3]), f([2, 1])] },
  { name: 'Mean of two', op: 'Mean', inputs: [f([2, 3]), f([1, 3])] },
  { name: 'Pow cube (float exponent)', op: 'Pow', inputs: [f([2, 3]), fConst([], [3])] },
  { name: 'Pow square', op: 'Pow', inputs: [f([2, 3]), fConst([], [2])] },
  { name: 'Pow sqrt on positives', op: 'Pow', inputs: [f([2, 3], { positive: true, awayFromZero: 0.3 }), fConst([], [0.5])] },
  { name: 'Pow int exponent', op: 'Pow', inputs: [f([2, 3]), i64([], [3])] },
  { name: 'Pow broadcast exponent', op: 'Pow', inputs: [f([3], { positive: true, awayFromZero: 0.3 }), fConst([2, 3], [1, 2, 3, 0.5, 1.5, 2.5])] },
  unary('Neg'),
  unary('Identity'),
  unary('Sqrt', f([2, 3], { positive: true, awayFromZero: 0.3 })),
  unary('Reciprocal', away([2, 3], 0.5)),
  unary('Exp'),
  unary('Log', f([2, 3], { positive: true, awayFromZero: 0.3 })),
  unary('Tanh'),
  unary('Sigmoid'),
  unary('Relu', away([3, 4])),
  { name: 'LeakyRelu alpha 0.2', op: 'LeakyRelu', inputs: [away([3, 4])], attrs: { alpha: 0.2 } },
  unary('Erf'),
  unary('Sin', f([2, 3], { scale: 3 })),
  unary('Cos', f([2, 3], { scale: 3 })),
  unary('Abs', away([3, 4])),
  unary('Softplus', f([2, 3], { scale: 3 })),
  { name: 'Gelu erf (opset 20)', op: 'Gelu', inputs: [f([2, 3], { scale: 3 })], opset: 20 },
  { name: 'Gelu tanh (opset 20)', op: 'Gelu', inputs: [f([2, 3], { scale: 3 })], attrs: { approximate: 'tanh' }, opset: 20 },
  {
    name: 'Clip with min and max',
    op: 'Clip',
    inputs: [f([2, 4], { values: [-0.9, -0.3, 0.2, 0.8, -0.6, 0.1, 0.45, -0.2] }), fConst([], [-0.5]), fConst([], [0.5])],
  },
  { name: 'Clip with max only', op: 'Clip', inputs: [f([2, 3], { values: [-0.9, -0.3, 0.2, 0.8, 0.1, 0.7] }), null, fConst([], [0.5])] },
  { name: 'Max of two with broadcast', op: 'Max', inputs: [distinct([2, 3]), f([3], { values: [-0.37, 0.13, 0.61] })] },
  { name: 'Min of three', op: 'Min', inputs: [f([2, 3]), f([2, 3]), f([1, 3])] },
  {
    name: 'Where with broadcast branches',
    op: 'Where',
    inputs: [{ dims: [2, 3], dtype: 'bool', values: [1, 0, 1, 0, 0, 1], constant: true }, f([2, 3]), f([3])],
  },
  {
    name: 'Where symbolic branches',
    op: 'Where',
    inputs: [{ dims: [2, 3], dtype: 'bool', values: [1, 0, 1, 0, 0, 1], constant: true }, fSym([2, 1], ['b', 'one']), fSym([1, 3], ['one2', 'n'])],
  },
  { name: 'Cast float32→float64', op: 'Cast', inputs: [f([2, 3])], attrs: { to: 11 } },
  { name: 'Dropout (inference)', op: 'Dropout', inputs: [f([2, 3])] },
];

export const LINALG_CASES: RuleCase[] = [
  { name: 'MatMul 2-D', op: 'MatMul', inputs: [f([2, 3]), f([3, 4])] },
  { name: 'MatMul batch broadcast', op: 'MatMul', inputs: [f([2, 1, 3, 4]), f([5, 4, 2])] },
  { name: 'MatMul shared weight, symbolic batch', op: 'MatMul', inputs: [f([2, 5, 3]), f([3, 4])] },
  { name: 'MatMul symbolic batch on both', op: 'MatMul', inputs: [fSym([2, 3, 4], ['b', 3, 4]), fSym([1, 4, 2], ['u', 4, 2])] },
  { name: 'MatMul 1-D right', op: 'MatMul', inputs: [f([2, 3, 4]), f([4])] },
  { name: 'MatMul 1-D left', op: 'MatMul', inputs: [f([4]), f([2, 4, 3])] },
  { name: 'MatMul 1-D both', op: 'MatMul', inputs: [f([4]), f([4])] },
  { name: 'MatMul partial (weight only)', op: 'MatMul', inputs: [fNo([2, 3]), f([3, 4])] },
  { name: 'MatMul frozen weight (input gradient by Gemm transB), symbolic batch', op: 'MatMul', inputs: [fSym([2, 5, 3], ['b', 't', 3]), fNo([3, 4])] },
  { name: 'Gemm plain with C [4]', op: 'Gemm', inputs: [f([3, 2]), f([2, 4]), f([4])] },
  { name: 'Gemm transA alpha beta C [3,1]', op: 'Gemm', inputs: [f([2, 3]), f([2, 4]), f([3, 1])], attrs: { transA: 1, alpha: 0.7, beta: 1.3 } },
  { name: 'Gemm transB C [1,4]', op: 'Gemm', inputs: [f([3, 2]), f([4, 2]), f([1, 4])], attrs: { transB: 1 } },
  { name: 'Gemm transA transB no C', op: 'Gemm', inputs: [f([2, 3]), f([4, 2])], attrs: { transA: 1, transB: 1, alpha: 2 } },
];

export const REDUCE_CASES: RuleCase[] = [
  { name: 'ReduceSum axes input keepdims 0', op: 'ReduceSum', inputs: [f([2, 3, 4]), ints([1])], attrs: { keepdims: 0 } },
  { name: 'ReduceSum all axes', op: 'ReduceSum', inputs: [f([2, 3])] },
  { name: 'ReduceSum negative axes keepdims', op: 'ReduceSum', inputs: [f([2, 3, 4]), ints([-1, 0])] },
  { name: 'ReduceMean attr axes (opset 17)', op: 'ReduceMean', inputs: [f([2, 3, 4])], attrs: { axes: [1, 2], keepdims: 0 } },
  { name: 'ReduceMean axes input (opset 18)', op: 'ReduceMean', inputs: [f([2, 3, 4]), ints([1])], opset: 18 },
  { name: 'ReduceSumSquare', op: 'ReduceSumSquare', inputs: [f([2, 3])], attrs: { axes: [1] } },
  { name: 'ReduceL2', op: 'ReduceL2', inputs: [f([2, 3])], attrs: { axes: [1], keepdims: 0 } },
  { name: 'ReduceLogSumExp', op: 'ReduceLogSumExp', inputs: [f([2, 3])], attrs: { axes: [1] } },
  { name: 'ReduceL1', op: 'ReduceL1', inputs: [away([2, 3])], attrs: { axes: [1], keepdims: 0 } },
  { name: 'ReduceL1 all axes, symbolic dims', op: 'ReduceL1', inputs: [{ ...away([2, 3]), symbolic: ['b', 'n'] }] },
  { name: 'ReduceLogSum', op: 'ReduceLogSum', inputs: [f([2, 3], { positive: true, awayFromZero: 0.3 })], attrs: { axes: [0] } },
  { name: 'ReduceMax', op: 'ReduceMax', inputs: [distinct([2, 3, 4])], attrs: { axes: [2], keepdims: 0 } },
  { name: 'ReduceMin', op: 'ReduceMin', inputs: [distinct([2, 3, 4])], attrs: { axes: [1] } },
  { name: 'Softmax last axis', op: 'Softmax', inputs: [f([2, 3, 4], { scale: 2 })] },
  { name: 'Softmax axis 1', op: 'Softmax', inputs: [f([2, 3, 4], { scale: 2 })], attrs: { axis: 1 } },
  { name: 'LogSoftmax', op: 'LogSoftmax', inputs: [f([2, 5], { scale: 2 })] },
  { name: 'LayerNormalization last axis', op: 'LayerNormalization', inputs: [f([2, 3, 4], { scale: 2 }), f([4]), f([4])], attrs: { epsilon: 1e-5 } },
  { name: 'LayerNormalization axis 1 no bias', op: 'LayerNormalization', inputs: [f([2, 3, 4], { scale: 2 }), f([3, 4])], attrs: { axis: 1 } },
  { name: 'LayerNormalization X only, with Mean output', op: 'LayerNormalization', inputs: [f([3, 4], { scale: 2 }), fNo([4]), fNo([4])], outputs: 2, lossOutputs: [0] },
];

export const SHAPE_CASES: RuleCase[] = [
  { name: 'Reshape', op: 'Reshape', inputs: [f([2, 3, 4]), ints([4, -1])] },
  { name: 'Flatten axis 2', op: 'Flatten', inputs: [f([2, 3, 2, 2])], attrs: { axis: 2 } },
  { name: 'Squeeze', op: 'Squeeze', inputs: [f([2, 1, 3]), ints([1])] },
  { name: 'Unsqueeze', op: 'Unsqueeze', inputs: [f([2, 3]), ints([0, 3])] },
  { name: 'Transpose perm', op: 'Transpose', inputs: [f([2, 3, 4])], attrs: { perm: [1, 2, 0] } },
  { name: 'Transpose default', op: 'Transpose', inputs: [f([2, 3])] },
  { name: 'Expand', op: 'Expand', inputs: [f([3, 1]), ints([2, 3, 4])] },
  { name: 'Concat axis 1, partial', op: 'Concat', inputs: [f([2, 1]), fNo([2, 3]), f([2, 2])], attrs: { axis: 1 } },
  { name: 'Split sizes, one output unused', op: 'Split', inputs: [f([2, 6]), ints([1, 2, 3])], attrs: { axis: 1 }, outputs: 3, lossOutputs: [0, 2] },
  { name: 'Split equal', op: 'Split', inputs: [f([4, 3])], outputs: 2 },
  { name: 'Slice negative step', op: 'Slice', inputs: [f([3, 5]), ints([-1]), ints([0]), ints([1]), ints([-2])] },
  { name: 'Slice two axes', op: 'Slice', inputs: [f([3, 5]), ints([1, 1]), ints([3, 100]), ints([0, 1])] },
  { name: 'Gather rows (repeats, negative)', op: 'Gather', inputs: [f([4, 3]), i64([2, 2], [0, 3, -1, 0])] },
  { name: 'Gather scalar index', op: 'Gather', inputs: [f([4, 3]), i64([], [2])] },
  { name: 'Gather axis 1', op: 'Gather', inputs: [f([2, 4, 3]), i64([3], [1, 1, -1])], attrs: { axis: 1 } },
  { name: 'GatherElements', op: 'GatherElements', inputs: [f([2, 3]), i64([2, 2], [0, 2, 1, 1])], attrs: { axis: 1 } },
  { name: 'GatherND', op: 'GatherND', inputs: [f([2, 3, 2]), i64([2, 2], [0, 1, 1, 2])] },
  { name: 'Tile', op: 'Tile', inputs: [f([2, 3]), ints([2, 2])] },
  { name: 'TopK last axis (indices unused)', op: 'TopK', inputs: [distinct([2, 5]), ints([2])], outputs: 2, lossOutputs: [0] },
  {
    name: 'TopK axis 0, smallest, symbolic dims',
    op: 'TopK',
    inputs: [{ ...distinct([4, 3]), symbolic: ['n', 'c'] }, ints([3])],
    attrs: { axis: 0, largest: 0 },
    outputs: 2,
    lossOutputs: [0],
  },
  { name: 'DepthToSpace DCR', op: 'DepthToSpace', inputs: [f([2, 8, 2, 3])], attrs: { blocksize: 2 } },
  {
    name: 'DepthToSpace CRD, symbolic dims',
    op: 'DepthToSpace',
    inputs: [fSym([1, 8, 3, 2], ['b', 'c', 'h', 'w'])],
    attrs: { blocksize: 2, mode: 'CRD' },
  },
  { name: 'SpaceToDepth', op: 'SpaceToDepth', inputs: [f([2, 2, 4, 6])], attrs: { blocksize: 2 } },
  { name: 'SpaceToDepth symbolic dims', op: 'SpaceToDepth', inputs: [fSym([1, 3, 6, 3], ['b', 'c', 'h', 'w'])], attrs: { blocksize: 3 } },
];

export const SPATIAL_CASES: RuleCase[] = [
  { name: 'Conv 3x3 pads 1 with bias', op: 'Conv', inputs: [f([2, 3, 5, 5]), f([4, 3, 3, 3]), f([4])], attrs: { pads: [1, 1, 1, 1] } },
  {
    name: 'Conv strides 2, dilations 2, asymmetric pads',
    op: 'Conv',
    inputs: [f([1, 2, 7, 6]), f([3, 2, 2, 3])],
    attrs: { strides: [2, 2], dilations: [2, 1], pads: [1, 0, 0, 2] },
  },
  { name: 'Conv groups 2', op: 'Conv', inputs: [f([2, 4, 4, 4]), f([6, 2, 3, 3])], attrs: { group: 2, pads: [1, 1, 1, 1] } },
  { name: 'Conv depthwise stride 2', op: 'Conv', inputs: [f([1, 3, 5, 5]), f([3, 1, 3, 3])], attrs: { group: 3, strides: [2, 2] } },
  { name: 'Conv SAME_UPPER stride 2', op: 'Conv', inputs: [f([1, 2, 5, 6]), f([2, 2, 3, 3])], attrs: { auto_pad: 'SAME_UPPER', strides: [2, 2] } },
  {
    name: 'Conv SAME_LOWER, symbolic spatial dims',
    op: 'Conv',
    inputs: [fSym([1, 2, 5, 4], ['b', 2, 'h', 'w']), f([2, 2, 2, 2])],
    attrs: { auto_pad: 'SAME_LOWER' },
  },
  { name: 'Conv VALID patch embed (k = s)', op: 'Conv', inputs: [f([2, 3, 4, 4]), f([5, 3, 2, 2]), f([5])], attrs: { auto_pad: 'VALID', strides: [2, 2] } },
  { name: 'Conv 1-D', op: 'Conv', inputs: [f([2, 2, 7]), f([3, 2, 3])], attrs: { strides: [2], pads: [1, 1] } },
  { name: 'Conv 3-D', op: 'Conv', inputs: [f([1, 2, 3, 3, 3]), f([2, 2, 2, 2, 2])], attrs: { pads: [1, 0, 0, 0, 1, 0] } },
  { name: 'Conv weight only', op: 'Conv', inputs: [fNo([2, 3, 4, 4]), f([2, 3, 3, 3])] },
  { name: 'ConvTranspose basic with bias', op: 'ConvTranspose', inputs: [f([2, 3, 3, 3]), f([3, 2, 3, 3]), f([2])] },
  {
    name: 'ConvTranspose strides 2, output_padding, pads',
    op: 'ConvTranspose',
    inputs: [f([1, 2, 3, 4]), f([2, 3, 3, 3])],
    attrs: { strides: [2, 2], output_padding: [1, 0], pads: [1, 0, 0, 1] },
  },
  { name: 'ConvTranspose groups 2 strided', op: 'ConvTranspose', inputs: [f([1, 4, 3, 3]), f([4, 1, 2, 2])], attrs: { group: 2, strides: [2, 2] } },
  { name: 'ConvTranspose dilations', op: 'ConvTranspose', inputs: [f([1, 2, 3, 3]), f([2, 2, 2, 2])], attrs: { dilations: [2, 2] } },
  { name: 'ConvTranspose SAME_UPPER stride 2', op: 'ConvTranspose', inputs: [f([1, 2, 3, 3]), f([2, 1, 3, 3])], attrs: { auto_pad: 'SAME_UPPER', strides: [2, 2] } },
  { name: 'ConvTranspose SAME_LOWER stride 2', op: 'ConvTranspose', inputs: [f([1, 2, 3, 3]), f([2, 1, 3, 3])], attrs: { auto_pad: 'SAME_LOWER', strides: [2, 2] } },
  {
    name: 'ConvTranspose output_shape',
    op: 'ConvTranspose',
    inputs: [f([1, 1, 3, 3]), f([1, 2, 3, 3])],
    attrs: { strides: [2, 2], output_shape: [4, 8] },
    staticOnly: true,
  },
  { name: 'MaxPool 2x2 stride 2 (Indices added)', op: 'MaxPool', inputs: [distinct([2, 2, 4, 4])], attrs: { kernel_shape: [2, 2], strides: [2, 2] } },
  {
    name: 'MaxPool overlapping with pads and Indices output',
    op: 'MaxPool',
    inputs: [distinct([1, 2, 5, 5])],
    attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [2, 2] },
    outputs: 2,
  },
  { name: 'MaxPool 1-D dilated', op: 'MaxPool', inputs: [distinct([2, 2, 7])], attrs: { kernel_shape: [2], dilations: [2] } },
  { name: 'AveragePool exclude pad', op: 'AveragePool', inputs: [f([2, 2, 5, 5])], attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [2, 2] } },
  {
    name: 'AveragePool include pad',
    op: 'AveragePool',
    inputs: [f([1, 2, 5, 4])],
    attrs: { kernel_shape: [3, 2], pads: [1, 0, 1, 1], count_include_pad: 1 },
  },
  { name: 'AveragePool ceil_mode', op: 'AveragePool', inputs: [f([1, 2, 6, 6])], attrs: { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 } },
  { name: 'AveragePool SAME_UPPER symbolic', op: 'AveragePool', inputs: [fSym([1, 2, 5, 5], ['b', 2, 'h', 'w'])], attrs: { kernel_shape: [2, 2], strides: [2, 2], auto_pad: 'SAME_UPPER' } },
  { name: 'AveragePool dilations (opset 19)', op: 'AveragePool', inputs: [f([1, 1, 6, 6])], attrs: { kernel_shape: [2, 2], dilations: [2, 2] }, opset: 19 },
  { name: 'GlobalAveragePool', op: 'GlobalAveragePool', inputs: [f([2, 3, 2, 3])] },
  { name: 'GlobalMaxPool', op: 'GlobalMaxPool', inputs: [distinct([2, 3, 2, 3])] },
  { name: 'Resize nearest x2 (scales)', op: 'Resize', inputs: [f([1, 2, 3, 3]), null, fConst([4], [1, 1, 2, 2])], attrs: { mode: 'nearest' } },
  {
    name: 'Resize nearest to sizes, asymmetric floor',
    op: 'Resize',
    inputs: [f([1, 1, 4, 3]), null, null, i64([4], [1, 1, 6, 7])],
    attrs: { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' },
  },
  { name: 'Resize linear x1.5 half_pixel', op: 'Resize', inputs: [f([2, 1, 4, 4]), null, fConst([4], [1, 1, 1.5, 1.5])], attrs: { mode: 'linear' } },
  {
    name: 'Resize linear align_corners downsample',
    op: 'Resize',
    inputs: [f([1, 2, 6, 5]), null, fConst([4], [1, 1, 0.5, 0.8])],
    attrs: { mode: 'linear', coordinate_transformation_mode: 'align_corners' },
  },
  { name: 'Resize cubic', op: 'Resize', inputs: [f([1, 1, 4, 4]), null, fConst([4], [1, 1, 2, 1.5])], attrs: { mode: 'cubic' } },
  {
    name: 'Resize linear antialias with axes (opset 18)',
    op: 'Resize',
    inputs: [f([1, 2, 8, 6]), null, fConst([2], [0.5, 0.5])],
    attrs: { mode: 'linear', antialias: 1, axes: [2, 3] },
    opset: 18,
  },
  { name: 'Pad constant (with a negative pad)', op: 'Pad', inputs: [f([2, 3]), ints([1, 0, 2, -1]), fConst([], [0.5])] },
  { name: 'Pad reflect', op: 'Pad', inputs: [f([2, 4]), ints([0, 2, 1, 3])], attrs: { mode: 'reflect' } },
  { name: 'Pad edge', op: 'Pad', inputs: [f([3, 2]), ints([2, 1, 1, 2])], attrs: { mode: 'edge' } },
  { name: 'Pad with axes (opset 18)', op: 'Pad', inputs: [f([2, 3, 2]), ints([1, 2]), null, ints([1])], opset: 18 },
  { name: 'InstanceNormalization', op: 'InstanceNormalization', inputs: [f([2, 3, 2, 3], { scale: 2 }), f([3]), f([3])] },
  { name: 'GroupNormalization-18 (per-group affine)', op: 'GroupNormalization', inputs: [f([2, 4, 3], { scale: 2 }), f([2]), f([2])], attrs: { num_groups: 2 }, opset: 18 },
  { name: 'GroupNormalization-21 (per-channel affine)', op: 'GroupNormalization', inputs: [f([2, 4, 2, 2], { scale: 2 }), f([4]), f([4])], attrs: { num_groups: 2 }, opset: 21 },
  {
    name: 'BatchNormalization (inference)',
    op: 'BatchNormalization',
    inputs: [f([2, 3, 2, 2]), f([3]), f([3]), fConst([3], [0.1, -0.2, 0.3]), fConst([3], [0.5, 1.5, 2])],
  },
];

const labels = (dims: number[], values: number[]) => i64(dims, values);

export const MISC_CASES: RuleCase[] = [
  { name: 'Trilu upper k=1', op: 'Trilu', inputs: [f([2, 3, 4]), i64([], [1])] },
  { name: 'Trilu lower', op: 'Trilu', inputs: [f([3, 3])], attrs: { upper: 0 } },
  { name: 'CumSum', op: 'CumSum', inputs: [f([2, 4]), i64([], [1])] },
  { name: 'CumSum exclusive reverse', op: 'CumSum', inputs: [f([3, 2]), i64([], [0])], attrs: { exclusive: 1, reverse: 1 } },
  { name: 'CastLike to float64', op: 'CastLike', inputs: [f([2, 3]), { dims: [1], dtype: 'float64', values: [0], constant: true }] },
  { name: 'ScatterND', op: 'ScatterND', inputs: [f([4, 3]), i64([2, 1], [1, 3]), f([2, 3])] },
  { name: 'ScatterND add', op: 'ScatterND', inputs: [f([4, 3]), i64([2, 1], [1, 1]), f([2, 3])], attrs: { reduction: 'add' } },
  { name: 'ScatterElements axis 1', op: 'ScatterElements', inputs: [f([2, 4]), i64([2, 2], [3, 0, 1, 2]), f([2, 2])], attrs: { axis: 1 } },
  { name: 'ScatterElements add', op: 'ScatterElements', inputs: [f([3, 2]), i64([2, 2], [0, 0, 0, 2]), f([2, 2])], attrs: { reduction: 'add' } },
  { name: 'Einsum matmul', op: 'Einsum', inputs: [f([2, 3]), f([3, 4])], attrs: { equation: 'ij,jk->ik' } },
  { name: 'Einsum attention scores', op: 'Einsum', inputs: [f([2, 2, 3, 4]), f([2, 2, 5, 4])], attrs: { equation: 'bhqd,bhkd->bhqk' } },
  { name: 'Einsum implicit output', op: 'Einsum', inputs: [f([2, 3]), f([3])], attrs: { equation: 'ij,j' } },
  { name: 'Einsum full sum (summed-only labels)', op: 'Einsum', inputs: [f([2, 3])], attrs: { equation: 'ij->' } },
  { name: 'Einsum outer product', op: 'Einsum', inputs: [f([2]), f([3])], attrs: { equation: 'i,j->ij' } },
  { name: 'Einsum label only in one operand', op: 'Einsum', inputs: [f([2, 3]), f([4])], attrs: { equation: 'ij,k->ik' } },
  { name: 'Einsum diagonal', op: 'Einsum', inputs: [f([3, 3])], attrs: { equation: 'ii->i' } },
  {
    name: 'Einsum ellipsis with broadcast',
    op: 'Einsum',
    inputs: [f([2, 3, 4]), f([1, 4, 2])],
    attrs: { equation: '...ij,...jk->...ik' },
    staticOnly: true,
  },
  { name: 'Einsum ellipsis on one side', op: 'Einsum', inputs: [f([2, 3, 4]), f([4, 2])], attrs: { equation: '...ij,jk->...ik' } },
  { name: 'Einsum diagonal times vector', op: 'Einsum', inputs: [f([3, 3]), f([3])], attrs: { equation: 'ii,i->' } },
  {
    name: 'SoftmaxCrossEntropyLoss mean',
    op: 'SoftmaxCrossEntropyLoss',
    inputs: [f([3, 4], { scale: 2 }), labels([3], [0, 3, 1])],
  },
  {
    name: 'SoftmaxCrossEntropyLoss sum, weights, [N,C,d]',
    op: 'SoftmaxCrossEntropyLoss',
    inputs: [f([2, 3, 2], { scale: 2 }), labels([2, 2], [0, 2, 1, 1]), fConst([3], [0.5, 2, 1])],
    attrs: { reduction: 'sum' },
  },
  {
    name: 'SoftmaxCrossEntropyLoss mean, weights, ignore_index',
    op: 'SoftmaxCrossEntropyLoss',
    inputs: [f([4, 3], { scale: 2 }), labels([4], [0, -100, 2, 1]), fConst([3], [0.5, 2, 1])],
    attrs: { ignore_index: -100 },
  },
  {
    name: 'SoftmaxCrossEntropyLoss none with log_prob output',
    op: 'SoftmaxCrossEntropyLoss',
    inputs: [f([3, 4], { scale: 2 }), { dims: [3], dtype: 'int32', values: [1, 0, 3], constant: true }],
    attrs: { reduction: 'none', ignore_index: 0 },
    outputs: 2,
  },
  {
    name: 'NegativeLogLikelihoodLoss mean, weights',
    op: 'NegativeLogLikelihoodLoss',
    inputs: [f([3, 4]), labels([3], [0, 3, 1]), fConst([4], [1, 0.5, 2, 1])],
  },
  { name: 'HardSigmoid', op: 'HardSigmoid', inputs: [f([2, 4], { values: [-3, -1, -0.2, 0.4, 1, 2.2, 3, -2] })], attrs: { alpha: 0.3, beta: 0.5 } },
  { name: 'HardSwish', op: 'HardSwish', inputs: [f([2, 4], { values: [-4, -2, -0.5, 0.5, 1.5, 2.5, 4, 0.1] })], opset: 17 },
  unary('Elu', away([2, 3]), { attrs: { alpha: 0.8 } }),
  unary('Selu', away([2, 3])),
  unary('Celu', away([2, 3]), { attrs: { alpha: 1.5 } }),
  { name: 'PRelu per-channel slope', op: 'PRelu', inputs: [away([2, 3, 2]), f([3, 1])] },
  { name: 'ThresholdedRelu', op: 'ThresholdedRelu', inputs: [f([2, 3], { values: [-1, 0.5, 1.5, 2, 0.9, 1.2] })] },
  { name: 'Shrink', op: 'Shrink', inputs: [f([2, 3], { values: [-1, 0.2, 0.9, -0.3, 0.7, -0.8] })], attrs: { lambd: 0.5, bias: 0.1 } },
  unary('Mish', f([2, 3], { scale: 3 }), { opset: 18 }),
  unary('Softsign', away([2, 3])),
  unary('Tan'),
  unary('Atan', f([2, 3], { scale: 2 })),
  unary('Asin', f([2, 3], { scale: 0.8 })),
  unary('Acos', f([2, 3], { scale: 0.8 })),
  unary('Sinh'),
  unary('Cosh'),
];

export const ALL_CASES: RuleCase[] = [...ELEMENTWISE_CASES, ...LINALG_CASES, ...REDUCE_CASES, ...SHAPE_CASES, ...SPATIAL_CASES, ...MISC_CASES];
