// Dtype and shape inference over the IR, with symbolic dims, plus a small evaluator of integer shape tensors
// (Shape → Gather → Concat → Reshape and friends) so torch.onnx exports get static shapes when input shapes are known.
//
// A dim is a number, a symbol from a graph input ("batch") or a derived expression ("sequence+1"), or null.
// Unknown ops never throw: they get the first input's dtype and an unknown shape. Contradictions (MatMul inner dims
// that are both concrete and differ, ...) throw an OnnxError naming the node.

import {
  type Attribute,
  type DType,
  type Dim,
  type Model,
  type Node,
  type Shape,
  type Tensor,
  type ValueInfo,
  OnnxError,
  dtypeFromCode,
  tensorSize,
  tensorToNumbers,
  topoSort,
} from './ir.js';

/** A small integer/bool tensor whose value is known; elements may be symbolic (e.g. from Shape of a symbolic dim). */
export interface KnownValue {
  dims: number[];
  data: Dim[];
}

export interface ShapeAnalysis {
  info: Map<string, ValueInfo>;
  /** Values known at build time: small int/bool tensors (and small float constants, used for Resize scales). */
  values: Map<string, KnownValue>;
}

/** Tensors larger than this are not tracked by value. */
export const MAX_KNOWN_ELEMENTS = 1024;

const INT_DTYPES: ReadonlySet<DType> = new Set(['int64', 'int32', 'int16', 'int8', 'uint8', 'uint16', 'uint32', 'uint64', 'bool']);

export function isIntegerDtype(d: DType): boolean {
  return INT_DTYPES.has(d);
}

export function opsetOf(model: Model): number {
  return model.opsets[''] ?? model.opsets['ai.onnx'] ?? 17;
}

/** Dtype and shape of every graph input, initializer and node output. */
export function inferShapes(model: Model, inputShapes?: Record<string, Dim[]>): Map<string, ValueInfo> {
  return analyzeShapes(model, inputShapes).info;
}

/** Dtype and shape of one value; throws when the graph has no value of that name. */
export function valueInfoOf(model: Model, name: string, inputShapes?: Record<string, Dim[]>): ValueInfo {
  const vi = inferShapes(model, inputShapes).get(name);
  if (!vi) throw new OnnxError(`graph '${model.graph.name}' has no value named '${name}'`);
  return vi;
}

export function analyzeShapes(model: Model, inputShapes: Record<string, Dim[]> = {}): ShapeAnalysis {
  const g = model.graph;
  const opset = opsetOf(model);
  const info = new Map<string, ValueInfo>();
  const values = new Map<string, KnownValue>();

  const inputNames = new Set(g.inputs.map((i) => i.name));
  for (const name of Object.keys(inputShapes)) {
    if (!inputNames.has(name)) {
      throw new OnnxError(`input shape given for '${name}', but graph '${g.name}' has no input of that name (inputs: ${[...inputNames].join(', ')})`);
    }
  }
  for (const [name, t] of g.initializers) {
    info.set(name, { name, dtype: t.dtype, shape: [...t.dims] });
    const kv = knownFromTensor(t);
    if (kv) values.set(name, kv);
  }
  for (const vi of g.inputs) {
    const given = inputShapes[vi.name];
    if (given && vi.shape && given.length !== vi.shape.length) {
      throw new OnnxError(`input '${vi.name}' has rank ${vi.shape.length} ${formatShape(vi.shape)}, but shape ${formatShape(given)} was given`);
    }
    info.set(vi.name, { name: vi.name, dtype: vi.dtype, shape: given ? [...given] : vi.shape ? [...vi.shape] : null });
  }
  const overridden = Object.keys(inputShapes).length > 0;

  for (const node of topoSort(g)) {
    const ctx = new NodeCtx(node, opset, info, values);
    const rule = node.domain === '' || node.domain === 'ai.onnx' ? RULES[node.opType] : undefined;
    let outs: OutInfo[];
    if (rule) {
      outs = rule(ctx);
    } else if (node.opType === 'If' && node.domain === '') {
      const branch = node.attrs.then_branch;
      outs = node.outputs.map((_, i) => ({
        dtype: branch?.type === 'graph' ? (branch.value.outputs[i]?.dtype ?? 'float32') : 'float32',
        shape: null,
      }));
    } else {
      const first = node.inputs.find((i) => i !== '');
      const dtype = first ? ctx.infoOf(first).dtype : 'float32';
      outs = node.outputs.map(() => ({ dtype, shape: null }));
    }
    node.outputs.forEach((name, i) => {
      if (!name) return;
      const o = outs[i] ?? { dtype: outs[0]?.dtype ?? 'float32', shape: null };
      let shape = o.shape;
      if (shape === null) {
        // Fall back on annotations carried by the file (only their rank when the input shapes were overridden).
        const ann = g.valueInfo.get(name);
        if (ann?.shape) shape = overridden ? ann.shape.map(() => null) : [...ann.shape];
      }
      info.set(name, { name, dtype: o.dtype, shape });
    });
    evaluate(ctx, node, info, values);
  }
  return { info, values };
}

interface OutInfo {
  dtype: DType;
  shape: Shape;
}

class NodeCtx {
  constructor(
    readonly node: Node,
    readonly opset: number,
    private readonly info: Map<string, ValueInfo>,
    private readonly values: Map<string, KnownValue>,
  ) {}

  fail(message: string): never {
    throw new OnnxError(`node '${this.node.name}' (${this.node.opType}): ${message}`);
  }

  has(i: number): boolean {
    return i < this.node.inputs.length && this.node.inputs[i] !== '';
  }

  infoOf(name: string): ValueInfo {
    const vi = this.info.get(name);
    if (!vi) this.fail(`reads '${name}', which no node, graph input or initializer provides`);
    return vi;
  }

  input(i: number): ValueInfo {
    if (!this.has(i)) this.fail(`input ${i} is missing`);
    return this.infoOf(this.node.inputs[i]);
  }

  shape(i: number): Shape {
    return this.input(i).shape;
  }

  dtype(i: number): DType {
    return this.input(i).dtype;
  }

  value(i: number): KnownValue | undefined {
    return this.has(i) ? this.values.get(this.node.inputs[i]) : undefined;
  }

  /** A known value whose elements are all numbers. */
  numbers(i: number): number[] | undefined {
    const v = this.value(i);
    if (!v || v.data.some((d) => typeof d !== 'number')) return undefined;
    return v.data as number[];
  }

  attr(name: string): Attribute | undefined {
    return this.node.attrs[name];
  }

  int(name: string, dflt: number): number {
    const a = this.node.attrs[name];
    return a && (a.type === 'int' || a.type === 'float') ? a.value : dflt;
  }

  ints(name: string): number[] | undefined {
    const a = this.node.attrs[name];
    return a && (a.type === 'ints' || a.type === 'floats') ? a.value : undefined;
  }

  str(name: string, dflt: string): string {
    const a = this.node.attrs[name];
    return a?.type === 'string' ? a.value : dflt;
  }

  axis(axis: number, rank: number, what = 'axis'): number {
    const a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= rank) this.fail(`${what} ${axis} is out of range for rank ${rank}`);
    return a;
  }

  /** An int list given as an attribute before `inputFromOpset`, as input `index` from then on. */
  intsAttrOrInput(name: string, index: number, inputFromOpset: number): { known?: number[]; count?: number; absent: boolean } {
    if (this.opset < inputFromOpset) {
      const v = this.ints(name);
      return v ? { known: v, count: v.length, absent: false } : { absent: true };
    }
    if (!this.has(index)) return { absent: true };
    const known = this.numbers(index);
    const s = this.shape(index);
    const count = known?.length ?? (s && s.length === 1 && typeof s[0] === 'number' ? s[0] : undefined);
    return { known, count, absent: false };
  }
}

type Rule = (c: NodeCtx) => OutInfo[];

// ---------------------------------------------------------------------------------------------------------------
// Shape helpers

function broadcast(c: NodeCtx, shapes: Shape[]): Shape {
  if (shapes.some((s) => s === null)) return null;
  const ss = shapes as Dim[][];
  const rank = Math.max(0, ...ss.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of ss) {
      const j = s.length - rank + i;
      if (j < 0) continue;
      const r = broadcastDim(d, s[j]);
      if (r === 'conflict') {
        c.fail(`cannot broadcast shapes ${ss.map(formatShape).join(' and ')} (dim ${d} vs ${s[j]})`);
      }
      d = r;
    }
    out.push(d);
  }
  return out;
}

function same(c: NodeCtx, dtype?: DType): OutInfo[] {
  const x = c.input(0);
  return [{ dtype: dtype ?? x.dtype, shape: x.shape }];
}

function unknownDims(n: number | undefined): Shape {
  return n === undefined ? null : Array<Dim>(n).fill(null);
}

function spatialOut(inDim: Dim, k: number, s: number, d: number, pb: number, pe: number, ceil: boolean, autoPad: string): Dim {
  const eff = (k - 1) * d + 1;
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    if (typeof inDim === 'number') return Math.ceil(inDim / s);
    return s === 1 ? inDim : null;
  }
  if (autoPad === 'VALID') {
    pb = 0;
    pe = 0;
  }
  if (typeof inDim !== 'number') return eff === 1 && s === 1 && pb === 0 && pe === 0 ? inDim : null;
  const span = inDim + pb + pe - eff;
  if (!ceil) return Math.floor(span / s) + 1;
  let out = Math.ceil(span / s) + 1;
  // The last window must start inside the input or the left padding.
  if ((out - 1) * s >= inDim + pb) out--;
  return out;
}

function convLike(c: NodeCtx, channels: (xShape: Dim[]) => Dim, kernel: number[] | undefined, isPool: boolean): Shape {
  const x = c.shape(0);
  if (!x) return null;
  const n = x.length - 2;
  if (n < 1) c.fail(`input has rank ${x.length}; expected at least 3`);
  const k = kernel ?? c.ints('kernel_shape');
  const ch = channels(x);
  if (!k) return [x[0], ch, ...unknownDims(n)!];
  const strides = c.ints('strides') ?? Array(n).fill(1);
  const dil = c.ints('dilations') ?? Array(n).fill(1);
  const pads = c.ints('pads') ?? Array(2 * n).fill(0);
  const autoPad = c.str('auto_pad', 'NOTSET');
  const ceil = isPool && c.int('ceil_mode', 0) === 1;
  const out: Dim[] = [x[0], ch];
  for (let i = 0; i < n; i++) out.push(spatialOut(x[i + 2], k[i], strides[i], dil[i], pads[i], pads[i + n], ceil, autoPad));
  return out;
}

function weightKernel(c: NodeCtx): number[] | undefined {
  const k = c.ints('kernel_shape');
  if (k) return k;
  const w = c.shape(1);
  if (!w) return undefined;
  const sp = w.slice(2);
  return sp.every((d) => typeof d === 'number') ? (sp as number[]) : undefined;
}

function reduceShape(c: NodeCtx, x: Shape, axes: number[] | 'all' | { unknownCount?: number }, keep: boolean): Shape {
  if (!x) return null;
  if (axes === 'all') return keep ? x.map(() => 1) : [];
  if (!Array.isArray(axes)) {
    if (keep) return x.map(() => null);
    return axes.unknownCount === undefined ? null : unknownDims(x.length - axes.unknownCount);
  }
  const set = new Set(axes.map((a) => c.axis(a, x.length)));
  const out: Dim[] = [];
  x.forEach((d, i) => {
    if (!set.has(i)) out.push(d);
    else if (keep) out.push(1);
  });
  return out;
}

function reduceRule(axesInputFrom: number): Rule {
  return (c) => {
    const x = c.input(0);
    const keep = c.int('keepdims', 1) === 1;
    const noop = c.int('noop_with_empty_axes', 0) === 1;
    const axes = c.intsAttrOrInput('axes', 1, axesInputFrom);
    let shape: Shape;
    if (axes.absent || (axes.known && axes.known.length === 0) || axes.count === 0) {
      shape = noop ? x.shape : reduceShape(c, x.shape, 'all', keep);
    } else if (axes.known) {
      shape = reduceShape(c, x.shape, axes.known, keep);
    } else {
      shape = reduceShape(c, x.shape, { unknownCount: axes.count }, keep);
    }
    return [{ dtype: x.dtype, shape }];
  };
}

function parseCastTo(c: NodeCtx, name: string, dflt?: DType): DType {
  const a = c.attr(name);
  if (!a) {
    if (dflt) return dflt;
    c.fail(`attribute '${name}' is missing`);
  }
  if (a.type !== 'int') c.fail(`attribute '${name}' must be an int`);
  return dtypeFromCode(a.value, `node '${c.node.name}' attribute '${name}'`);
}

function sliceLen(d: number, start: number, end: number, step: number): number {
  if (start < 0) start += d;
  if (end < 0) end += d;
  if (step > 0) {
    start = Math.min(Math.max(start, 0), d);
    end = Math.min(Math.max(end, 0), d);
    return Math.max(0, Math.ceil((end - start) / step));
  }
  start = Math.min(Math.max(start, 0), d - 1);
  end = Math.min(Math.max(end, -1), d - 1);
  return Math.max(0, Math.ceil((start - end) / -step));
}

/** The index lists a Slice takes along one axis of length d. */
function sliceIndices(d: number, start: number, end: number, step: number): number[] {
  const n = sliceLen(d, start, end, step);
  let s = start < 0 ? start + d : start;
  s = step > 0 ? Math.min(Math.max(s, 0), d) : Math.min(Math.max(s, 0), d - 1);
  return Array.from({ length: n }, (_, i) => s + i * step);
}

const LARGE = 2 ** 31 - 1;

interface SliceSpec {
  axes: number[];
  starts: number[];
  ends: number[];
  steps: number[];
}

function sliceSpec(c: NodeCtx, rank: number): SliceSpec | 'unknown-axes' | 'unknown' {
  let starts: number[] | undefined;
  let ends: number[] | undefined;
  let axes: number[] | undefined;
  let steps: number[] | undefined;
  if (c.opset < 10) {
    starts = c.ints('starts');
    ends = c.ints('ends');
    axes = c.ints('axes');
  } else {
    starts = c.numbers(1);
    ends = c.numbers(2);
    if (c.has(3)) {
      axes = c.numbers(3);
      if (!axes) return 'unknown-axes';
    }
    if (c.has(4)) {
      steps = c.numbers(4);
      if (!steps) return axes ? 'unknown' : 'unknown-axes';
    }
  }
  if (!starts || !ends) return axes ? 'unknown' : 'unknown-axes';
  if (starts.length !== ends.length) c.fail(`starts has ${starts.length} values but ends has ${ends.length}`);
  axes = (axes ?? starts.map((_, i) => i)).map((a) => c.axis(a, rank, 'slice axis'));
  steps = steps ?? starts.map(() => 1);
  if (steps.some((s) => s === 0)) c.fail('slice step 0 is invalid');
  return { axes, starts, ends, steps };
}

function parseEinsum(c: NodeCtx, eq: string, shapes: Dim[][]): Dim[] {
  const clean = eq.replace(/\s+/g, '');
  const [lhs, rhs] = clean.split('->');
  const terms = lhs.split(',');
  if (terms.length !== shapes.length) c.fail(`equation '${eq}' names ${terms.length} operands but the node has ${shapes.length}`);
  const letter = new Map<string, Dim>();
  let ell: Dim[] = [];
  const counts = new Map<string, number>();
  terms.forEach((t, i) => {
    const s = shapes[i];
    const hasEll = t.includes('...');
    const letters = t.replace('...', '').split('');
    const ellRank = hasEll ? s.length - letters.length : 0;
    if (ellRank < 0 || (!hasEll && letters.length !== s.length)) {
      c.fail(`operand ${i} of rank ${s.length} does not fit term '${t}' of equation '${eq}'`);
    }
    let pos = 0;
    for (let j = 0; j < t.length; ) {
      if (t.startsWith('...', j)) {
        const e = s.slice(pos, pos + ellRank);
        const merged = broadcast(c, [ell, e]);
        ell = merged ?? ell;
        pos += ellRank;
        j += 3;
        continue;
      }
      const ch = t[j];
      counts.set(ch, (counts.get(ch) ?? 0) + 1);
      const prev = letter.get(ch);
      const cur = s[pos];
      if (prev === undefined) letter.set(ch, cur);
      else {
        const m = broadcastDim(prev, cur);
        if (m === 'conflict') c.fail(`equation '${eq}': index '${ch}' has sizes ${prev} and ${cur}`);
        letter.set(ch, m);
      }
      pos++;
      j++;
    }
  });
  let out: string;
  if (rhs !== undefined) out = rhs;
  else {
    const once = [...counts].filter(([, n]) => n === 1).map(([ch]) => ch).sort();
    out = (lhs.includes('...') ? '...' : '') + once.join('');
  }
  const res: Dim[] = [];
  for (let j = 0; j < out.length; ) {
    if (out.startsWith('...', j)) {
      res.push(...ell);
      j += 3;
      continue;
    }
    const d = letter.get(out[j]);
    if (d === undefined) c.fail(`equation '${eq}': output index '${out[j]}' appears in no operand`);
    res.push(d);
    j++;
  }
  return res;
}

// ---------------------------------------------------------------------------------------------------------------
// Rules

const RULES: Record<string, Rule> = {};

const UNARY_SAME = [
  'Neg', 'Sqrt', 'Reciprocal', 'Exp', 'Log', 'Tanh', 'Sigmoid', 'Relu', 'LeakyRelu', 'Erf', 'Gelu', 'Sin', 'Cos', 'Tan',
  'Asin', 'Acos', 'Atan', 'Sinh', 'Cosh', 'Asinh', 'Acosh', 'Atanh', 'Abs', 'Sign', 'Floor', 'Ceil', 'Round', 'Clip',
  'Identity', 'Softmax', 'LogSoftmax', 'Hardmax', 'Elu', 'Selu', 'Celu', 'Softplus', 'Softsign', 'HardSigmoid',
  'HardSwish', 'Mish', 'ThresholdedRelu', 'Shrink', 'Trilu', 'CumSum', 'InstanceNormalization', 'GroupNormalization',
  'LpNormalization', 'MeanVarianceNormalization', 'BitwiseNot', 'Not', 'ScatterND', 'ScatterElements', 'Scatter',
];
for (const op of UNARY_SAME) RULES[op] = (c) => same(c);
for (const op of ['IsNaN', 'IsInf']) RULES[op] = (c) => same(c, 'bool');

const BROADCAST_SAME = ['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Mod', 'Min', 'Max', 'Sum', 'Mean', 'PRelu', 'BitShift', 'BitwiseAnd', 'BitwiseOr', 'BitwiseXor'];
for (const op of BROADCAST_SAME) {
  RULES[op] = (c) => [{ dtype: c.dtype(0), shape: broadcast(c, c.node.inputs.map((_, i) => c.shape(i))) }];
}
for (const op of ['Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'And', 'Or', 'Xor']) {
  RULES[op] = (c) => [{ dtype: 'bool', shape: broadcast(c, [c.shape(0), c.shape(1)]) }];
}
RULES.Where = (c) => [{ dtype: c.dtype(1), shape: broadcast(c, [c.shape(0), c.shape(1), c.shape(2)]) }];

RULES.Cast = (c) => same(c, parseCastTo(c, 'to'));
RULES.CastLike = (c) => same(c, c.dtype(1));
RULES.Dropout = (c) => [same(c)[0], { dtype: 'bool', shape: c.shape(0) }];
RULES.RandomUniformLike = (c) => same(c, c.attr('dtype') ? parseCastTo(c, 'dtype') : undefined);
RULES.RandomNormalLike = RULES.RandomUniformLike;
RULES.EyeLike = RULES.RandomUniformLike;
RULES.Bernoulli = RULES.RandomUniformLike;
RULES.RandomUniform = (c) => [{ dtype: parseCastTo(c, 'dtype', 'float32'), shape: c.ints('shape') ?? null }];
RULES.RandomNormal = RULES.RandomUniform;

RULES.MatMul = (c) => {
  const a = c.shape(0);
  const b = c.shape(1);
  const dtype = c.dtype(0);
  if (!a || !b) return [{ dtype, shape: null }];
  if (a.length === 0 || b.length === 0) c.fail('MatMul operands must have rank ≥ 1');
  const A = a.length === 1 ? [1, a[0]] : a;
  const B = b.length === 1 ? [b[0], 1] : b;
  const ka = A[A.length - 1];
  const kb = B[B.length - 2];
  if (mergeDim(ka, kb) === 'conflict') c.fail(`inner dimensions differ: ${formatShape(a)} × ${formatShape(b)}`);
  const batch = broadcast(c, [A.slice(0, -2), B.slice(0, -2)]) as Dim[];
  const out = [...batch];
  if (a.length > 1) out.push(A[A.length - 2]);
  if (b.length > 1) out.push(B[B.length - 1]);
  return [{ dtype, shape: out }];
};

RULES.Gemm = (c) => {
  const a = c.shape(0);
  const b = c.shape(1);
  const dtype = c.dtype(0);
  if (!a || !b) return [{ dtype, shape: null }];
  if (a.length !== 2 || b.length !== 2) c.fail(`operands must be 2-D, got ${formatShape(a)} and ${formatShape(b)}`);
  const [m, ka] = c.int('transA', 0) ? [a[1], a[0]] : [a[0], a[1]];
  const [kb, n] = c.int('transB', 0) ? [b[1], b[0]] : [b[0], b[1]];
  if (mergeDim(ka, kb) === 'conflict') c.fail(`inner dimensions differ: ${formatShape(a)} × ${formatShape(b)}`);
  if (c.has(2)) broadcast(c, [c.shape(2), [m, n]]);
  return [{ dtype, shape: [m, n] }];
};

RULES.Conv = (c) => {
  const w = c.shape(1);
  const x = c.shape(0);
  if (x && w && x.length > 1 && w.length > 1) {
    const group = c.int('group', 1);
    const need = dimMul(w[1], group);
    if (mergeDim(x[1], need) === 'conflict') c.fail(`input has ${x[1]} channels but weight ${formatShape(w)} with group ${group} needs ${need}`);
  }
  return [{ dtype: c.dtype(0), shape: convLike(c, () => (w ? w[0] : null), weightKernel(c), false) }];
};

RULES.ConvTranspose = (c) => {
  const x = c.shape(0);
  const w = c.shape(1);
  const dtype = c.dtype(0);
  if (!x) return [{ dtype, shape: null }];
  const n = x.length - 2;
  const group = c.int('group', 1);
  const ch = w ? dimMul(w[1], group) : null;
  const outShape = c.ints('output_shape');
  if (outShape) return [{ dtype, shape: [x[0], ch, ...outShape.slice(-n)] }];
  const k = weightKernel(c);
  if (!k) return [{ dtype, shape: [x[0], ch, ...unknownDims(n)!] }];
  const strides = c.ints('strides') ?? Array(n).fill(1);
  const dil = c.ints('dilations') ?? Array(n).fill(1);
  const pads = c.ints('pads') ?? Array(2 * n).fill(0);
  const outPad = c.ints('output_padding') ?? Array(n).fill(0);
  const autoPad = c.str('auto_pad', 'NOTSET');
  const out: Dim[] = [x[0], ch];
  for (let i = 0; i < n; i++) {
    const d = x[i + 2];
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') out.push(typeof d === 'number' ? d * strides[i] : null);
    else if (typeof d !== 'number') out.push(null);
    else {
      const pb = autoPad === 'VALID' ? 0 : pads[i];
      const pe = autoPad === 'VALID' ? 0 : pads[i + n];
      out.push(strides[i] * (d - 1) + outPad[i] + (k[i] - 1) * dil[i] + 1 - pb - pe);
    }
  }
  return [{ dtype, shape: out }];
};

const pool: Rule = (c) => {
  const shape = convLike(c, (x) => x[1], undefined, true);
  const outs: OutInfo[] = [{ dtype: c.dtype(0), shape }];
  if (c.node.outputs.length > 1) outs.push({ dtype: 'int64', shape });
  return outs;
};
RULES.MaxPool = pool;
RULES.AveragePool = pool;
RULES.LpPool = pool;
const globalPool: Rule = (c) => {
  const x = c.shape(0);
  return [{ dtype: c.dtype(0), shape: x ? [x[0], x[1], ...x.slice(2).map(() => 1)] : null }];
};
RULES.GlobalAveragePool = globalPool;
RULES.GlobalMaxPool = globalPool;
RULES.GlobalLpPool = globalPool;

RULES.LayerNormalization = (c) => {
  const x = c.input(0);
  const stash = parseCastTo(c, 'stash_type', 'float32');
  let stat: Shape = null;
  if (x.shape) {
    const axis = c.axis(c.int('axis', -1), x.shape.length);
    stat = x.shape.map((d, i) => (i < axis ? d : 1));
  }
  return [
    { dtype: x.dtype, shape: x.shape },
    { dtype: stash, shape: stat },
    { dtype: stash, shape: stat },
  ];
};

RULES.BatchNormalization = (c) => {
  const x = c.input(0);
  const stat = c.has(3) ? c.input(3) : { dtype: x.dtype, shape: x.shape ? [x.shape[1]] : null };
  return [
    { dtype: x.dtype, shape: x.shape },
    { dtype: stat.dtype, shape: stat.shape },
    { dtype: stat.dtype, shape: stat.shape },
  ];
};

RULES.ReduceSum = reduceRule(13);
for (const op of ['ReduceMean', 'ReduceL1', 'ReduceL2', 'ReduceMax', 'ReduceMin', 'ReduceSumSquare', 'ReduceLogSumExp', 'ReduceLogSum', 'ReduceProd']) {
  RULES[op] = reduceRule(18);
}

const argReduce: Rule = (c) => {
  const x = c.shape(0);
  const keep = c.int('keepdims', 1) === 1;
  return [{ dtype: 'int64', shape: x ? reduceShape(c, x, [c.int('axis', 0)], keep) : null }];
};
RULES.ArgMax = argReduce;
RULES.ArgMin = argReduce;

RULES.Reshape = (c) => {
  const x = c.shape(0);
  const dtype = c.dtype(0);
  const target = c.value(1);
  const allowZero = c.opset >= 14 && c.int('allowzero', 0) === 1;
  if (!target) {
    const s = c.shape(1);
    return [{ dtype, shape: s && s.length === 1 && typeof s[0] === 'number' ? unknownDims(s[0]) : null }];
  }
  const out: Dim[] = [];
  let infer = -1;
  target.data.forEach((v, i) => {
    if (v === 0 && !allowZero) {
      if (!x) out.push(null);
      else if (i >= x.length) c.fail(`shape entry ${i} is 0 (copy) but the input ${formatShape(x)} has no dim ${i}`);
      else out.push(x[i]);
    } else if (v === -1) {
      if (infer >= 0) c.fail('shape has more than one -1');
      infer = i;
      out.push(null);
    } else if (typeof v === 'number' && v < 0) {
      c.fail(`shape entry ${i} is ${v}`);
    } else out.push(v);
  });
  const total = x ? dimProduct(x) : null;
  if (infer >= 0) {
    const rest = dimProduct(out.filter((_, i) => i !== infer));
    const d = dimDiv(total, rest);
    if (typeof total === 'number' && typeof rest === 'number' && rest !== 0 && total % rest !== 0) {
      c.fail(`cannot reshape ${formatShape(x)} (${total} elements) to ${formatShape(target.data)}`);
    }
    out[infer] = d;
  } else if (typeof total === 'number') {
    const n = dimProduct(out);
    if (typeof n === 'number' && n !== total) c.fail(`cannot reshape ${formatShape(x)} (${total} elements) to ${formatShape(out)}`);
  }
  return [{ dtype, shape: out }];
};

RULES.Flatten = (c) => {
  const x = c.shape(0);
  if (!x) return [{ dtype: c.dtype(0), shape: null }];
  let axis = c.int('axis', 1);
  if (axis < 0) axis += x.length;
  if (axis < 0 || axis > x.length) c.fail(`axis ${c.int('axis', 1)} is out of range for rank ${x.length}`);
  return [{ dtype: c.dtype(0), shape: [dimProduct(x.slice(0, axis)), dimProduct(x.slice(axis))] }];
};

RULES.Squeeze = (c) => {
  const x = c.shape(0);
  const dtype = c.dtype(0);
  const axes = c.intsAttrOrInput('axes', 1, 13);
  if (!x) return [{ dtype, shape: null }];
  if (axes.absent) {
    if (x.some((d) => typeof d !== 'number')) return [{ dtype, shape: null }];
    return [{ dtype, shape: x.filter((d) => d !== 1) }];
  }
  if (!axes.known) return [{ dtype, shape: axes.count === undefined ? null : unknownDims(x.length - axes.count) }];
  const set = new Set(axes.known.map((a) => c.axis(a, x.length)));
  for (const a of set) {
    if (typeof x[a] === 'number' && x[a] !== 1) c.fail(`cannot squeeze axis ${a} of size ${x[a]} in ${formatShape(x)}`);
  }
  return [{ dtype, shape: x.filter((_, i) => !set.has(i)) }];
};

RULES.Unsqueeze = (c) => {
  const x = c.shape(0);
  const dtype = c.dtype(0);
  const axes = c.intsAttrOrInput('axes', 1, 13);
  if (!x) return [{ dtype, shape: null }];
  if (axes.absent) c.fail('axes are missing');
  if (!axes.known) return [{ dtype, shape: axes.count === undefined ? null : unknownDims(x.length + axes.count) }];
  const rank = x.length + axes.known.length;
  const set = new Set(axes.known.map((a) => c.axis(a, rank)));
  if (set.size !== axes.known.length) c.fail(`axes ${JSON.stringify(axes.known)} repeat an axis`);
  const out: Dim[] = [];
  let j = 0;
  for (let i = 0; i < rank; i++) out.push(set.has(i) ? 1 : x[j++]);
  return [{ dtype, shape: out }];
};

RULES.Transpose = (c) => {
  const x = c.shape(0);
  if (!x) return [{ dtype: c.dtype(0), shape: null }];
  const perm = c.ints('perm') ?? x.map((_, i) => x.length - 1 - i);
  if (perm.length !== x.length) c.fail(`perm ${JSON.stringify(perm)} does not fit rank ${x.length}`);
  return [{ dtype: c.dtype(0), shape: perm.map((p) => x[c.axis(p, x.length, 'perm entry')]) }];
};

RULES.Expand = (c) => {
  const x = c.shape(0);
  const dtype = c.dtype(0);
  const target = c.value(1);
  if (target) return [{ dtype, shape: broadcast(c, [x, target.data]) }];
  const s = c.shape(1);
  const n = s && s.length === 1 && typeof s[0] === 'number' ? s[0] : undefined;
  if (!x || n === undefined) return [{ dtype, shape: null }];
  const rank = Math.max(n, x.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const d = x[x.length - rank + i];
    out.push(typeof d === 'number' && d !== 1 ? d : null);
  }
  return [{ dtype, shape: out }];
};

RULES.Tile = (c) => {
  const x = c.shape(0);
  const reps = c.value(1);
  if (!x) return [{ dtype: c.dtype(0), shape: null }];
  if (!reps) return [{ dtype: c.dtype(0), shape: unknownDims(x.length) }];
  if (reps.data.length !== x.length) c.fail(`repeats has ${reps.data.length} values for rank ${x.length}`);
  return [{ dtype: c.dtype(0), shape: x.map((d, i) => dimMul(d, reps.data[i])) }];
};

RULES.Concat = (c) => {
  const shapes = c.node.inputs.map((_, i) => c.shape(i));
  const dtype = c.dtype(0);
  const known = shapes.filter((s): s is Dim[] => s !== null);
  if (known.length === 0) return [{ dtype, shape: null }];
  const rank = known[0].length;
  if (known.some((s) => s.length !== rank)) c.fail(`inputs have different ranks: ${known.map(formatShape).join(', ')}`);
  const axis = c.axis(c.int('axis', 0), rank);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    if (i === axis) {
      out.push(shapes.some((s) => s === null) ? null : known.reduce<Dim>((acc, s) => dimAdd(acc, s[i]), 0));
      continue;
    }
    let d: Dim = known[0][i];
    for (const s of known) {
      const m = mergeDim(d, s[i]);
      if (m === 'conflict') c.fail(`inputs disagree on dim ${i}: ${known.map(formatShape).join(', ')}`);
      d = m;
    }
    out.push(d);
  }
  return [{ dtype, shape: out }];
};

RULES.Split = (c) => {
  const x = c.shape(0);
  const dtype = c.dtype(0);
  const n = c.node.outputs.length;
  if (!x) return c.node.outputs.map(() => ({ dtype, shape: null }));
  const axis = c.axis(c.int('axis', 0), x.length);
  const d = x[axis];
  let sizes: Dim[] | undefined;
  const given = c.intsAttrOrInput('split', 1, 13);
  if (given.known) {
    sizes = given.known;
    if (sizes.length !== n) c.fail(`split has ${sizes.length} sizes for ${n} outputs`);
    const total = sizes.reduce((a, b) => (a as number) + (b as number), 0);
    if (typeof d === 'number' && total !== d) c.fail(`split sizes sum to ${total} but axis ${axis} has size ${d}`);
  } else if (given.absent) {
    const parts = c.opset >= 18 && c.attr('num_outputs') ? c.int('num_outputs', n) : n;
    if (typeof d === 'number') {
      if (c.opset >= 18 && c.attr('num_outputs')) {
        const chunk = Math.ceil(d / parts);
        sizes = Array.from({ length: parts }, (_, i) => (i < parts - 1 ? chunk : d - chunk * (parts - 1)));
      } else {
        if (d % parts !== 0) c.fail(`axis ${axis} of size ${d} cannot be split into ${parts} equal parts`);
        sizes = Array(parts).fill(d / parts);
      }
    } else sizes = Array(parts).fill(dimDiv(d, parts));
  }
  return c.node.outputs.map((_, i) => ({
    dtype,
    shape: x.map((dim, j) => (j === axis ? (sizes ? sizes[i] : null) : dim)),
  }));
};

RULES.Slice = (c) => {
  const x = c.shape(0);
  const dtype = c.dtype(0);
  if (!x) return [{ dtype, shape: null }];
  const spec = sliceSpec(c, x.length);
  if (spec === 'unknown-axes') return [{ dtype, shape: unknownDims(x.length) }];
  if (spec === 'unknown') {
    const axes = new Set((c.numbers(3) ?? []).map((a) => c.axis(a, x.length)));
    return [{ dtype, shape: x.map((d, i) => (axes.has(i) ? null : d)) }];
  }
  const out = [...x];
  spec.axes.forEach((a, i) => {
    const d = x[a];
    const [s, e, k] = [spec.starts[i], spec.ends[i], spec.steps[i]];
    if (typeof d === 'number') out[a] = sliceLen(d, s, e, k);
    else if (k === 1 && s >= 0 && e >= LARGE) out[a] = dimSub(d, s);
    else out[a] = null;
  });
  return [{ dtype, shape: out }];
};

RULES.Gather = (c) => {
  const x = c.shape(0);
  const idx = c.shape(1);
  const dtype = c.dtype(0);
  if (!x || !idx) return [{ dtype, shape: null }];
  const axis = c.axis(c.int('axis', 0), x.length);
  const known = c.numbers(1);
  const d = x[axis];
  if (known && typeof d === 'number') {
    for (const i of known) if (i < -d || i >= d) c.fail(`index ${i} is out of range for axis ${axis} of size ${d}`);
  }
  return [{ dtype, shape: [...x.slice(0, axis), ...idx, ...x.slice(axis + 1)] }];
};

RULES.GatherElements = (c) => [{ dtype: c.dtype(0), shape: c.shape(1) }];

RULES.GatherND = (c) => {
  const x = c.shape(0);
  const idx = c.shape(1);
  const dtype = c.dtype(0);
  const b = c.int('batch_dims', 0);
  if (!x || !idx) return [{ dtype, shape: null }];
  const last = idx[idx.length - 1];
  if (typeof last !== 'number') return [{ dtype, shape: null }];
  return [{ dtype, shape: [...idx.slice(0, -1), ...x.slice(b + last)] }];
};

RULES.Resize = (c) => {
  const x = c.shape(0);
  const dtype = c.dtype(0);
  if (!x) return [{ dtype, shape: null }];
  const axes = (c.ints('axes') ?? x.map((_, i) => i)).map((a) => c.axis(a, x.length));
  const scalesIndex = c.opset < 11 ? 1 : 2;
  const sizes = c.opset >= 11 && c.has(3) ? c.value(3) : undefined;
  const sizesShape = c.opset >= 11 && c.has(3) ? c.shape(3) : null;
  const out: Dim[] = x.map(() => null);
  if (sizes && sizes.data.length > 0) {
    const policy = c.str('keep_aspect_ratio_policy', 'stretch');
    if (policy !== 'stretch') return [{ dtype, shape: x.map((d, i) => (axes.includes(i) ? null : d)) }];
    x.forEach((d, i) => (out[i] = d));
    axes.forEach((a, i) => (out[a] = sizes.data[i]));
    return [{ dtype, shape: out }];
  }
  const sizesGivenButUnknown = c.opset >= 11 && c.has(3) && !(sizesShape && sizesShape[0] === 0);
  const scales = !sizesGivenButUnknown && c.has(scalesIndex) ? c.numbers(scalesIndex) : undefined;
  if (scales && scales.length > 0) {
    x.forEach((d, i) => (out[i] = d));
    axes.forEach((a, i) => {
      const d = x[a];
      out[a] = scales[i] === 1 ? d : typeof d === 'number' ? Math.floor(d * scales[i] + 1e-9) : null;
    });
    return [{ dtype, shape: out }];
  }
  return [{ dtype, shape: x.map((d, i) => (axes.includes(i) ? null : d)) }];
};

RULES.Pad = (c) => {
  const x = c.shape(0);
  const dtype = c.dtype(0);
  if (!x) return [{ dtype, shape: null }];
  const pads = c.opset < 11 ? c.ints('pads') : c.numbers(1);
  let axes = x.map((_, i) => i);
  if (c.opset >= 18 && c.has(3)) {
    const given = c.numbers(3);
    if (!given) return [{ dtype, shape: unknownDims(x.length) }];
    axes = given.map((a) => c.axis(a, x.length));
  }
  if (!pads) return [{ dtype, shape: unknownDims(x.length) }];
  if (pads.length !== 2 * axes.length) c.fail(`pads has ${pads.length} values for ${axes.length} axes`);
  const out = [...x];
  axes.forEach((a, i) => (out[a] = dimAdd(x[a], pads[i] + pads[i + axes.length])));
  return [{ dtype, shape: out }];
};

RULES.Einsum = (c) => {
  const shapes = c.node.inputs.map((_, i) => c.shape(i));
  const dtype = c.dtype(0);
  if (shapes.some((s) => s === null)) return [{ dtype, shape: null }];
  return [{ dtype, shape: parseEinsum(c, c.str('equation', ''), shapes as Dim[][]) }];
};

function shapeRange(c: NodeCtx, rank: number): [number, number] {
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + rank : v, 0), rank);
  const start = c.opset >= 15 ? clamp(c.int('start', 0)) : 0;
  const end = c.opset >= 15 && c.attr('end') ? clamp(c.int('end', rank)) : rank;
  return [start, Math.max(start, end)];
}

RULES.Shape = (c) => {
  const x = c.shape(0);
  if (!x) return [{ dtype: 'int64', shape: [null] }];
  const [s, e] = shapeRange(c, x.length);
  return [{ dtype: 'int64', shape: [e - s] }];
};
RULES.Size = () => [{ dtype: 'int64', shape: [] }];

RULES.ConstantOfShape = (c) => {
  const a = c.attr('value');
  const dtype = a?.type === 'tensor' ? a.value.dtype : 'float32';
  const v = c.value(0);
  if (v) return [{ dtype, shape: [...v.data] }];
  const s = c.shape(0);
  return [{ dtype, shape: s && typeof s[0] === 'number' ? unknownDims(s[0]) : null }];
};

RULES.Constant = (c) => {
  const t = constantTensor(c.node);
  if (!t) return c.fail('has no value attribute this tool understands (value, value_float(s), value_int(s), value_string(s))');
  return [{ dtype: t.dtype, shape: [...t.dims] }];
};

RULES.Range = (c) => {
  const dtype = c.dtype(0);
  const [s, l, d] = [c.value(0)?.data[0], c.value(1)?.data[0], c.value(2)?.data[0]];
  if (typeof s === 'number' && typeof l === 'number' && typeof d === 'number' && d !== 0) {
    return [{ dtype, shape: [Math.max(Math.ceil((l - s) / d), 0)] }];
  }
  if (s === 0 && d === 1 && l !== undefined) return [{ dtype, shape: [l] }];
  return [{ dtype, shape: [null] }];
};

RULES.NonZero = (c) => {
  const x = c.shape(0);
  return [{ dtype: 'int64', shape: [x ? x.length : null, null] }];
};

RULES.OneHot = (c) => {
  const idx = c.shape(0);
  const dtype = c.dtype(2);
  if (!idx) return [{ dtype, shape: null }];
  const depth = c.value(1)?.data[0];
  const rank = idx.length + 1;
  const axis = c.axis(c.int('axis', -1), rank);
  const out = [...idx];
  out.splice(axis, 0, typeof depth === 'number' ? Math.trunc(depth) : (depth ?? null));
  return [{ dtype, shape: out }];
};

RULES.TopK = (c) => {
  const x = c.shape(0);
  const dtype = c.dtype(0);
  if (!x) return [{ dtype, shape: null }, { dtype: 'int64', shape: null }];
  const axis = c.axis(c.int('axis', -1), x.length);
  const k = c.opset < 10 ? c.int('k', 0) : c.value(1)?.data[0];
  const out = x.map((d, i) => (i === axis ? (k ?? null) : d));
  return [{ dtype, shape: out }, { dtype: 'int64', shape: out }];
};

// DepthToSpace: [N, C, H, W] → [N, C/b², H·b, W·b]; SpaceToDepth the reverse.
RULES.DepthToSpace = (c) => {
  const x = c.shape(0);
  const b = c.int('blocksize', 0);
  if (b < 1) c.fail('blocksize must be a positive int');
  if (x && x.length !== 4) c.fail(`input has rank ${x.length}, expected 4`);
  return [{ dtype: c.dtype(0), shape: x ? [x[0], dimDiv(x[1], b * b), dimMul(x[2], b), dimMul(x[3], b)] : null }];
};
RULES.SpaceToDepth = (c) => {
  const x = c.shape(0);
  const b = c.int('blocksize', 0);
  if (b < 1) c.fail('blocksize must be a positive int');
  if (x && x.length !== 4) c.fail(`input has rank ${x.length}, expected 4`);
  return [{ dtype: c.dtype(0), shape: x ? [x[0], dimMul(x[1], b * b), dimDiv(x[2], b), dimDiv(x[3], b)] : null }];
};

const lossRule: Rule = (c) => {
  const scores = c.input(0);
  const labels = c.shape(1);
  const reduction = c.str('reduction', 'mean');
  const outs: OutInfo[] = [{ dtype: scores.dtype, shape: reduction === 'none' ? labels : [] }];
  if (c.node.outputs.length > 1) outs.push({ dtype: scores.dtype, shape: scores.shape });
  return outs;
};
RULES.SoftmaxCrossEntropyLoss = lossRule;
RULES.NegativeLogLikelihoodLoss = lossRule;

/** ONNX-domain ops with a dtype/shape rule (others get the unknown-op fallback). */
export const SHAPE_RULE_OPS: ReadonlySet<string> = new Set(Object.keys(RULES));

/** The tensor a Constant node holds, from whichever value attribute it uses. */
export function constantTensor(node: Node): Tensor | undefined {
  const a = node.attrs;
  if (a.value?.type === 'tensor') return a.value.value;
  if (a.value_float?.type === 'float') return { dtype: 'float32', dims: [], data: Float32Array.of(a.value_float.value) };
  if (a.value_floats?.type === 'floats') {
    return { dtype: 'float32', dims: [a.value_floats.value.length], data: Float32Array.from(a.value_floats.value) };
  }
  if (a.value_int?.type === 'int') return { dtype: 'int64', dims: [], data: BigInt64Array.of(BigInt(a.value_int.value)) };
  if (a.value_ints?.type === 'ints') {
    return { dtype: 'int64', dims: [a.value_ints.value.length], data: BigInt64Array.from(a.value_ints.value.map((v) => BigInt(v))) };
  }
  if (a.value_string?.type === 'string') return { dtype: 'string', dims: [], data: [a.value_string.value] };
  if (a.value_strings?.type === 'strings') {
    return { dtype: 'string', dims: [a.value_strings.value.length], data: [...a.value_strings.value] };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Value evaluator for small integer tensors

function knownFromTensor(t: Tensor): KnownValue | undefined {
  if (t.dtype === 'string' || tensorSize(t.dims) > MAX_KNOWN_ELEMENTS) return undefined;
  return { dims: [...t.dims], data: Array.from(tensorToNumbers(t)) };
}

function staticDims(s: Shape): number[] | undefined {
  return s && s.every((d) => typeof d === 'number') ? (s as number[]) : undefined;
}

function strides(dims: number[]): number[] {
  const st = Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) st[i] = st[i + 1] * dims[i + 1];
  return st;
}

/** Maps each flat index of `outDims` to the flat index of a (numpy-broadcast) input of `inDims`. */
function broadcastMap(outDims: number[], inDims: number[]): (i: number) => number {
  const r = outDims.length;
  const inSt = strides(inDims);
  const outSt = strides(outDims);
  return (flat) => {
    let j = 0;
    for (let ax = 0; ax < r; ax++) {
      const coord = Math.floor(flat / outSt[ax]) % outDims[ax];
      const k = ax - (r - inDims.length);
      if (k >= 0 && inDims[k] !== 1) j += coord * inSt[k];
    }
    return j;
  };
}

function elementwise(outDims: number[], ins: KnownValue[], f: (xs: Dim[]) => Dim): KnownValue {
  const n = tensorSize(outDims);
  const maps = ins.map((v) => broadcastMap(outDims, v.dims));
  const data: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const r = f(ins.map((v, k) => v.data[maps[k](i)]));
    data.push(r === 0 ? 0 : r); // integers have no -0
  }
  return { dims: outDims, data };
}

function num2(f: (a: number, b: number) => number | null): (xs: Dim[]) => Dim {
  return ([a, b]) => (typeof a === 'number' && typeof b === 'number' ? f(a, b) : null);
}

const truncDiv = (a: number, b: number): number | null => (b === 0 ? null : Math.trunc(a / b));

const BINARY_VALUE: Record<string, (xs: Dim[]) => Dim> = {
  Add: ([a, b]) => dimAdd(a, b),
  Sub: ([a, b]) => dimSub(a, b),
  Mul: ([a, b]) => dimMul(a, b),
  Div: ([a, b]) => (typeof a === 'number' && typeof b === 'number' ? truncDiv(a, b) : dimDiv(a, b)),
  Mod: num2((a, b) => (b === 0 ? null : a - b * Math.floor(a / b))),
  Min: ([a, b]) => (a === b ? a : typeof a === 'number' && typeof b === 'number' ? Math.min(a, b) : null),
  Max: ([a, b]) => (a === b ? a : typeof a === 'number' && typeof b === 'number' ? Math.max(a, b) : null),
  Equal: ([a, b]) => {
    if (a === null || b === null) return null;
    if (a === b) return 1;
    if (typeof a === 'number' && typeof b === 'number') return 0;
    // A symbolic dim is never negative.
    const n = typeof a === 'number' ? a : (b as number | string);
    return typeof n === 'number' && n < 0 ? 0 : null;
  },
  Less: num2((a, b) => Number(a < b)),
  LessOrEqual: num2((a, b) => Number(a <= b)),
  Greater: num2((a, b) => Number(a > b)),
  GreaterOrEqual: num2((a, b) => Number(a >= b)),
  And: num2((a, b) => Number(a !== 0 && b !== 0)),
  Or: num2((a, b) => Number(a !== 0 || b !== 0)),
  Xor: num2((a, b) => Number((a !== 0) !== (b !== 0))),
};

const UNARY_VALUE: Record<string, (x: Dim) => Dim> = {
  Identity: (x) => x,
  Neg: (x) => (typeof x === 'number' ? -x : null),
  Abs: (x) => (typeof x === 'number' ? Math.abs(x) : x),
  Not: (x) => (typeof x === 'number' ? Number(x === 0) : null),
};

function evaluate(c: NodeCtx, node: Node, info: Map<string, ValueInfo>, values: Map<string, KnownValue>): void {
  if (node.domain !== '' && node.domain !== 'ai.onnx') return;
  const out = node.outputs[0];
  if (!out) return;
  const outInfo = info.get(out);
  if (!outInfo) return;
  if (node.opType === 'Constant') {
    const t = constantTensor(node);
    const kv = t && knownFromTensor(t);
    if (kv) values.set(out, kv);
    return;
  }
  // Only integer/bool arithmetic is evaluated: it is exact, so folding it never changes numerics.
  if (!isIntegerDtype(outInfo.dtype)) return;
  const outDims = staticDims(outInfo.shape);
  if (!outDims || tensorSize(outDims) > MAX_KNOWN_ELEMENTS) return;
  const kv = evaluateOp(c, node, outDims);
  if (kv && kv.data.length === tensorSize(outDims)) values.set(out, { dims: outDims, data: kv.data });
}

function evaluateOp(c: NodeCtx, node: Node, outDims: number[]): KnownValue | undefined {
  const op = node.opType;
  const ins = node.inputs.map((_, i) => c.value(i));
  const all = (n: number) => ins.length >= n && ins.slice(0, n).every((v) => v !== undefined);
  if (op === 'Shape') {
    const x = c.shape(0);
    if (!x) return undefined;
    const [s, e] = shapeRange(c, x.length);
    return { dims: outDims, data: x.slice(s, e) };
  }
  if (op === 'Size') {
    const x = c.shape(0);
    if (!x) return undefined;
    return { dims: outDims, data: [dimProduct(x)] };
  }
  if (op === 'Mod' && c.int('fmod', 0) === 1 && all(2)) {
    // fmod=1 takes the sign of the dividend, like JavaScript's %.
    return elementwise(outDims, [ins[0]!, ins[1]!], num2((a, b) => (b === 0 ? null : a % b)));
  }
  if (UNARY_VALUE[op] && all(1)) return elementwise(outDims, [ins[0]!], ([x]) => UNARY_VALUE[op](x));
  if (BINARY_VALUE[op] && all(2) && ins.length === 2) return elementwise(outDims, [ins[0]!, ins[1]!], BINARY_VALUE[op]);
  if ((op === 'Max' || op === 'Min' || op === 'Sum') && all(ins.length)) {
    const f = op === 'Sum' ? BINARY_VALUE.Add : BINARY_VALUE[op];
    return elementwise(outDims, ins as KnownValue[], (xs) => xs.reduce((a, b) => f([a, b])));
  }
  switch (op) {
    case 'Cast': {
      const v = ins[0];
      if (!v) return undefined;
      const to = parseCastTo(c, 'to');
      if (to === 'bool') return { dims: outDims, data: v.data.map((x) => (typeof x === 'number' ? Number(x !== 0) : null)) };
      return { dims: outDims, data: v.data.map((x) => (typeof x === 'number' ? Math.trunc(x) : x)) };
    }
    case 'Reshape':
    case 'Flatten':
    case 'Squeeze':
    case 'Unsqueeze':
      return ins[0] ? { dims: outDims, data: [...ins[0].data] } : undefined;
    case 'Where':
      return all(3) ? elementwise(outDims, ins as KnownValue[], ([m, a, b]) => (typeof m === 'number' ? (m ? a : b) : null)) : undefined;
    case 'Expand':
      return ins[0] ? elementwise(outDims, [ins[0]], ([x]) => x) : undefined;
    case 'ConstantOfShape': {
      const a = node.attrs.value;
      const fill = a?.type === 'tensor' ? tensorToNumbers(a.value)[0] : 0;
      return { dims: outDims, data: Array<Dim>(tensorSize(outDims)).fill(fill) };
    }
    case 'Range': {
      const [s, , d] = [ins[0]?.data[0], ins[1]?.data[0], ins[2]?.data[0]];
      if (typeof s !== 'number' || typeof d !== 'number') return undefined;
      return { dims: outDims, data: Array.from({ length: outDims[0] }, (_, i) => s + i * d) };
    }
    case 'Concat': {
      if (!all(ins.length)) return undefined;
      const vs = ins as KnownValue[];
      const axis = c.axis(c.int('axis', 0), outDims.length);
      const outer = tensorSize(outDims.slice(0, axis));
      const data: Dim[] = [];
      for (let o = 0; o < outer; o++) {
        for (const v of vs) {
          const chunk = tensorSize(v.dims.slice(axis));
          data.push(...v.data.slice(o * chunk, (o + 1) * chunk));
        }
      }
      return { dims: outDims, data };
    }
    case 'Gather': {
      const [v, idx] = ins;
      const xs = staticDims(c.shape(0));
      if (!v || !idx || !xs) return undefined;
      const axis = c.axis(c.int('axis', 0), xs.length);
      const outer = tensorSize(xs.slice(0, axis));
      const inner = tensorSize(xs.slice(axis + 1));
      const data: Dim[] = [];
      for (let o = 0; o < outer; o++) {
        for (const iRaw of idx.data) {
          if (typeof iRaw !== 'number') return undefined;
          const i = iRaw < 0 ? iRaw + xs[axis] : iRaw;
          const base = (o * xs[axis] + i) * inner;
          data.push(...v.data.slice(base, base + inner));
        }
      }
      return { dims: outDims, data };
    }
    case 'Slice': {
      const v = ins[0];
      const xs = staticDims(c.shape(0));
      if (!v || !xs) return undefined;
      const spec = sliceSpec(c, xs.length);
      if (typeof spec === 'string') return undefined;
      const perAxis = xs.map((d) => Array.from({ length: d }, (_, i) => i));
      spec.axes.forEach((a, i) => (perAxis[a] = sliceIndices(xs[a], spec.starts[i], spec.ends[i], spec.steps[i])));
      const st = strides(xs);
      const data: Dim[] = [];
      const walk = (ax: number, base: number) => {
        if (ax === xs.length) {
          data.push(v.data[base]);
          return;
        }
        for (const i of perAxis[ax]) walk(ax + 1, base + i * st[ax]);
      };
      walk(0, 0);
      return { dims: outDims, data };
    }
    case 'ReduceProd':
    case 'ReduceSum': {
      // Only the whole-tensor reduction of shape vectors (e.g. the element count of a shape slice).
      const v = ins[0];
      if (!v || tensorSize(outDims) !== 1) return undefined;
      const f = op === 'ReduceProd' ? dimMul : dimAdd;
      return { dims: outDims, data: [v.data.reduce<Dim>((a, b) => f(a, b), op === 'ReduceProd' ? 1 : 0)] };
    }
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Symbolic dim arithmetic. Products are kept in a canonical "coef*a*b" form so that Reshape's -1 can cancel
// symbols ("batch*512" / "batch" = 512).

interface Product {
  coef: number;
  syms: string[];
}

function isCompound(s: string): boolean {
  return /[+\-/]/.test(s);
}

function splitTopLevel(s: string, sep: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === sep && depth === 0) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts;
}

function toProduct(d: number | string): Product {
  if (typeof d === 'number') return { coef: d, syms: [] };
  const p: Product = { coef: 1, syms: [] };
  for (const f of splitTopLevel(d, '*')) {
    if (/^-?\d+$/.test(f)) p.coef *= Number(f);
    else p.syms.push(f);
  }
  return p;
}

function fromProduct(p: Product): Dim {
  if (p.coef === 0) return 0;
  if (p.syms.length === 0) return p.coef;
  const syms = [...p.syms].sort();
  return p.coef === 1 ? syms.join('*') : `${p.coef}*${syms.join('*')}`;
}

function wrap(d: string): string {
  return isCompound(d) ? `(${d})` : d;
}

export function dimMul(a: Dim, b: Dim): Dim {
  if (a === null || b === null) return a === 0 || b === 0 ? 0 : null;
  if (typeof a === 'number' && typeof b === 'number') return a * b;
  const pa = toProduct(typeof a === 'string' ? wrap(a) : a);
  const pb = toProduct(typeof b === 'string' ? wrap(b) : b);
  return fromProduct({ coef: pa.coef * pb.coef, syms: [...pa.syms, ...pb.syms] });
}

export function dimProduct(dims: readonly Dim[]): Dim {
  let p: Dim = 1;
  for (const d of dims) p = dimMul(p, d);
  return p;
}

/** Exact division (a is known to be a multiple of b); null when that cannot be shown. */
export function dimDiv(a: Dim, b: Dim): Dim {
  if (a === null || b === null || b === 0) return null;
  if (a === 0) return 0;
  if (typeof a === 'number' && typeof b === 'number') return a % b === 0 ? a / b : null;
  if (a === b) return 1;
  const pa = toProduct(typeof a === 'string' ? wrap(a) : a);
  const pb = toProduct(typeof b === 'string' ? wrap(b) : b);
  if (pb.coef === 0 || pa.coef % pb.coef !== 0) return null;
  const rest = [...pa.syms];
  for (const s of pb.syms) {
    const i = rest.indexOf(s);
    if (i < 0) return null;
    rest.splice(i, 1);
  }
  return fromProduct({ coef: pa.coef / pb.coef, syms: rest });
}

export function dimAdd(a: Dim, b: Dim): Dim {
  if (a === null || b === null) return null;
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (a === 0) return b;
  if (b === 0) return a;
  if (typeof b === 'number') return b < 0 ? `${a}-${-b}` : `${a}+${b}`;
  return `${a}+${b}`;
}

export function dimSub(a: Dim, b: Dim): Dim {
  if (a === null || b === null) return null;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (a === b) return 0;
  if (b === 0) return a;
  if (typeof b === 'number') return b < 0 ? `${a}+${-b}` : `${a}-${b}`;
  return `${a}-${wrap(b)}`;
}

/** Numpy broadcasting of two dims; 'conflict' when both are concrete and incompatible. */
export function broadcastDim(a: Dim, b: Dim): Dim | 'conflict' {
  if (a === b) return a;
  if (a === 1) return b;
  if (b === 1) return a;
  if (typeof a === 'number' && typeof b === 'number') return 'conflict';
  if (typeof a === 'number') return a;
  if (typeof b === 'number') return b;
  return null;
}

/** Two dims that must be equal: the more informative one, or 'conflict' when both are concrete and differ. */
export function mergeDim(a: Dim, b: Dim): Dim | 'conflict' {
  if (a === b) return a;
  if (typeof a === 'number' && typeof b === 'number') return 'conflict';
  if (typeof a === 'number') return a;
  if (typeof b === 'number') return b;
  return a ?? b;
}

export function formatShape(shape: readonly Dim[] | null): string {
  return shape ? `[${shape.map((d) => (d === null ? '?' : String(d))).join(',')}]` : '(unknown rank)';
}
