// Shared plumbing for adapter rewrites: fragment copies, value interception, seeded weights, results.

import { GraphBuilder } from '../../onnx/builder.js';
import { type Graph, type Model, type Tensor, OnnxError, isFloat, newModel, tensorSize } from '../../onnx/ir.js';
import { Rng } from '../../engine/rng.js';
import type { OnnxFragment } from '../types.js';

/** Any bad adapter input: the message names the node or adapter, the config field and the tensor. */
export class AdapterError extends Error {
  override name = 'AdapterError';
}

/** What every adapter method returns. */
export interface AdapterResult<I = unknown> {
  /** The rewritten fragment (a copy: the input fragment is never modified). */
  fragment: OnnxFragment;
  /** Names of the new initializers to train (everything else stays frozen). */
  trainable: string[];
  /** Method-specific facts the trainer, merge and export need (targets, scales, extra outputs). */
  info: I;
}

/** Per-call options that are not part of the stored adapter config. */
export interface ApplyOptions {
  /** Build the training graph (dropout active). Default false: inference graph. */
  training?: boolean;
  /** Label for error messages, e.g. "adapter 'a1' (lora) on node 'llm'". */
  what?: string;
  /** Adapter weights to use instead of the seeded init (resume, PEFT import), by initializer name. */
  weights?: Map<string, Tensor>;
  /** Token ids of a text (prompt tuning init 'text'). */
  tokenize?: (text: string) => number[];
  /** The word-embedding matrix [V, D] (prompt tuning init 'text' / 'sample_vocab'), when not inside the fragment. */
  embeddingMatrix?: Tensor;
}

/** The lowest opset the rewrites target (ReduceSum axes as input, Softmax on one axis, Dropout training_mode). */
export const MIN_ADAPTER_OPSET = 13;

/** A deep-enough copy: nodes, lists and maps are new; tensors are shared (rewrites replace, never mutate them). */
export function cloneFragment(fragment: OnnxFragment): OnnxFragment {
  const g = fragment.graph;
  const graph: Graph = {
    ...g,
    nodes: g.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs], attrs: { ...n.attrs } })),
    inputs: g.inputs.map((v) => ({ ...v })),
    outputs: g.outputs.map((v) => ({ ...v })),
    initializers: new Map(g.initializers),
    valueInfo: new Map(g.valueInfo),
  };
  return { graph, opset: fragment.opset, weights: [...fragment.weights] };
}

/** An imported model as a fragment: every float initializer counts as a weight. */
export function fragmentFromModel(model: Model): OnnxFragment {
  const opset = model.opsets[''] ?? 0;
  const weights = [...model.graph.initializers].filter(([, t]) => isFloat(t.dtype) && t.dims.length > 0).map(([k]) => k);
  return cloneFragment({ graph: model.graph, opset, weights });
}

/** A runnable model of a fragment (the opset it declares). */
export function modelFromFragment(fragment: OnnxFragment): Model {
  return newModel(fragment.graph, fragment.opset);
}

export function checkOpset(fragment: OnnxFragment, what: string): void {
  if (fragment.opset < MIN_ADAPTER_OPSET) {
    throw new AdapterError(`${what}: the fragment uses opset ${fragment.opset}; adapters need opset ${MIN_ADAPTER_OPSET} or newer`);
  }
}

/**
 * Lets a rewrite put something between a value and its readers: the producer's output is renamed to a fresh name
 * (returned), and the caller must then produce `value` again from it. Readers and graph outputs keep their names.
 */
export function intercept(b: GraphBuilder, value: string): string {
  const graph = b.graph;
  const producer = graph.nodes.find((n) => n.outputs.includes(value));
  if (!producer) {
    throw new OnnxError(`cannot intercept '${value}': it is not produced by a node of graph '${graph.name}'`);
  }
  const renamed = b.fresh(`${value}_base`);
  producer.outputs = producer.outputs.map((o) => (o === value ? renamed : o));
  return renamed;
}

/** Replaces every read of `from` (node inputs) with `to`, except in the listed nodes. */
export function replaceReads(graph: Graph, from: string, to: string, except: ReadonlySet<string> = new Set()): void {
  for (const n of graph.nodes) {
    if (except.has(n.name)) continue;
    n.inputs = n.inputs.map((i) => (i === from ? to : i));
  }
}

export function floatTensor(dims: number[], data?: Float32Array): Tensor {
  const size = tensorSize(dims);
  const values = data ?? new Float32Array(size);
  if (values.length !== size) throw new AdapterError(`tensor of shape [${dims.join(',')}] needs ${size} values, got ${values.length}`);
  return { dtype: 'float32', dims: [...dims], data: values };
}

/** Reads a float32 initializer (any float dtype is converted). */
export function floatData(t: Tensor, what: string): Float32Array {
  if (t.dtype === 'float32') return t.data as Float32Array;
  if (t.dtype === 'float64') return Float32Array.from(t.data as Float64Array);
  throw new AdapterError(`${what}: expected a float32 tensor, got ${t.dtype}`);
}

/** How one adapter weight starts. */
export type WeightInit =
  | { kind: 'zeros' }
  | { kind: 'ones' }
  | { kind: 'kaiming'; fanIn: number }
  | { kind: 'normal'; std: number }
  | { kind: 'uniform'; bound: number }
  | { kind: 'given'; data: Float32Array };

/**
 * Adds a trainable weight: supplied weights (options.weights) win, checked by shape; otherwise seeded init from
 * its own stream (seed forked by the weight name, so adding a weight never changes the others).
 */
export function addWeight(
  b: GraphBuilder,
  name: string,
  dims: number[],
  init: WeightInit,
  seed: number,
  options: ApplyOptions,
  what: string,
): string {
  if (b.graph.initializers.has(name)) throw new AdapterError(`${what}: weight '${name}' already exists (is the adapter applied twice?)`);
  const given = options.weights?.get(name);
  let tensor: Tensor;
  if (given) {
    if (given.dims.length !== dims.length || given.dims.some((d, i) => d !== dims[i])) {
      throw new AdapterError(`${what}: supplied weight '${name}' has shape [${given.dims.join(',')}], expected [${dims.join(',')}]`);
    }
    tensor = floatTensor(dims, Float32Array.from(floatData(given, `${what}: weight '${name}'`)));
  } else {
    const data = new Float32Array(tensorSize(dims));
    const rng = new Rng(seed).fork(name);
    switch (init.kind) {
      case 'zeros':
        break;
      case 'ones':
        data.fill(1);
        break;
      case 'kaiming':
        rng.kaimingUniform(data, init.fanIn);
        break;
      case 'normal':
        rng.fillNormal(data, init.std);
        break;
      case 'uniform':
        rng.fillUniform(data, -init.bound, init.bound);
        break;
      case 'given':
        data.set(init.data);
        break;
    }
    tensor = floatTensor(dims, data);
  }
  b.reserve(name);
  b.graph.initializers.set(name, tensor);
  return name;
}

/** Turns a zod error into an AdapterError naming the config field. */
export function parseConfig<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: Array<{ path: PropertyKey[]; message: string }> } } }, config: unknown, what: string): T {
  const parsed = schema.safeParse(config ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.map(String).join('.') || '(config)';
    throw new AdapterError(`${what}: config field '${field}': ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

/** Batch size of a value as a 1-element int64 tensor (for Expand of shared parameters to the batch). */
export function batchDim(b: GraphBuilder, value: string): string {
  // Slice of Shape rather than Shape(start, end), which needs opset 15.
  return b.op('Slice', [b.shape(value), b.ints([0]), b.ints([1]), b.ints([0])]);
}
