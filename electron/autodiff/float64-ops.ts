// Float64 replacements for ops whose onnxruntime CPU kernels are float32 only, written with ops that do have float64
// kernels. Used by the float64 twin of a model (float64.ts) so finite differences are not limited by float32
// rounding. Each builder returns the nodes computing the op's outputs under their original names, or null when the
// node's form is not covered (the twin then runs that node in float32).

import type { Dim, Node, Tensor, ValueInfo } from '../onnx/ir.js';
import { tensorFromNumbers } from '../onnx/ir.js';

const INT64_MAX = 2 ** 62;

/** Emits nodes and constant initializers named after one source node. */
class Emitter {
  readonly nodes: Node[] = [];
  private count = 0;
  constructor(
    private readonly base: string,
    private readonly initializers: Map<string, Tensor>,
  ) {}

  private fresh(kind: string): string {
    return `${this.base}__f64_${kind}${this.count++}`;
  }
  float(v: number): string {
    const name = this.fresh('c');
    this.initializers.set(name, tensorFromNumbers('float64', [], [v]));
    return name;
  }
  ints(values: number[]): string {
    const name = this.fresh('i');
    this.initializers.set(name, tensorFromNumbers('int64', [values.length], values));
    return name;
  }
  op(opType: string, inputs: string[], attrs: Node['attrs'] = {}, output?: string): string {
    const out = output ?? this.fresh('v');
    this.nodes.push({ name: `${out}_node`, opType, domain: '', inputs, outputs: [out], attrs });
    return out;
  }
}

export interface Float64Context {
  node: Node;
  infos: Map<string, ValueInfo>;
  initializers: Map<string, Tensor>;
  opset: number;
}

type Builder = (c: Float64Context) => Node[] | null;

const emitterFor = (c: Float64Context) => new Emitter(c.node.name || c.node.opType, c.initializers);
const ints = (values: number[]): Node['attrs'][string] => ({ type: 'ints', value: values });
const staticShape = (c: Float64Context, name: string): number[] | null => {
  const s: Dim[] | null | undefined = c.infos.get(name)?.shape;
  return s && s.every((d) => typeof d === 'number') ? (s as number[]) : null;
};
const rankOf = (c: Float64Context, name: string): number | null => c.infos.get(name)?.shape?.length ?? null;
const intsAttr = (node: Node, name: string): number[] | null => {
  const a = node.attrs[name];
  return a?.type === 'ints' ? a.value : null;
};
const intAttr = (node: Node, name: string, fallback: number): number => {
  const a = node.attrs[name];
  return a?.type === 'int' ? a.value : fallback;
};
const floatAttr = (node: Node, name: string, fallback: number): number => {
  const a = node.attrs[name];
  return a?.type === 'float' || a?.type === 'int' ? a.value : fallback;
};

/** ReduceMean over `axes`, keepdims, with axes as attribute or input as the opset wants. */
function reduceMean(e: Emitter, x: string, axes: number[], opset: number): string {
  return opset >= 18 ? e.op('ReduceMean', [x, e.ints(axes)], { keepdims: { type: 'int', value: 1 } }) : e.op('ReduceMean', [x], { axes: ints(axes), keepdims: { type: 'int', value: 1 } });
}

// erf: its Maclaurin series for |x| < 2.5 and the continued fraction of erfc beyond; both agree with erf to ~1e-14.
const ERF_SPLIT = 2.5;
const ERF_TAYLOR_TERMS = 50;
const ERF_FRACTION_DEPTH = 60;

const erf: Builder = (c) => {
  const e = emitterFor(c);
  const x = c.node.inputs[0];
  const split = e.float(ERF_SPLIT);
  const abs = e.op('Abs', [x]);
  // The series on x clamped to the split, so the unused branch stays finite.
  const xt = e.op('Max', [e.op('Min', [x, split]), e.op('Neg', [split])]);
  const z = e.op('Mul', [xt, xt]);
  const coef: number[] = [];
  let factorial = 1;
  for (let n = 0; n <= ERF_TAYLOR_TERMS; n++) {
    if (n > 0) factorial *= n;
    coef.push((n % 2 ? -1 : 1) / (factorial * (2 * n + 1)));
  }
  let acc = e.float(coef[ERF_TAYLOR_TERMS]);
  for (let n = ERF_TAYLOR_TERMS - 1; n >= 0; n--) acc = e.op('Add', [e.op('Mul', [acc, z]), e.float(coef[n])]);
  const series = e.op('Mul', [e.op('Mul', [acc, xt]), e.float(2 / Math.sqrt(Math.PI))]);
  // erfc(a) = exp(−a²)/√π · 1/(a + ½/(a + 1/(a + 3/2/(a + …)))), for a = max(|x|, split).
  const a = e.op('Max', [abs, split]);
  let t = a;
  for (let k = ERF_FRACTION_DEPTH; k >= 1; k--) t = e.op('Add', [a, e.op('Div', [e.float(k / 2), t])]);
  const erfc = e.op('Div', [e.op('Exp', [e.op('Neg', [e.op('Mul', [a, a])])]), e.op('Mul', [t, e.float(Math.sqrt(Math.PI))])]);
  const tail = e.op('Mul', [e.op('Sign', [x]), e.op('Sub', [e.float(1), erfc])]);
  e.op('Where', [e.op('Less', [abs, split]), series, tail], {}, c.node.outputs[0]);
  return e.nodes;
};

/**
 * Conv as a sum over kernel offsets of strided slices times weight slices (MatMul), channels last, per group.
 * Explicit or VALID padding only; the weight's shape must be static.
 */
const conv: Builder = (c) => {
  const { node } = c;
  const autoPad = node.attrs.auto_pad?.type === 'string' ? node.attrs.auto_pad.value : 'NOTSET';
  if (autoPad !== 'NOTSET' && autoPad !== 'VALID') return null;
  const [x, w, bias] = node.inputs;
  const ws = staticShape(c, w);
  if (!ws) return null;
  const n = ws.length - 2;
  const kernel = ws.slice(2);
  const group = intAttr(node, 'group', 1);
  const [m, cg] = ws;
  const mg = m / group;
  const strides = intsAttr(node, 'strides') ?? Array<number>(n).fill(1);
  const dilations = intsAttr(node, 'dilations') ?? Array<number>(n).fill(1);
  const pads = autoPad === 'VALID' ? Array<number>(2 * n).fill(0) : (intsAttr(node, 'pads') ?? Array<number>(2 * n).fill(0));
  const e = emitterFor(c);
  const xp = pads.some((p) => p !== 0) ? e.op('Pad', [x, e.ints([0, 0, ...pads.slice(0, n), 0, 0, ...pads.slice(n)])]) : x;
  const spatialAxes = Array.from({ length: n }, (_, i) => i + 1);
  const xt = e.op('Transpose', [xp], { perm: ints([0, ...spatialAxes.map((a) => a + 1), 1]) });
  const offsets: number[][] = [[]];
  for (const k of kernel) {
    const next: number[][] = [];
    for (const o of offsets) for (let i = 0; i < k; i++) next.push([...o, i]);
    offsets.splice(0, offsets.length, ...next);
  }
  const perGroup: string[] = [];
  for (let g = 0; g < group; g++) {
    const terms = offsets.map((o) => {
      const starts = o.map((oi, i) => oi * dilations[i]);
      const ends = o.map((oi, i) => {
        const rest = (kernel[i] - 1) * dilations[i] - oi * dilations[i];
        return rest === 0 ? INT64_MAX : -rest;
      });
      const xs = e.op('Slice', [
        xt,
        e.ints([...starts, g * cg]),
        e.ints([...ends, (g + 1) * cg]),
        e.ints([...spatialAxes, n + 1]),
        e.ints([...strides, 1]),
      ]);
      const wk = e.op('Slice', [w, e.ints([g * mg, ...o]), e.ints([(g + 1) * mg, ...o.map((v) => v + 1)]), e.ints([0, ...spatialAxes.map((a) => a + 1)])]);
      const wkT = e.op('Transpose', [e.op('Reshape', [wk, e.ints([mg, cg])])], { perm: ints([1, 0]) });
      return e.op('MatMul', [xs, wkT]);
    });
    perGroup.push(terms.length === 1 ? terms[0] : e.op('Sum', terms));
  }
  let y = perGroup.length === 1 ? perGroup[0] : e.op('Concat', perGroup, { axis: { type: 'int', value: n + 1 } });
  if (bias) y = e.op('Add', [y, bias]);
  e.op('Transpose', [y], { perm: ints([0, n + 1, ...spatialAxes]) }, node.outputs[0]);
  return e.nodes;
};

const globalAveragePool: Builder = (c) => {
  const rank = rankOf(c, c.node.inputs[0]);
  if (rank === null) return null;
  const e = emitterFor(c);
  const axes = Array.from({ length: rank - 2 }, (_, i) => i + 2);
  const mean = reduceMean(e, c.node.inputs[0], axes, c.opset);
  e.op('Identity', [mean], {}, c.node.outputs[0]);
  return e.nodes;
};

// (x − mean)/√(var + eps)·scale + bias over the spatial axes of each (sample, channel).
const instanceNormalization: Builder = (c) => {
  const [x, scale, bias] = c.node.inputs;
  const rank = rankOf(c, x);
  if (rank === null) return null;
  const e = emitterFor(c);
  const axes = Array.from({ length: rank - 2 }, (_, i) => i + 2);
  const centred = e.op('Sub', [x, reduceMean(e, x, axes, c.opset)]);
  const variance = reduceMean(e, e.op('Mul', [centred, centred]), axes, c.opset);
  const inv = e.op('Div', [e.float(1), e.op('Sqrt', [e.op('Add', [variance, e.float(floatAttr(c.node, 'epsilon', 1e-5))])])]);
  const perChannel = e.ints([-1, ...Array<number>(rank - 2).fill(1)]);
  const scaled = e.op('Mul', [e.op('Mul', [centred, inv]), e.op('Reshape', [scale, perChannel])]);
  e.op('Add', [scaled, e.op('Reshape', [bias, perChannel])], {}, c.node.outputs[0]);
  return e.nodes;
};

// max(0, min(1, αx + β)); HardSwish = x·HardSigmoid(x; 1/6, 1/2).
function hardSigmoidOf(e: Emitter, x: string, alpha: number, beta: number, output?: string): string {
  const lin = e.op('Add', [e.op('Mul', [x, e.float(alpha)]), e.float(beta)]);
  return e.op('Max', [e.op('Min', [lin, e.float(1)]), e.float(0)], {}, output);
}
const hardSigmoid: Builder = (c) => {
  const e = emitterFor(c);
  hardSigmoidOf(e, c.node.inputs[0], floatAttr(c.node, 'alpha', 0.2), floatAttr(c.node, 'beta', 0.5), c.node.outputs[0]);
  return e.nodes;
};
const hardSwish: Builder = (c) => {
  const e = emitterFor(c);
  const x = c.node.inputs[0];
  e.op('Mul', [x, hardSigmoidOf(e, x, 1 / 6, 0.5)], {}, c.node.outputs[0]);
  return e.nodes;
};

/**
 * Nearest-neighbour Resize only copies values, so it is exact in float32 on each half of a float64 split:
 * x = hi + lo with hi = float32(x), lo = float32(x − hi); y = Resize(hi) + Resize(lo) to ~1e-15.
 */
const resizeNearest: Builder = (c) => {
  const { node } = c;
  const mode = node.attrs.mode?.type === 'string' ? node.attrs.mode.value : 'nearest';
  if (mode !== 'nearest') return null;
  const e = emitterFor(c);
  const toFloat = { to: { type: 'int' as const, value: 1 } };
  const toDouble = { to: { type: 'int' as const, value: 11 } };
  // roi and scales were float32 in the source: the twin widened them, Resize wants them float32 again.
  const rest = node.inputs.slice(1).map((inp) => (inp && c.infos.get(inp)?.dtype === 'float32' ? e.op('Cast', [inp], toFloat) : inp));
  const x = node.inputs[0];
  const hi = e.op('Cast', [x], toFloat);
  const lo = e.op('Cast', [e.op('Sub', [x, e.op('Cast', [hi], toDouble)])], toFloat);
  const resized = (v: string) => e.op('Cast', [e.op('Resize', [v, ...rest], node.attrs)], toDouble);
  e.op('Add', [resized(hi), resized(lo)], {}, node.outputs[0]);
  return e.nodes;
};

/** op type → float64 replacement, for nodes whose (float32 in the source model) input has no float64 kernel. */
export const FLOAT64_REPLACEMENTS: Record<string, Builder> = {
  Erf: erf,
  Conv: conv,
  GlobalAveragePool: globalAveragePool,
  InstanceNormalization: instanceNormalization,
  HardSigmoid: hardSigmoid,
  HardSwish: hardSwish,
  Resize: resizeNearest,
};
