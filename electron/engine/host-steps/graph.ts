// What a host step may ask of the running graph beyond its own inputs: where an input comes from, and running the
// built ONNX fragment of an upstream node on its own feeds (a diffusion sampler calls the UNet once per step).

import type { Tensor } from '../../onnx/ir.js';
import type { HostStepContext, HostValue } from './io.js';

export interface GraphAccess {
  /** The node and output port that feeds input `port` of this node (undefined when unconnected). */
  sourceOf(port: string): { node: string; port: string } | undefined;
  /** Runs the built fragment of `nodeId` (an ancestor of this node) on `feeds` (every input) → `outputs`; uncached. */
  runNode(nodeId: string, feeds: Record<string, Tensor>, outputs: string[]): Promise<Record<string, Tensor>>;
  /** Fires when the run is cancelled; long loops check it between steps. */
  signal?: AbortSignal;
  /** Reports progress of this node (a 'progress' run event). */
  progress(step: number, total: number, detail?: string): void;
}

export type GraphHostStepContext = HostStepContext & GraphAccess;

export type GraphHostStep = (
  params: unknown,
  inputs: Record<string, HostValue>,
  ctx: GraphHostStepContext,
) => Promise<Record<string, HostValue>>;
