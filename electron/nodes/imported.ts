// Imported ONNX models: any ONNX file becomes a node whose ports are the file's inputs and outputs (DESIGN.md §6).
// Port kinds are guessed from the Optimum / Transformers.js I/O names and can be overridden with `portKinds`.

import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { type DType, type Graph, type Model, type Shape, type Tensor, OnnxError, isFloat } from '../onnx/ir.js';
import { loadModel } from '../onnx/proto.js';
import { PORT_KINDS, type NodeTypeDef, type OnnxFragment, type PortKind, type PortSpec, type ResolvedShapes } from './types.js';

export interface ImportedPort extends PortSpec {
  dtype: DType;
}

export interface ImportedModelInfo {
  path: string;
  opset: number;
  inputs: ImportedPort[];
  outputs: ImportedPort[];
  /** Elements in float initializers (the weights). */
  parameterCount: number;
  /** Non-standard op domains used (imports with contrib ops cannot run through our engine). */
  customDomains: string[];
}

/** Kind from an Optimum / Transformers.js port name and its dtype; 'any' when nothing fits. */
export function guessPortKind(name: string, dtype: DType): PortKind {
  const n = name.toLowerCase();
  if (n === 'pixel_values') return 'image';
  if (/^(past_key_values|present)\./.test(n)) return 'kv';
  if (/attention_mask$/.test(n) && !isFloat(dtype)) return 'mask';
  if (/input_ids$/.test(n) && !isFloat(dtype)) return 'tokens';
  if (n === 'logits' || n.endsWith('_logits') || n.startsWith('logits_per_')) return 'logits';
  if (n === 'loss') return 'loss';
  if (n === 'pooler_output') return 'pooled';
  if (n === 'latent_sample' || n === 'latents') return 'latent';
  if (n === 'input_features' || n === 'input_values') return 'audio';
  if (isFloat(dtype) && (/embeds$/.test(n) || n === 'last_hidden_state' || /_features$/.test(n) || /hidden_states/.test(n))) {
    return 'embeds';
  }
  return 'any';
}

/** Symbolic names for dims the file leaves unnamed, so every port has a full shape when its rank is known. */
function portShape(port: string, shape: Shape): Array<string | number> | undefined {
  if (shape === null) return undefined;
  return shape.map((d, i) => (d === null ? `${port}_dim${i}` : d));
}

function collectDomains(g: Graph, into: Set<string>): void {
  for (const n of g.nodes) {
    if (n.domain && n.domain !== 'ai.onnx') into.add(n.domain);
    for (const a of Object.values(n.attrs)) {
      if (a.type === 'graph') collectDomains(a.value, into);
      if (a.type === 'graphs') a.value.forEach((sub) => collectDomains(sub, into));
    }
  }
}

/** onnxruntime's contrib domain and the ops of it that its CPU kernels run (quantised Transformers.js exports). */
export const CONTRIB_DOMAIN = 'com.microsoft';
export const CPU_CONTRIB_OPS: ReadonlySet<string> = new Set(['MatMulNBits', 'QLinearAdd', 'QLinearMul', 'QLinearSigmoid', 'QLinearLeakyRelu', 'QLinearConcat', 'QLinearAveragePool', 'QLinearGlobalAveragePool', 'DynamicQuantizeMatMul', 'MatMulIntegerToFloat', 'FusedMatMul', 'Gelu', 'FastGelu', 'QuickGelu', 'SkipLayerNormalization', 'SimplifiedLayerNormalization', 'SkipSimplifiedLayerNormalization', 'RotaryEmbedding', 'GroupQueryAttention', 'MultiHeadAttention']);

function firstContribOutsideCpu(g: Graph): Graph['nodes'][number] | undefined {
  for (const n of g.nodes) {
    if (n.domain === CONTRIB_DOMAIN && !CPU_CONTRIB_OPS.has(n.opType)) return n;
    for (const a of Object.values(n.attrs)) {
      const subs = a.type === 'graph' ? [a.value] : a.type === 'graphs' ? a.value : [];
      for (const sub of subs) {
        const found = firstContribOutsideCpu(sub);
        if (found) return found;
      }
    }
  }
  return undefined;
}

/** The opsets a fragment's session needs: the default domain's, and onnxruntime's contrib domain when it is used. */
export function fragmentOpsets(graph: Graph, opset: number): Record<string, number> {
  const domains = new Set<string>();
  collectDomains(graph, domains);
  return { '': opset, ...(domains.has(CONTRIB_DOMAIN) ? { [CONTRIB_DOMAIN]: 1 } : {}) };
}

const EXECUTOR_FILLED = /^(position_ids|use_cache_branch|past_key_values\.\d+\.(key|value))$/;

function describeModel(model: Model, path: string, portKinds: Record<string, PortKind> = {}): ImportedModelInfo {
  const g = model.graph;
  const names = new Set([...g.inputs, ...g.outputs].map((v) => v.name));
  for (const name of Object.keys(portKinds)) {
    if (!names.has(name)) {
      throw new OnnxError(
        `portKinds names '${name}', which is not an input or output of '${path}' (ports: ${[...names].join(', ')})`,
      );
    }
  }
  const inputNames = new Set(g.inputs.map((v) => v.name));
  const port = (v: { name: string; dtype: DType; shape: Shape }): ImportedPort => {
    const shape = portShape(v.name, v.shape);
    return {
      name: v.name,
      // Decoder inputs the executor and the trainer fill in (positions from the mask, an empty past, no cache branch).
      ...(inputNames.has(v.name) && EXECUTOR_FILLED.test(v.name) ? { optional: true } : {}),
      kind: portKinds[v.name] ?? guessPortKind(v.name, v.dtype),
      dtype: v.dtype,
      ...(shape ? { shape } : {}),
      doc: `${v.dtype}${v.shape ? ` [${v.shape.map((d) => d ?? '?').join(', ')}]` : ''} from the file`,
    };
  };
  let parameterCount = 0;
  for (const t of g.initializers.values()) if (isFloat(t.dtype)) parameterCount += t.dims.reduce((a, b) => a * b, 1);
  const domains = new Set<string>();
  collectDomains(g, domains);
  return {
    path,
    opset: model.opsets[''] ?? model.opsets['ai.onnx'] ?? 0,
    inputs: g.inputs.map(port),
    outputs: g.outputs.map(port),
    parameterCount,
    customDomains: [...domains],
  };
}

// Parsed files, keyed by path and modification stamp, so validation and building read a file once.
const modelCache = new Map<string, { stamp: string; model: Model }>();

function loadCached(path: string): Model {
  const abs = resolve(path);
  let stamp: string;
  try {
    const st = statSync(abs);
    stamp = `${st.size}:${st.mtimeMs}`;
  } catch (e) {
    throw new OnnxError(`cannot read ONNX file '${path}': ${(e as Error).message}`);
  }
  const hit = modelCache.get(abs);
  if (hit && hit.stamp === stamp) return hit.model;
  const model = loadModel(abs);
  modelCache.set(abs, { stamp, model });
  return model;
}

/** The ports (with guessed kinds and the file's shapes), opset and size of an ONNX file. */
export function describeImportedModel(path: string, portKinds: Record<string, PortKind> = {}): ImportedModelInfo {
  return describeModel(loadCached(path), path, portKinds);
}

// ---------------------------------------------------------------------------------------------------------------

/**
 * Generation through an imported decoder (a Transformers.js / Optimum `model.onnx` or `decoder_model_merged.onnx`):
 * the node gets `text` and `generated_ids` outputs, and the executor runs the KV-cache loop over its
 * `past_key_values.* → present.*` ports. Defaults come from the folder's generation_config.json at import.
 */
export const importedGenerationParams = z.strictObject({
  /** The folder's tokenizer.json (decodes the answer; its eos ends it unless eos_token_ids says otherwise). */
  tokenizer: z.string().min(1, 'generation needs the tokenizer.json path'),
  max_new_tokens: z.number().int().positive().max(4096).default(32),
  temperature: z.number().nonnegative().default(0),
  top_k: z.number().int().nonnegative().default(0),
  top_p: z.number().positive().max(1).default(1),
  sample_seed: z.number().int().nonnegative().default(0),
  use_cache: z.boolean().default(true),
  eos_token_ids: z.array(z.number().int().nonnegative()).nullable().default(null),
  /** Longest sequence the decoder may see (config.json max_position_embeddings / n_positions); null = unbounded. */
  max_positions: z.number().int().positive().nullable().default(null),
});
export type ImportedGenerationParams = z.infer<typeof importedGenerationParams>;

const importParams = z.strictObject({
  path: z.string().min(1, 'an imported model needs the path of its .onnx file'),
  portKinds: z.record(z.string(), z.enum(PORT_KINDS as [PortKind, ...PortKind[]])).default({}),
  generation: importedGenerationParams.nullable().default(null),
});
type ImportParams = z.infer<typeof importParams>;

export const IMPORTED_TYPE = 'model.onnx_import';

/** Ports an imported decoder adds when it generates. */
const GENERATED_PORTS: ImportedPort[] = [
  { name: 'text', kind: 'text', dtype: 'string', doc: 'The generated answer (KV-cache loop over the file\'s past_key_values → present ports).' },
  { name: 'generated_ids', kind: 'tokens', dtype: 'int64', shape: ['B', 'N'], doc: 'The generated token ids (without the stop token).' },
];

/** Whether a document node is a decoder that generates: our llm.decoder, or an imported decoder with generation params. */
export function isGeneratingDecoder(node: { type: string; params: unknown }): boolean {
  if (node.type === 'llm.decoder') return true;
  if (node.type !== IMPORTED_TYPE) return false;
  const g = (node.params as Record<string, unknown> | undefined)?.generation;
  return typeof g === 'object' && g !== null;
}

/** The generation params of an imported decoder node (validated), or undefined when it does not generate. */
export function importedGeneration(params: unknown): ImportedGenerationParams | undefined {
  const p = importParams.parse(params);
  return p.generation ?? undefined;
}

function shapesOf(ports: ImportedPort[]): ResolvedShapes {
  const out: ResolvedShapes = {};
  for (const p of ports) if (p.shape) out[p.name] = p.shape;
  return out;
}

/** The file's graph as a fragment: its initializers are the weights; weights from ctx.weights replace them. */
function buildImported(params: ImportParams, weights: Map<string, Tensor> | undefined, nodeId: string): OnnxFragment {
  const model = loadCached(params.path);
  const info = describeModel(model, params.path, params.portKinds);
  const unsupported = info.customDomains.filter((d) => d !== CONTRIB_DOMAIN);
  const contrib = firstContribOutsideCpu(model.graph);
  if (contrib) {
    throw new OnnxError(
      `node '${nodeId}': '${params.path}' node '${contrib.name}' is ${CONTRIB_DOMAIN}::${contrib.opType}, which onnxruntime's CPU kernels Composer allows do not include (${[...CPU_CONTRIB_OPS].join(', ')})`,
    );
  }
  if (unsupported.length) {
    throw new OnnxError(
      `node '${nodeId}': '${params.path}' uses non-standard ops (domains ${unsupported.join(', ')}); export it without contrib fusions`,
    );
  }
  const src = model.graph;
  const initializers = new Map(src.initializers);
  for (const [name, t] of weights ?? []) {
    const old = initializers.get(name);
    if (!old) throw new OnnxError(`node '${nodeId}': weight '${name}' is not an initializer of '${params.path}'`);
    if (old.dtype !== t.dtype || old.dims.join(',') !== t.dims.join(',')) {
      throw new OnnxError(
        `node '${nodeId}': weight '${name}' is ${t.dtype}[${t.dims.join(',')}] but '${params.path}' has ${old.dtype}[${old.dims.join(',')}]`,
      );
    }
    initializers.set(name, t);
  }
  const graph: Graph = {
    name: src.name,
    nodes: src.nodes,
    inputs: src.inputs,
    outputs: src.outputs,
    initializers,
    valueInfo: src.valueInfo,
  };
  const trainable = [...initializers].filter(([, t]) => isFloat(t.dtype) && t.dims.length > 0).map(([n]) => n);
  return { graph, opset: info.opset, weights: trainable };
}

const importedNode: NodeTypeDef<typeof importParams> = {
  info: {
    type: IMPORTED_TYPE,
    typeVersion: 1,
    family: 'imported',
    title: 'Imported ONNX model',
    aliases: ['onnx', 'import'],
    inputs: [],
    outputs: [],
    doc: {
      summary:
        "Runs any ONNX file (a torch.onnx or Optimum export without contrib ops) as one node; its inputs and outputs become the node's ports.",
      usedBy: ['Transformers.js / Optimum exports: CLIP towers, LLaVA vision_encoder, decoder_model_merged, …'],
      details:
        'Port kinds are guessed from the names (pixel_values → image, input_ids → tokens, *embeds / last_hidden_state → embeds, logits → logits, …); set portKinds to override. Its initializers are weights: they can be frozen, adapted and trained like any node.',
    },
  },
  params: importParams,
  paramDocs: {
    path: 'The .onnx file (external data must sit in the same folder).',
    portKinds: 'Overrides of the guessed kinds, by port name, e.g. {"image_features": "embeds"}.',
    generation:
      'For a decoder with past_key_values → present ports: tokenizer, max_new_tokens, temperature, top_k, top_p, sample_seed, use_cache, eos_token_ids, max_positions; the node then generates text.',
  },
  ports(params) {
    const info = describeImportedModel(params.path, params.portKinds);
    return { inputs: info.inputs, outputs: params.generation ? [...info.outputs, ...GENERATED_PORTS] : info.outputs };
  },
  inputShapes: (params) => shapesOf(describeImportedModel(params.path, params.portKinds).inputs),
  outputShapes: (params) => shapesOf(describeImportedModel(params.path, params.portKinds).outputs),
  build: (params, ctx) => buildImported(params, ctx.weights, ctx.nodeId),
};

export const nodeTypes: NodeTypeDef[] = [importedNode];
