// Test support for the encoder tests: build a node type by name (seeded or describe-only), run a fragment in
// onnxruntime, and deterministic inputs.

import { type Tensor, newModel, tensorFromNumbers, tensorSize } from '../onnx/ir.js';
import { runModel } from '../onnx/ort.js';
import { type MetaBuildContext, parameterCount } from './blocks.js';
import { nodeTypes } from './encoders.js';
import type { BuildContext, NodeTypeDef, OnnxFragment, ResolvedShapes } from './types.js';

export function encoderDef(type: string): NodeTypeDef {
  const d = nodeTypes.find((n) => n.info.type === type);
  if (!d) throw new Error(`no node type ${type}`);
  return d;
}

/** A seeded build of `type` with these params (seed 11 unless `over` says otherwise). */
export function buildEncoder(type: string, params: Record<string, unknown> = {}, over: Partial<BuildContext> = {}): OnnxFragment {
  const d = encoderDef(type);
  if (!d.build) throw new Error(`${type} has no build`);
  return d.build(d.params.parse(params), { nodeId: 'n1', seed: 11, inputShapes: {}, ...over });
}

/** Parameter count from a describe-only build (no weights allocated). */
export function metaCount(type: string, params: Record<string, unknown>, inputShapes: ResolvedShapes = {}): number {
  const d = encoderDef(type);
  const ctx: MetaBuildContext = { nodeId: 'meta', seed: 0, inputShapes, meta: true };
  const frag = d.build?.(d.params.parse(params), ctx);
  if (!frag) throw new Error('no fragment');
  return parameterCount(frag);
}

export function runFragment(frag: OnnxFragment, feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
  return runModel(newModel(frag.graph, frag.opset), feeds);
}

/** A smooth deterministic float input. */
export function wave(dims: number[], phase = 0): Tensor {
  return tensorFromNumbers('float32', dims, Array.from({ length: tensorSize(dims) }, (_, i) => Math.sin(0.113 * i + phase)));
}

/** Token-id rows as an int64 [B, T] tensor. */
export function ids(rows: number[][]): Tensor {
  return tensorFromNumbers('int64', [rows.length, rows[0].length], rows.flat());
}
