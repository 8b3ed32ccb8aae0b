// Transformer building blocks for node fragments, written with GraphBuilder: weights (seeded init, overrides by
// name, meta builds), linear / norm / activation layers, attention (self and cross), MLPs, SwiGLU, masks, positional
// tables and RoPE. Encoders, projectors and LLMs compose these so every family shares one tested implementation.
//
// Conventions
// - Values are tensor names. Activations are [B, T, D] float32; B and T stay symbolic.
// - Linear weights keep the PyTorch layout [out, in] (so state dicts load unchanged) and are applied as
//   x · Wᵀ via a Transpose that onnxruntime folds into a constant.
// - Additive attention masks hold 0 where attention is allowed and MASK_VALUE where it is not, broadcastable to
//   [B, H, Tq, Tk].
// - Every initializer is created through `ParamStore`, which draws it from its own seeded stream (forked by name,
//   so adding or removing one weight never changes another), or takes the user-supplied tensor of that name.

import { Rng } from '../engine/rng.js';
import { GraphBuilder } from '../onnx/builder.js';
import { type Graph, type Tensor, emptyGraph, tensorSize, tensorToNumbers } from '../onnx/ir.js';
import type { BuildContext, OnnxFragment, ResolvedShapes } from './types.js';

/** Opset every fragment built here uses (LayerNormalization needs 17). */
export const FRAGMENT_OPSET = 17;

/** Additive mask value for disallowed attention (large but finite, so fully masked rows never produce NaN). */
export const MASK_VALUE = -1e9;

/** Error raised while building a node; the message names the node type and node id. */
export class NodeBuildError extends Error {
  override name = 'NodeBuildError';
}

// ---------------------------------------------------------------------------------------------------------------
// Weights

/** How a weight is initialised when no tensor of its name is supplied. */
export type InitSpec =
  | { kind: 'normal'; std: number; mean?: number }
  /** torch.nn.init.trunc_normal_: N(0, std²) cut at the absolute bounds [a, b] (PyTorch default [−2, 2]). */
  | { kind: 'trunc_normal'; std: number; a?: number; b?: number }
  /** nn.Linear / nn.Conv default weight init: U(±1/√fan_in). */
  | { kind: 'kaiming_uniform'; fanIn: number }
  | { kind: 'uniform'; bound: number }
  | { kind: 'constant'; value: number }
  /** Fixed values (e.g. sinusoid tables); computed lazily so meta builds skip them. */
  | { kind: 'values'; values: () => Float32Array };

export const init = {
  normal: (std: number, mean = 0): InitSpec => ({ kind: 'normal', std, mean }),
  truncNormal: (std: number, a = -2, b = 2): InitSpec => ({ kind: 'trunc_normal', std, a, b }),
  kaimingUniform: (fanIn: number): InitSpec => ({ kind: 'kaiming_uniform', fanIn }),
  uniform: (bound: number): InitSpec => ({ kind: 'uniform', bound }),
  zeros: (): InitSpec => ({ kind: 'constant', value: 0 }),
  ones: (): InitSpec => ({ kind: 'constant', value: 1 }),
  constant: (value: number): InitSpec => ({ kind: 'constant', value }),
  values: (values: () => Float32Array): InitSpec => ({ kind: 'values', values }),
};

export interface ParamStoreOptions {
  /** Names the node in errors, e.g. "encoder.clip_vit node 'vit'". */
  what: string;
  seed: number;
  /** User-supplied tensors by initializer name; they replace the seeded init. */
  overrides?: Map<string, Tensor>;
  /** Allocate no data: initializers get their dims and an empty buffer (for parameter counts of real presets). */
  meta?: boolean;
  /** Weights to initialise freshly even though `overrides` (a checkpoint) is given (names or prefixes ending '.'). */
  freshWeights?: readonly string[];
}

/**
 * Whether `name` is one of the weights the user asked to initialise freshly: exact, under a prefix ending '.', or
 * '*' (every weight the file lacks).
 */
export function isFreshWeight(name: string, fresh: readonly string[] | undefined): boolean {
  return (fresh ?? []).some((f) => f === '*' || (f.endsWith('.') ? name.startsWith(f) : name === f));
}

/**
 * The trainable weights a checkpoint lacks, when it holds some of the node's weights but not all, less those asked
 * for fresh: an error naming them (a tensor missing from a file must not be filled with random values silently).
 */
export function missingCheckpointWeights(what: string, weights: readonly string[], supplied: Map<string, unknown> | undefined, fresh: readonly string[] | undefined): Error | undefined {
  if (!supplied || ![...supplied.keys()].some((k) => weights.includes(k))) return undefined;
  const missing = weights.filter((w) => !supplied.has(w) && !isFreshWeight(w, fresh));
  if (missing.length === 0) return undefined;
  const some = missing.slice(0, 6).map((n) => `'${n}'`).join(', ');
  return new NodeBuildError(
    `${what}: the weights file lacks ${missing.length} of this node's weights (${some}${missing.length > 6 ? ', …' : ''}); ` +
      `supply them, or list them under the node's freshWeights to initialise them from the seed`,
  );
}

/**
 * Creates the initializers of one fragment. Trainable weights are listed in `weights`; buffers (fixed tables that
 * can still be replaced by name) are not.
 */
export class ParamStore {
  readonly weights: string[] = [];
  private readonly used = new Set<string>();
  private readonly root: Rng;

  constructor(
    private readonly b: GraphBuilder,
    readonly opts: ParamStoreOptions,
  ) {
    this.root = new Rng(opts.seed);
  }

  /** A trainable weight. `stream` picks the random stream by name (defaults to the weight's own name). */
  weight(name: string, dims: number[], spec: InitSpec, stream?: string): string {
    const out = this.create(name, dims, spec, stream ?? name);
    this.weights.push(out);
    return out;
  }

  /** A non-trainable initializer that a supplied tensor of the same name may still replace. */
  buffer(name: string, dims: number[], spec: InitSpec): string {
    return this.create(name, dims, spec, name);
  }

  /** Throws when supplied tensors were not used (a typo or a checkpoint for another architecture). */
  finish(): string[] {
    const missing = missingCheckpointWeights(this.opts.what, this.weights, this.opts.overrides, this.opts.freshWeights);
    if (missing) throw missing;
    const unused = [...(this.opts.overrides?.keys() ?? [])].filter((k) => !this.used.has(k));
    if (unused.length) {
      const some = unused.slice(0, 8).map((n) => `'${n}'`).join(', ');
      const known = this.weights.slice(0, 4).map((n) => `'${n}'`).join(', ');
      throw new NodeBuildError(
        `${this.opts.what}: ${unused.length} supplied weight(s) match no initializer: ${some}${unused.length > 8 ? ', …' : ''}` +
          ` (this node's weights are named like ${known})`,
      );
    }
    return [...this.weights];
  }

  private create(name: string, dims: number[], spec: InitSpec, stream: string): string {
    if (this.b.graph.initializers.has(name)) throw new NodeBuildError(`${this.opts.what}: weight '${name}' is created twice`);
    for (const d of dims) {
      if (!Number.isInteger(d) || d <= 0) {
        throw new NodeBuildError(`${this.opts.what}: weight '${name}' would have shape [${dims.join(',')}]; check the dims`);
      }
    }
    const supplied = this.opts.overrides?.get(name);
    const tensor = supplied ? this.checkSupplied(name, dims, supplied) : this.fresh(dims, spec, stream);
    this.used.add(name);
    return this.b.initializer(name, tensor);
  }

  private checkSupplied(name: string, dims: number[], t: Tensor): Tensor {
    if (t.dims.length !== dims.length || t.dims.some((d, i) => d !== dims[i])) {
      throw new NodeBuildError(
        `${this.opts.what}: supplied weight '${name}' has shape [${t.dims.join(',')}], expected [${dims.join(',')}]`,
      );
    }
    // The supplied tensor itself: a file-backed one (onnx/lazy.ts) stays unread until its session is serialised.
    if (t.dtype === 'float32') return t;
    if (t.dtype === 'float16' || t.dtype === 'bfloat16' || t.dtype === 'float64') {
      return { dtype: 'float32', dims: [...dims], data: Float32Array.from(tensorToNumbers(t)) };
    }
    throw new NodeBuildError(`${this.opts.what}: supplied weight '${name}' is ${t.dtype}; a float tensor is needed`);
  }

  private fresh(dims: number[], spec: InitSpec, stream: string): Tensor {
    if (this.opts.meta) return { dtype: 'float32', dims: [...dims], data: new Float32Array(0) };
    const n = tensorSize(dims);
    let data: Float32Array;
    if (spec.kind === 'values') {
      data = spec.values();
      if (data.length !== n) throw new NodeBuildError(`${this.opts.what}: table '${stream}' has ${data.length} values, needs ${n}`);
    } else if (spec.kind === 'constant') {
      data = new Float32Array(n).fill(spec.value);
    } else {
      data = new Float32Array(n);
      const rng = this.root.fork(stream);
      if (spec.kind === 'normal') rng.fillNormal(data, spec.std, spec.mean ?? 0);
      else if (spec.kind === 'trunc_normal') rng.truncNormal(data, spec.std, 0, spec.a ?? -2, spec.b ?? 2);
      else if (spec.kind === 'kaiming_uniform') rng.kaimingUniform(data, spec.fanIn);
      else rng.fillUniform(data, -spec.bound, spec.bound);
    }
    return { dtype: 'float32', dims: [...dims], data };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Fragment scope

/** What every block function needs: the builder and the weight store of the fragment being built. */
export interface Scope {
  b: GraphBuilder;
  p: ParamStore;
  /** "encoder.clip_vit node 'vit'": prefix for error messages. */
  what: string;
}

/** BuildContext plus `meta`: build the structure with empty weight buffers (never run such a fragment). */
export interface MetaBuildContext extends BuildContext {
  meta?: boolean;
}

export function isMetaBuild(ctx: BuildContext): boolean {
  return 'meta' in ctx && ctx.meta === true;
}

/** Starts a fragment for node type `type`. */
export function openScope(type: string, ctx: BuildContext): Scope {
  const graph = emptyGraph(`${type}:${ctx.nodeId}`);
  const b = new GraphBuilder(graph);
  const what = `${type} node '${ctx.nodeId}'`;
  const p = new ParamStore(b, { what, seed: ctx.seed, overrides: ctx.weights, meta: isMetaBuild(ctx), freshWeights: ctx.freshWeights });
  return { b, p, what };
}

/** Declares a graph input named after a port. */
export function portInput(s: Scope, port: string, dtype: 'float32' | 'int64', shape: Array<string | number>): string {
  return s.b.input(port, dtype, shape);
}

/** Exposes `value` as the graph output named after `port`. */
export function portOutput(s: Scope, port: string, value: string, shape: Array<string | number>): void {
  s.b.op('Identity', [value], {}, { outputs: [port], name: `out_${port}` });
  s.b.output(port, 'float32', shape);
}

/** Finishes the fragment: checks every supplied weight was used. */
export function closeScope(s: Scope): OnnxFragment {
  const weights = s.p.finish();
  return { graph: s.b.graph, opset: FRAGMENT_OPSET, weights };
}

/** Sum of the element counts of a fragment's trainable weights. */
export function parameterCount(fragment: OnnxFragment): number {
  let n = 0;
  for (const w of fragment.weights) {
    const t = fragment.graph.initializers.get(w);
    if (t) n += tensorSize(t.dims);
  }
  return n;
}

/** The graph's initializer by name (tests and tools). */
export function initializerOf(graph: Graph, name: string): Tensor {
  const t = graph.initializers.get(name);
  if (!t) throw new NodeBuildError(`graph '${graph.name}' has no initializer '${name}'`);
  return t;
}

// ---------------------------------------------------------------------------------------------------------------
// Params: presets, 'auto' widths, connected ports

/** Preset dims overridden by the params the user set (undefined = take the preset's value). */
export function withOverrides<C extends object>(preset: C, overrides: { [K in keyof C]?: C[K] | undefined }): C {
  const out = { ...preset };
  for (const key of Object.keys(overrides) as Array<keyof C>) {
    const v = overrides[key];
    if (v !== undefined) out[key] = v as C[keyof C];
  }
  return out;
}

/** Whether an optional input port is connected (width propagation lists only connected inputs). */
export function isConnected(inputs: ResolvedShapes, port: string): boolean {
  return Object.prototype.hasOwnProperty.call(inputs, port);
}

/** The last dim of a port's shape when it is a number. */
export function knownWidth(shape: Array<string | number> | undefined): number | undefined {
  const d = shape?.[shape.length - 1];
  return typeof d === 'number' ? d : undefined;
}

/**
 * Resolves an 'auto'-able width: a number is used as is; 'auto' reads the last dim of `shape`. Returns `symbol`
 * when unknown and `strict` is false (shape inference), throws a clear error otherwise (build).
 */
export function resolveWidth(
  value: number | 'auto',
  shape: Array<string | number> | undefined,
  o: { what: string; param: string; source: string; symbol: string; strict: boolean },
): number | string {
  if (value !== 'auto') return value;
  const w = knownWidth(shape);
  if (w !== undefined) return w;
  if (!o.strict) return o.symbol;
  throw new NodeBuildError(
    `${o.what}: ${o.param} is 'auto' but the width of ${o.source} is not known; connect it or set ${o.param} to a number`,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Layers

export type Activation = 'gelu' | 'quick_gelu' | 'gelu_new' | 'relu' | 'silu' | 'tanh';
export const ACTIVATIONS: readonly Activation[] = ['gelu', 'quick_gelu', 'gelu_new', 'relu', 'silu', 'tanh'];

/** Elementwise activation from standard opset-17 ops (Gelu is an op only from opset 20). */
export function activation(b: GraphBuilder, x: string, act: Activation): string {
  switch (act) {
    case 'gelu': {
      // 0.5·x·(1 + erf(x/√2))
      const e = b.op('Erf', [b.mul(x, b.scalar(Math.SQRT1_2))]);
      return b.mul(b.mul(x, b.add(e, b.scalar(1))), b.scalar(0.5));
    }
    case 'quick_gelu':
      return b.mul(x, b.op('Sigmoid', [b.mul(x, b.scalar(1.702))]));
    case 'gelu_new': {
      // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
      const cube = b.mul(b.mul(x, x), x);
      const inner = b.mul(b.add(x, b.mul(cube, b.scalar(0.044715))), b.scalar(Math.sqrt(2 / Math.PI)));
      return b.mul(b.mul(x, b.add(b.op('Tanh', [inner]), b.scalar(1))), b.scalar(0.5));
    }
    case 'relu':
      return b.op('Relu', [x]);
    case 'silu':
      return b.mul(x, b.op('Sigmoid', [x]));
    case 'tanh':
      return b.op('Tanh', [x]);
  }
}

export interface LinearOptions {
  bias?: boolean;
  /** Default: nn.Linear's U(±1/√in) for weight and bias. */
  weightInit?: InitSpec;
  biasInit?: InitSpec;
  /** Random stream name for the weight (lets two weights share an init, e.g. Q-Former query FFN copies). */
  stream?: string;
}

/** y = x·Wᵀ + b with `${name}.weight` [outDim, inDim] and `${name}.bias` [outDim]. */
export function linear(s: Scope, x: string, name: string, inDim: number, outDim: number, o: LinearOptions = {}): string {
  const w = s.p.weight(`${name}.weight`, [outDim, inDim], o.weightInit ?? init.kaimingUniform(inDim), o.stream && `${o.stream}.weight`);
  let y = s.b.matmul(x, s.b.transpose(w, [1, 0]));
  if (o.bias ?? true) {
    const bias = s.p.weight(`${name}.bias`, [outDim], o.biasInit ?? init.uniform(1 / Math.sqrt(inDim)), o.stream && `${o.stream}.bias`);
    y = s.b.add(y, bias);
  }
  return y;
}

/** LayerNorm over the last axis with `${name}.weight` (γ=1) and `${name}.bias` (β=0). */
export function layerNorm(s: Scope, x: string, name: string, dim: number, eps: number): string {
  const g = s.p.weight(`${name}.weight`, [dim], init.ones());
  const beta = s.p.weight(`${name}.bias`, [dim], init.zeros());
  return s.b.op('LayerNormalization', [x, g, beta], { axis: -1, epsilon: eps });
}

/** RMSNorm (LLaMA): x / √(mean(x²) + eps) · γ with `${name}.weight`. */
export function rmsNorm(s: Scope, x: string, name: string, dim: number, eps: number): string {
  const g = s.p.weight(`${name}.weight`, [dim], init.ones());
  const { b } = s;
  const ms = b.reduceMean(b.mul(x, x), [-1], true, FRAGMENT_OPSET);
  const inv = b.op('Reciprocal', [b.op('Sqrt', [b.add(ms, b.scalar(eps))])]);
  return b.mul(b.mul(x, inv), g);
}

/** Token embedding lookup: Gather rows of `${name}.weight` [vocab, dim] (N(0, std) init, HF default 0.02). */
export function embedding(s: Scope, ids: string, name: string, vocab: number, dim: number, std = 0.02): string {
  const table = s.p.weight(`${name}.weight`, [vocab, dim], init.normal(std));
  return s.b.op('Gather', [table, ids], { axis: 0 });
}

export interface MlpNames {
  fc1: string;
  fc2: string;
}

export interface MlpOptions {
  dim: number;
  hidden: number;
  act: Activation;
  bias?: boolean;
  fc1Init?: InitSpec;
  fc2Init?: InitSpec;
  /** Random stream prefixes, to share an init with another MLP (see LinearOptions.stream). */
  streams?: MlpNames;
}

/** fc2(act(fc1(x))): the transformer feed-forward. */
export function mlp(s: Scope, x: string, names: MlpNames, o: MlpOptions): string {
  const bias = o.bias ?? true;
  const h = linear(s, x, names.fc1, o.dim, o.hidden, { bias, weightInit: o.fc1Init, biasInit: o.fc1Init && init.zeros(), stream: o.streams?.fc1 });
  const a = activation(s.b, h, o.act);
  return linear(s, a, names.fc2, o.hidden, o.dim, { bias, weightInit: o.fc2Init, biasInit: o.fc2Init && init.zeros(), stream: o.streams?.fc2 });
}

export interface SwiGluNames {
  /** Gate projection (SiLU branch). */
  w1: string;
  /** Down projection. */
  w2: string;
  /** Up projection. */
  w3: string;
  /** Optional LayerNorm on the hidden product (mPLUG-Owl `ffn_ln`, EVA-02 `scale_mlp`). */
  innerNorm?: string;
}

export interface SwiGluOptions {
  dim: number;
  hidden: number;
  bias?: boolean;
  eps?: number;
  weightInit?: InitSpec;
}

/** w2( [norm]( SiLU(w1·x) ⊙ w3·x ) ). */
export function swiglu(s: Scope, x: string, names: SwiGluNames, o: SwiGluOptions): string {
  const bias = o.bias ?? false;
  const lin = (v: string, name: string, i: number, out: number) =>
    linear(s, v, name, i, out, { bias, weightInit: o.weightInit, biasInit: o.weightInit && init.zeros() });
  const gate = activation(s.b, lin(x, names.w1, o.dim, o.hidden), 'silu');
  let h = s.b.mul(gate, lin(x, names.w3, o.dim, o.hidden));
  if (names.innerNorm) h = layerNorm(s, h, names.innerNorm, o.hidden, o.eps ?? 1e-6);
  return lin(h, names.w2, o.hidden, o.dim);
}

// ---------------------------------------------------------------------------------------------------------------
// Attention

/** [B, T, H·hd] → [B, H, T, hd]. */
export function splitHeads(b: GraphBuilder, x: string, heads: number, headDim: number): string {
  return b.transpose(b.reshape(x, [0, 0, heads, headDim]), [0, 2, 1, 3]);
}

/** [B, H, T, hd] → [B, T, H·hd]. */
export function mergeHeads(b: GraphBuilder, x: string, heads: number, headDim: number): string {
  return b.reshape(b.transpose(x, [0, 2, 1, 3]), [0, 0, heads * headDim]);
}

export interface AttentionCoreOptions {
  heads: number;
  headDim: number;
  /** Additive mask broadcastable to [B, H, Tq, Tk]. */
  mask?: string;
  /** Default headDim^-0.5. */
  scale?: number;
}

/**
 * softmax(q·kᵀ·scale + mask)·v over heads. q [B,Tq,H·hd], k and v [B,Tk,H·hd] (already projected) → [B,Tq,H·hd].
 */
export function attentionCore(b: GraphBuilder, q: string, k: string, v: string, o: AttentionCoreOptions): string {
  const qh = splitHeads(b, b.mul(q, b.scalar(o.scale ?? 1 / Math.sqrt(o.headDim))), o.heads, o.headDim);
  const kt = b.transpose(b.reshape(k, [0, 0, o.heads, o.headDim]), [0, 2, 3, 1]);
  const vh = splitHeads(b, v, o.heads, o.headDim);
  let scores = b.matmul(qh, kt);
  if (o.mask) scores = b.add(scores, o.mask);
  const probs = b.op('Softmax', [scores], { axis: -1 });
  return mergeHeads(b, b.matmul(probs, vh), o.heads, o.headDim);
}

/** Weight names of one attention module with separate q/k/v/out Linears. */
export interface AttentionNames {
  q: string;
  k: string;
  v: string;
  out: string;
}

export interface AttentionOptions {
  /** Query width (the residual stream). */
  dim: number;
  heads: number;
  /** Key/value source width (cross-attention); default `dim`. */
  kvDim?: number;
  /** heads·headDim; default `dim`. */
  innerDim?: number;
  mask?: string;
  bias?: { q?: boolean; k?: boolean; v?: boolean; out?: boolean };
  init?: { q?: InitSpec; k?: InitSpec; v?: InitSpec; out?: InitSpec };
}

/**
 * Multi-head attention with separate projections: out(attn(q(x), k(kv), v(kv))). `kv` = x for self-attention,
 * the encoder states for cross-attention. Biases are zero-initialised when an explicit weight init is given.
 */
export function attention(s: Scope, x: string, kv: string, names: AttentionNames, o: AttentionOptions): string {
  const inner = o.innerDim ?? o.dim;
  const kvDim = o.kvDim ?? o.dim;
  if (inner % o.heads !== 0) throw new NodeBuildError(`${s.what}: width ${inner} is not divisible by ${o.heads} heads`);
  const proj = (v: string, name: string, i: number, out: number, bias: boolean | undefined, w: InitSpec | undefined) =>
    linear(s, v, name, i, out, { bias: bias ?? true, weightInit: w, biasInit: w && init.zeros() });
  const q = proj(x, names.q, o.dim, inner, o.bias?.q, o.init?.q);
  const k = proj(kv, names.k, kvDim, inner, o.bias?.k, o.init?.k);
  const v = proj(kv, names.v, kvDim, inner, o.bias?.v, o.init?.v);
  const ctx = attentionCore(s.b, q, k, v, { heads: o.heads, headDim: inner / o.heads, mask: o.mask });
  return proj(ctx, names.out, inner, o.dim, o.bias?.out, o.init?.out);
}

// ---------------------------------------------------------------------------------------------------------------
// Shapes, tokens and masks

/** Dim `axis` of x as a 1-D int64 tensor of length 1 (Shape with start/end, opset 15). */
export function dimOf(b: GraphBuilder, x: string, axis: number): string {
  return b.op('Shape', [x], { start: axis, end: axis + 1 });
}

/** Dim `axis` of x as an int64 scalar. */
export function dimScalar(b: GraphBuilder, x: string, axis: number): string {
  return b.squeeze(dimOf(b, x, axis), [0]);
}

/** Broadcasts `table` (any shape with `rows·dim` elements) to [B, rows, dim], B taken from `like`'s first dim. */
export function expandToBatch(b: GraphBuilder, table: string, like: string, rows: number, dim: number): string {
  const shape = b.concat([dimOf(b, like, 0), b.ints([rows, dim])], 0);
  return b.op('Expand', [b.reshape(table, [1, rows, dim]), shape]);
}

/** The first `length` rows of a [maxRows, D] table (length = dim `axis` of `like`), for learned/fixed positions. */
export function firstRows(b: GraphBuilder, table: string, like: string, axis: number): string {
  return b.op('Slice', [table, b.ints([0]), dimOf(b, like, axis), b.ints([0])]);
}

/** Rows [start, end) of x along `axis` (end = Infinity for "to the end"). */
export function sliceAxis(b: GraphBuilder, x: string, axis: number, start: number, end: number): string {
  const stop = Number.isFinite(end) ? end : Number.MAX_SAFE_INTEGER;
  return b.op('Slice', [x, b.ints([start]), b.ints([stop]), b.ints([axis])]);
}

/** Padding mask [B, T] (int64, 1 = attend) → additive [B, 1, 1, T]. */
export function paddingMask(b: GraphBuilder, mask: string): string {
  const keep = b.cast(mask, 'float32');
  return b.unsqueeze(b.mul(b.sub(b.scalar(1), keep), b.scalar(MASK_VALUE)), [1, 2]);
}

/** Causal additive mask [T, T] for x [B, T, D]: position i attends to j ≤ i. */
export function causalMask(b: GraphBuilder, x: string): string {
  const t = dimOf(b, x, 1);
  const ones = b.op('ConstantOfShape', [b.concat([t, t], 0)], { value: { dtype: 'float32', dims: [1], data: new Float32Array([1]) } });
  const lower = b.op('Trilu', [ones], { upper: 0 });
  return b.mul(b.sub(b.scalar(1), lower), b.scalar(MASK_VALUE));
}

/** Rows of x [B, T, D] at per-batch positions idx [B] (int64) → [B, D], as a one-hot MatMul (differentiable). */
export function gatherRows(b: GraphBuilder, x: string, idx: string): string {
  const positions = b.op('Range', [b.scalar(0, 'int64'), dimScalar(b, x, 1), b.scalar(1, 'int64')]);
  const onehot = b.cast(b.op('Equal', [b.unsqueeze(idx, [1]), positions]), 'float32');
  return b.squeeze(b.matmul(b.unsqueeze(onehot, [1]), x), [1]);
}

// ---------------------------------------------------------------------------------------------------------------
// Positions

/** Whisper-style sinusoids [length, channels]: sin in the first half, cos in the second (max timescale 10000). */
export function sinusoidTable(length: number, channels: number, maxTimescale = 10000): Float32Array {
  if (channels % 2 !== 0) throw new NodeBuildError(`sinusoidal positions need an even width, got ${channels}`);
  const half = channels / 2;
  const inc = Math.log(maxTimescale) / Math.max(half - 1, 1);
  const out = new Float32Array(length * channels);
  for (let p = 0; p < length; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * Math.exp(-inc * i);
      out[p * channels + i] = Math.sin(angle);
      out[p * channels + half + i] = Math.cos(angle);
    }
  }
  return out;
}

/** RoPE cos/sin tables [maxPositions, headDim] in the rotate-half layout (LLaMA / HF): freq i repeated in both halves. */
export function ropeTables(maxPositions: number, headDim: number, theta = 10000): { cos: Float32Array; sin: Float32Array } {
  if (headDim % 2 !== 0) throw new NodeBuildError(`RoPE needs an even head dim, got ${headDim}`);
  const half = headDim / 2;
  const cos = new Float32Array(maxPositions * headDim);
  const sin = new Float32Array(maxPositions * headDim);
  for (let p = 0; p < maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p / theta ** ((2 * i) / headDim);
      cos[p * headDim + i] = cos[p * headDim + half + i] = Math.cos(angle);
      sin[p * headDim + i] = sin[p * headDim + half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

export interface Rope {
  /** [B, 1, T, hd] gathered at the position ids. */
  cos: string;
  sin: string;
  headDim: number;
}

/**
 * Adds RoPE constant tables (non-trainable initializers `${name}.cos` / `${name}.sin`) and gathers them at
 * `positionIds` [B, T] (int64). Apply with `applyRope` to q and k in [B, H, T, hd] layout.
 */
export function ropeAt(s: Scope, positionIds: string, name: string, maxPositions: number, headDim: number, theta = 10000): Rope {
  let tables: { cos: Float32Array; sin: Float32Array } | undefined;
  const get = () => (tables ??= ropeTables(maxPositions, headDim, theta));
  const cosT = s.p.buffer(`${name}.cos`, [maxPositions, headDim], init.values(() => get().cos));
  const sinT = s.p.buffer(`${name}.sin`, [maxPositions, headDim], init.values(() => get().sin));
  const at = (t: string) => s.b.unsqueeze(s.b.op('Gather', [t, positionIds], { axis: 0 }), [1]);
  return { cos: at(cosT), sin: at(sinT), headDim };
}

/** x·cos + rotate_half(x)·sin, rotate_half(x) = [−x₂, x₁] over the last axis of x [B, H, T, hd]. */
export function applyRope(b: GraphBuilder, x: string, rope: Rope): string {
  const half = rope.headDim / 2;
  const x1 = sliceAxis(b, x, 3, 0, half);
  const x2 = sliceAxis(b, x, 3, half, rope.headDim);
  const rotated = b.concat([b.neg(x2), x1], 3);
  return b.add(b.mul(x, rope.cos), b.mul(rotated, rope.sin));
}

// ---------------------------------------------------------------------------------------------------------------
// Encoder layers

/** Weight names of a pre-LN transformer layer (CLIP, Whisper). */
export interface PreNormLayerNames {
  ln1: string;
  attn: AttentionNames;
  ln2: string;
  mlp: MlpNames;
}

export interface PreNormLayerOptions {
  dim: number;
  heads: number;
  mlpDim: number;
  act: Activation;
  eps: number;
  mask?: string;
  kBias?: boolean;
  init?: { q?: InitSpec; k?: InitSpec; v?: InitSpec; out?: InitSpec; fc1?: InitSpec; fc2?: InitSpec };
}

/** x += attn(LN1(x)); x += MLP(LN2(x)). */
export function preNormLayer(s: Scope, x: string, names: PreNormLayerNames, o: PreNormLayerOptions): string {
  const h = layerNorm(s, x, names.ln1, o.dim, o.eps);
  const a = attention(s, h, h, names.attn, {
    dim: o.dim,
    heads: o.heads,
    mask: o.mask,
    bias: { k: o.kBias ?? true },
    init: o.init,
  });
  const x1 = s.b.add(x, a);
  const h2 = layerNorm(s, x1, names.ln2, o.dim, o.eps);
  return s.b.add(x1, mlp(s, h2, names.mlp, { dim: o.dim, hidden: o.mlpDim, act: o.act, fc1Init: o.init?.fc1, fc2Init: o.init?.fc2 }));
}

/** BERT-style post-LN residual: LN(residual + dense(x)) with `${prefix}.dense` and `${prefix}.LayerNorm`. */
export function bertOutput(
  s: Scope,
  x: string,
  residual: string,
  prefix: string,
  inDim: number,
  dim: number,
  eps: number,
  std = 0.02,
  stream?: string,
): string {
  const d = linear(s, x, `${prefix}.dense`, inDim, dim, { weightInit: init.normal(std), biasInit: init.zeros(), stream: stream && `${stream}.dense` });
  return layerNorm(s, s.b.add(d, residual), `${prefix}.LayerNorm`, dim, eps);
}

/**
 * BERT attention block (post-LN): LN(x + dense(MHA(x, kv))) with weights `${prefix}.self.{query,key,value}` and
 * `${prefix}.output.{dense,LayerNorm}`. For cross-attention pass the encoder states as `kv` and their width as kvDim.
 */
export function bertAttention(
  s: Scope,
  x: string,
  kv: string,
  prefix: string,
  o: { dim: number; heads: number; eps: number; kvDim?: number; mask?: string; std?: number },
): string {
  const std = o.std ?? 0.02;
  const n = init.normal(std);
  const inner = attentionProjections(s, x, kv, prefix, o.dim, o.kvDim ?? o.dim, o.heads, o.mask, n);
  return bertOutput(s, inner, x, `${prefix}.output`, o.dim, o.dim, o.eps, std);
}

function attentionProjections(
  s: Scope,
  x: string,
  kv: string,
  prefix: string,
  dim: number,
  kvDim: number,
  heads: number,
  mask: string | undefined,
  w: InitSpec,
): string {
  if (dim % heads !== 0) throw new NodeBuildError(`${s.what}: width ${dim} is not divisible by ${heads} heads`);
  const opts = { weightInit: w, biasInit: init.zeros() };
  const q = linear(s, x, `${prefix}.self.query`, dim, dim, opts);
  const k = linear(s, kv, `${prefix}.self.key`, kvDim, dim, opts);
  const v = linear(s, kv, `${prefix}.self.value`, kvDim, dim, opts);
  return attentionCore(s.b, q, k, v, { heads, headDim: dim / heads, mask });
}

/**
 * BERT feed-forward (post-LN): LN(x + dense₂(GELU(dense₁(x)))) with `${inter}.dense` and `${out}.{dense,LayerNorm}`.
 * `streams` lets a copy share its init with another FFN (Q-Former query FFN = text FFN at init).
 */
export function bertFeedForward(
  s: Scope,
  x: string,
  names: { intermediate: string; output: string },
  o: { dim: number; hidden: number; eps: number; act?: Activation; std?: number; streams?: { intermediate: string; output: string } },
): string {
  const std = o.std ?? 0.02;
  const h = linear(s, x, `${names.intermediate}.dense`, o.dim, o.hidden, {
    weightInit: init.normal(std),
    biasInit: init.zeros(),
    stream: o.streams && `${o.streams.intermediate}.dense`,
  });
  return bertOutput(s, activation(s.b, h, o.act ?? 'gelu'), x, names.output, o.hidden, o.dim, o.eps, std, o.streams?.output);
}
