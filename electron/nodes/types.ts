// The node-type contract: what every node family file exports, and the JSON-safe descriptor the UI receives.

import type { z } from 'zod';
import type { Graph, Tensor } from '../onnx/ir.js';

/** Kinds of data a port carries (DESIGN.md §5). */
export type PortKind =
  | 'image'
  | 'video'
  | 'audio'
  | 'text'
  | 'tokens'
  | 'mask'
  | 'embeds'
  | 'pooled'
  | 'logits'
  | 'latent'
  | 'loss'
  | 'kv'
  | 'any';

export const PORT_KINDS: readonly PortKind[] = [
  'image',
  'video',
  'audio',
  'text',
  'tokens',
  'mask',
  'embeds',
  'pooled',
  'logits',
  'latent',
  'loss',
  'kv',
  'any',
];

export type NodeFamily =
  | 'encoder'
  | 'input-projector'
  | 'llm'
  | 'output-projector'
  | 'generator'
  | 'io'
  | 'prompt'
  | 'loss'
  | 'imported';

export interface PortSpec {
  name: string;
  kind: PortKind;
  /** Symbolic dims, e.g. ['B', 'N', 'D']; a number where the size is fixed by the params. */
  shape?: Array<string | number>;
  optional?: boolean;
  doc?: string;
}

export interface ParamInfo {
  name: string;
  kind: 'int' | 'float' | 'string' | 'bool' | 'enum' | 'json';
  default: unknown;
  doc: string;
  options?: string[];
  min?: number;
  max?: number;
}

/** The card the UI shows for a node: what it does, where it comes from, the formula where one helps. */
export interface DocCard {
  summary: string;
  usedBy: string[];
  formula?: string;
  details?: string;
}

/** JSON-safe description of a node type (what crosses the contract to the renderer). */
export interface NodeTypeInfo {
  type: string;
  typeVersion: number;
  family: NodeFamily;
  title: string;
  /** Short names accepted on the CLI (`vlmc compare --with mlp`). */
  aliases: string[];
  inputs: PortSpec[];
  outputs: PortSpec[];
  params: ParamInfo[];
  doc: DocCard;
}

/** An ONNX fragment a node contributes: a graph whose inputs/outputs are named after the node's ports. */
export interface OnnxFragment {
  graph: Graph;
  opset: number;
  /** Initializers that are trainable weights (the rest are constants such as shape tensors or RoPE tables). */
  weights: string[];
}

/**
 * Concrete port shapes resolved for one node in one graph (after width propagation). Keys are input port names
 * (the shape arriving from upstream) and, under `downstreamKey(outputPort)`, the shape a downstream consumer
 * expects on one of this node's outputs (how an 'auto' D_out learns the LLM width).
 */
export type ResolvedShapes = Record<string, Array<string | number>>;

/** Key in ResolvedShapes for the shape downstream consumers expect on output `port`. */
export function downstreamKey(port: string): string {
  return `out:${port}`;
}

export interface BuildContext {
  nodeId: string;
  /** Seed for deterministic initialisation (derived from graph seed and node id). */
  seed: number;
  /** Widths taken from neighbours when a param is 'auto' (e.g. D_in from upstream, D_out from the LLM). */
  inputShapes: ResolvedShapes;
  /** Weights loaded from the node's weights file, by initializer name; they override seeded init. */
  weights?: Map<string, Tensor>;
  /**
   * Weights the user asked to initialise freshly although a checkpoint is loaded (exact names, or prefixes ending in
   * '.'). Any other weight the checkpoint lacks is an error naming it: a partly loaded checkpoint never passes silently.
   */
  freshWeights?: readonly string[];
}

/** Everything the catalogue knows about a node type. */
export interface NodeTypeDef<P extends z.ZodTypeAny = z.ZodTypeAny> {
  info: Omit<NodeTypeInfo, 'params'>;
  params: P;
  paramDocs: Record<string, string>;
  /** Output shapes for the given params and input shapes (used by validation and width propagation). */
  outputShapes(params: z.infer<P>, inputs: ResolvedShapes): ResolvedShapes;
  /**
   * Shapes this node expects on its inputs for these params (e.g. an LLM's `inputs_embeds` width). Width propagation
   * passes them upstream so 'auto' widths resolve, and validation checks edges against them. Default: static port shapes.
   */
  inputShapes?(params: z.infer<P>): ResolvedShapes;
  /** Ports that depend on the params (imported ONNX files). Default: `info.inputs` / `info.outputs`. */
  ports?(params: z.infer<P>): { inputs: PortSpec[]; outputs: PortSpec[] };
  /** ONNX nodes build a fragment; host nodes (tokeniser, image decode, generation loop) have `host` instead. */
  build?(params: z.infer<P>, ctx: BuildContext): OnnxFragment;
  host?: string;
}
