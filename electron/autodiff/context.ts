// What a VJP rule sees: its node, the incoming cotangents, value types/ranks, and helpers that emit
// rank-aware, size-agnostic backward ops (sumTo, zeros, typed constants).

import { type AttrsInput, GraphBuilder } from '../onnx/builder.js';
import {
  type DType,
  type Dim,
  type Graph,
  type Node,
  type ValueInfo,
  OnnxError,
  dtypeCode,
  tensorFromNumbers,
  tensorToNumbers,
} from '../onnx/ir.js';

export class AutodiffError extends OnnxError {
  override name = 'AutodiffError';
}

/** A rule returns one gradient per node input (null where none is needed or none flows). */
export type VjpRule = (ctx: VjpContext) => Array<string | null>;

export class VjpContext {
  constructor(
    readonly node: Node,
    readonly b: GraphBuilder,
    readonly opset: number,
    private readonly infos: Map<string, ValueInfo>,
    private readonly needed: ReadonlySet<string>,
    private readonly outGrads: Array<string | null>,
    private readonly graph: Graph,
  ) {}

  /** Whether input i of the node needs a gradient. */
  needsGrad(i: number): boolean {
    const name = this.node.inputs[i];
    return !!name && this.needed.has(name);
  }

  /** The cotangent of output j, or null when nothing downstream needs it. */
  gradOut(j = 0): string | null {
    return this.outGrads[j] ?? null;
  }

  /** The cotangent of output j, materialising zeros when nothing flows (e.g. an unused Split output). */
  gradOutOrZeros(j: number): string {
    return this.gradOut(j) ?? this.zerosLike(this.node.outputs[j]);
  }

  input(i: number): string {
    return this.node.inputs[i] ?? '';
  }
  output(j = 0): string {
    return this.node.outputs[j];
  }
  hasInput(i: number): boolean {
    return !!this.node.inputs[i];
  }

  info(name: string): ValueInfo {
    const info = this.infos.get(name);
    if (!info) throw this.error(`no type information for value '${name}'`);
    return info;
  }
  dtype(name: string): DType {
    return this.info(name).dtype;
  }
  shape(name: string): Dim[] | null {
    return this.infos.get(name)?.shape ?? null;
  }
  /** ONNX dtype code of a value, for Cast `to` attributes. */
  dtypeCode(name: string): number {
    return dtypeCode(this.dtype(name));
  }
  rank(name: string): number {
    const s = this.shape(name);
    if (!s) throw this.error(`the rank of '${name}' is unknown; give the graph inputs shapes`);
    return s.length;
  }

  /** Records type info for a value a rule creates, so later helpers (sumTo) can use it. */
  declare(name: string, dtype: DType, shape: Dim[] | null): string {
    this.infos.set(name, { name, dtype, shape });
    return name;
  }

  error(message: string): AutodiffError {
    return new AutodiffError(`${this.node.opType} node '${this.node.name}': ${message}`);
  }

  // --- attributes ---
  attrInt(name: string, fallback: number): number {
    const a = this.node.attrs[name];
    if (!a) return fallback;
    if (a.type !== 'int') throw this.error(`attribute '${name}' should be an int`);
    return a.value;
  }
  attrFloat(name: string, fallback: number): number {
    const a = this.node.attrs[name];
    if (!a) return fallback;
    if (a.type !== 'float' && a.type !== 'int') throw this.error(`attribute '${name}' should be a float`);
    return a.value;
  }
  attrInts(name: string): number[] | null {
    const a = this.node.attrs[name];
    if (!a) return null;
    if (a.type !== 'ints') throw this.error(`attribute '${name}' should be a list of ints`);
    return a.value;
  }
  attrString(name: string, fallback: string): string {
    const a = this.node.attrs[name];
    if (!a) return fallback;
    if (a.type !== 'string') throw this.error(`attribute '${name}' should be a string`);
    return a.value;
  }

  /** Statically known values of an int/float input (initializer or Constant), else null. */
  constValues(i: number): number[] | null {
    const name = this.node.inputs[i];
    if (!name) return null;
    const init = this.graph.initializers.get(name);
    if (init) return Array.from(tensorToNumbers(init));
    const producer = this.graph.nodes.find((n) => n.outputs.includes(name));
    if (producer?.opType === 'Constant') {
      const v = producer.attrs.value;
      if (v?.type === 'tensor') return Array.from(tensorToNumbers(v.value));
      const vi = producer.attrs.value_ints ?? producer.attrs.value_int;
      if (vi?.type === 'ints') return vi.value;
      if (vi?.type === 'int') return [vi.value];
    }
    return null;
  }

  /** Normalises a possibly negative axis against a rank. */
  axis(axis: number, rank: number): number {
    return axis < 0 ? axis + rank : axis;
  }

  /**
   * Makes sure optional output j exists on the forward node (e.g. LayerNormalization's Mean, MaxPool's Indices),
   * naming it after the node and recording its type, and returns its name.
   */
  ensureOutput(j: number, base: string, dtype: DType, shape: Dim[] | null): string {
    const node = this.node;
    while (node.outputs.length <= j) node.outputs.push('');
    if (!node.outputs[j]) {
      node.outputs[j] = this.b.fresh(`${node.name}_${base}`);
      this.declare(node.outputs[j], dtype, shape);
    }
    return node.outputs[j];
  }

  // --- emitting ops ---
  op(opType: string, inputs: string[], attrs: AttrsInput = {}): string {
    return this.b.op(opType, inputs, attrs, { name: `${this.node.name}_grad_${opType}` });
  }
  opN(opType: string, inputs: string[], attrs: AttrsInput, outputs: number): string[] {
    return this.b.opN(opType, inputs, attrs, outputs, { name: `${this.node.name}_grad_${opType}` });
  }

  /** A rank-0 constant of the same dtype as `like`. */
  scalarLike(value: number, like: string): string {
    return this.b.scalar(value, this.dtype(like));
  }

  zerosLike(x: string): string {
    return this.op('ConstantOfShape', [this.op('Shape', [x])], {
      value: tensorFromNumbers(this.dtype(x), [1], [0]),
    });
  }

  /**
   * Undo broadcasting: sums `t` (which has the shape of value `tShapeOf`) down to the shape of `target`.
   * Static axes when the dims say so; a standard-op dynamic path (Equal/NonZero) when symbolic dims leave it open.
   */
  sumTo(t: string, target: string, tShapeOf: string): string {
    const ts = this.shape(tShapeOf);
    const xs = this.shape(target);
    if (!ts || !xs) throw this.error(`cannot undo broadcasting without the ranks of '${tShapeOf}' and '${target}'`);
    let cur = t;
    const lead = ts.length - xs.length;
    if (lead < 0) throw this.error(`'${target}' has a higher rank than the broadcast result '${tShapeOf}'`);
    if (lead > 0) {
      cur = this.b.reduceSum(cur, Array.from({ length: lead }, (_, k) => k), false);
    }
    const staticAxes: number[] = [];
    let dynamic = false;
    for (let k = 0; k < xs.length; k++) {
      const xd = xs[k];
      const td = ts[k + lead];
      if (xd === td && xd !== null) continue;
      if (xd === 1) {
        if (td !== 1) staticAxes.push(k);
        continue;
      }
      if (typeof xd === 'number' && typeof td === 'number' && xd !== td) {
        throw this.error(`cannot broadcast '${target}' [${xs}] to [${ts}]`);
      }
      // A symbolic/unknown dim that might be 1 at run time: decide at run time.
      dynamic = true;
    }
    if (dynamic) {
      const isOne = this.op('Equal', [this.op('Shape', [target]), this.b.constant('int64', [], [1])]);
      const axes = this.b.reshape(this.op('NonZero', [isOne]), [-1]);
      cur = this.b.reduceSum(cur, axes, true, true);
    } else if (staticAxes.length) {
      cur = this.b.reduceSum(cur, staticAxes, true);
    }
    return cur;
  }
}
