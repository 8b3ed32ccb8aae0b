// Builder DSL: the readable way the engine writes ONNX graphs. Values are tensor names (strings).
//
//   const b = new GraphBuilder(graph);
//   const h = b.op('Gelu', [b.op('MatMul', [x, w])]);
//   const y = b.add(h, b.scalar(1, 'float32'));

import {
  type Attribute,
  type DType,
  type Graph,
  type Node,
  type Shape,
  type Tensor,
  OnnxError,
  dtypeCode,
  tensorFromNumbers,
} from './ir.js';

/** Attribute values: numbers are ints unless the attribute name is a known float attribute (or wrapped with `float`). */
export type AttrInput = number | string | number[] | string[] | Tensor | Attribute | Graph;
export type AttrsInput = Record<string, AttrInput | undefined>;

const FLOAT_ATTRS = new Set([
  'alpha',
  'beta',
  'epsilon',
  'gamma',
  'momentum',
  'lambd',
  'bias',
  'cubic_coeff_a',
  'extrapolation_value',
  'spatial_scale',
  'ratio',
  'seed',
  'high',
  'low',
  'mean',
  'scale',
  'min',
  'max',
]);

export function float(value: number): Attribute {
  return { type: 'float', value };
}
export function floats(value: number[]): Attribute {
  return { type: 'floats', value };
}

function isAttribute(v: unknown): v is Attribute {
  return typeof v === 'object' && v !== null && 'type' in v && 'value' in v && !('dims' in v);
}
function isTensor(v: unknown): v is Tensor {
  return typeof v === 'object' && v !== null && 'dims' in v && 'data' in v && 'dtype' in v;
}
function isGraph(v: unknown): v is Graph {
  return typeof v === 'object' && v !== null && 'nodes' in v && 'initializers' in v;
}

export function toAttribute(name: string, v: AttrInput): Attribute {
  if (typeof v === 'number') {
    return FLOAT_ATTRS.has(name) || !Number.isInteger(v) ? { type: 'float', value: v } : { type: 'int', value: v };
  }
  if (typeof v === 'string') return { type: 'string', value: v };
  if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === 'string') return { type: 'strings', value: v as string[] };
    const nums = v as number[];
    return nums.some((x) => !Number.isInteger(x)) ? { type: 'floats', value: nums } : { type: 'ints', value: nums };
  }
  if (isTensor(v)) return { type: 'tensor', value: v };
  if (isGraph(v)) return { type: 'graph', value: v };
  if (isAttribute(v)) return v;
  throw new OnnxError(`attribute '${name}' has an unsupported value`);
}

export interface OpOptions {
  name?: string;
  domain?: string;
  /** Output names; defaults to fresh unique names. */
  outputs?: string[];
}

export class GraphBuilder {
  private readonly used = new Set<string>();
  private readonly constCache = new Map<string, string>();
  private counter = 0;

  constructor(
    readonly graph: Graph,
    readonly prefix = '',
  ) {
    for (const v of graph.inputs) this.used.add(v.name);
    for (const k of graph.initializers.keys()) this.used.add(k);
    for (const n of graph.nodes) {
      this.used.add(n.name);
      for (const o of n.outputs) this.used.add(o);
    }
  }

  /** A name not used anywhere in the graph yet. */
  fresh(base: string): string {
    const stem = `${this.prefix}${base}`;
    let name = stem;
    while (this.used.has(name)) name = `${stem}_${++this.counter}`;
    this.used.add(name);
    return name;
  }

  reserve(name: string): string {
    if (this.used.has(name)) throw new OnnxError(`name '${name}' is already used in graph '${this.graph.name}'`);
    this.used.add(name);
    return name;
  }

  /** Adds a node with one output and returns that output's name. */
  op(opType: string, inputs: string[], attrs: AttrsInput = {}, opts: OpOptions = {}): string {
    return this.opN(opType, inputs, attrs, opts.outputs ?? 1, opts)[0];
  }

  /** Adds a node with several outputs (a count, or explicit names). */
  opN(opType: string, inputs: string[], attrs: AttrsInput, outputs: number | string[], opts: OpOptions = {}): string[] {
    const nodeName = opts.name ? this.fresh(opts.name) : this.fresh(opType);
    const outs =
      typeof outputs === 'number'
        ? Array.from({ length: outputs }, (_, i) => this.fresh(`${nodeName}_out${outputs > 1 ? i : ''}`))
        : outputs.map((o) => (o === '' ? '' : this.used.has(o) ? this.reserveExisting(o) : this.reserve(o)));
    const attributes: Record<string, Attribute> = {};
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined) attributes[k] = toAttribute(k, v);
    const node: Node = { name: nodeName, opType, domain: opts.domain ?? '', inputs, outputs: outs, attrs: attributes };
    this.graph.nodes.push(node);
    return outs;
  }

  private reserveExisting(name: string): string {
    // An explicit output name may be pre-declared as a graph output; it must not already be produced.
    for (const n of this.graph.nodes) {
      if (n.outputs.includes(name)) throw new OnnxError(`value '${name}' is already produced by node '${n.name}'`);
    }
    if (this.graph.initializers.has(name)) throw new OnnxError(`value '${name}' is already an initializer`);
    return name;
  }

  input(name: string, dtype: DType, shape: Shape): string {
    this.reserve(name);
    this.graph.inputs.push({ name, dtype, shape });
    return name;
  }

  output(name: string, dtype: DType, shape: Shape = null): string {
    this.graph.outputs.push({ name, dtype, shape });
    return name;
  }

  initializer(name: string, tensor: Tensor): string {
    const n = this.used.has(name) && !this.graph.initializers.has(name) ? this.fresh(name) : name;
    this.used.add(n);
    this.graph.initializers.set(n, tensor);
    return n;
  }

  /** A constant tensor as an initializer; small ones are shared by value. */
  constant(dtype: DType, dims: number[], values: ArrayLike<number>, base = 'const'): string {
    const small = values.length <= 16;
    const key = small ? `${dtype}|${dims.join(',')}|${Array.from(values).join(',')}` : '';
    if (small) {
      const hit = this.constCache.get(key);
      if (hit) return hit;
    }
    const name = this.fresh(base);
    this.graph.initializers.set(name, tensorFromNumbers(dtype, dims, values));
    if (small) this.constCache.set(key, name);
    return name;
  }

  /** A rank-0 constant. */
  scalar(value: number, dtype: DType = 'float32'): string {
    return this.constant(dtype, [], [value], 'scalar');
  }

  /** A 1-D int64 constant, for shapes, axes, pads, starts and ends. */
  ints(values: number[]): string {
    return this.constant('int64', [values.length], values, 'ints');
  }

  // --- shorthands for the ops the engine writes most ---
  add(a: string, b: string): string {
    return this.op('Add', [a, b]);
  }
  sub(a: string, b: string): string {
    return this.op('Sub', [a, b]);
  }
  mul(a: string, b: string): string {
    return this.op('Mul', [a, b]);
  }
  div(a: string, b: string): string {
    return this.op('Div', [a, b]);
  }
  neg(a: string): string {
    return this.op('Neg', [a]);
  }
  matmul(a: string, b: string): string {
    return this.op('MatMul', [a, b]);
  }
  shape(x: string): string {
    return this.op('Shape', [x]);
  }
  reshape(x: string, shape: string | number[]): string {
    return this.op('Reshape', [x, typeof shape === 'string' ? shape : this.ints(shape)]);
  }
  transpose(x: string, perm: number[]): string {
    return this.op('Transpose', [x], { perm });
  }
  cast(x: string, to: DType): string {
    return this.op('Cast', [x], { to: dtypeCode(to) });
  }
  unsqueeze(x: string, axes: number[]): string {
    return this.op('Unsqueeze', [x, this.ints(axes)]);
  }
  squeeze(x: string, axes: number[]): string {
    return this.op('Squeeze', [x, this.ints(axes)]);
  }
  reduceSum(x: string, axes: number[] | string, keepdims: boolean, noopWithEmptyAxes = false): string {
    const axesInput = typeof axes === 'string' ? axes : this.ints(axes);
    return this.op('ReduceSum', [x, axesInput], { keepdims: keepdims ? 1 : 0, noop_with_empty_axes: noopWithEmptyAxes ? 1 : 0 });
  }
  /** ReduceMean with axes as attribute (opset < 18) or input (opset ≥ 18). */
  reduceMean(x: string, axes: number[], keepdims: boolean, opset: number): string {
    if (opset >= 18) return this.op('ReduceMean', [x, this.ints(axes)], { keepdims: keepdims ? 1 : 0 });
    return this.op('ReduceMean', [x], { axes, keepdims: keepdims ? 1 : 0 });
  }
  concat(xs: string[], axis: number): string {
    return this.op('Concat', xs, { axis });
  }
  zerosLike(x: string, dtype: DType): string {
    return this.op('ConstantOfShape', [this.shape(x)], { value: tensorFromNumbers(dtype, [1], [0]) });
  }
}
