// Fused ONNX export: the feed-forward vision path (image pixel_values → encoder → projector → image_features) as ONE
// ONNX model, via the executor's fused mode. Ports get plain names (`pixel_values`, `image_features`), every
// intermediate value gets a value_info (so Netron shows shapes), weights go to external data when large, and the
// written file is loaded back into onnxruntime before the export counts as done.

import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Model, ValueInfo } from '../onnx/ir.js';
import { saveModel } from '../onnx/proto.js';
import { inferShapes } from '../onnx/shapes.js';
import type { DocEdge, GraphDocument } from '../engine/document.js';
import { Executor } from '../engine/executor.js';
import type { ComposedModel } from '../engine/compose.js';
import { hasErrors, validateDocument } from '../engine/validate.js';
import { type Catalog, portsOf } from '../nodes/catalog.js';
import type { ExportProgress, ExportResult } from './bundle.js';
import { type ExportedFile, ExportError, composerVersion, describeFile, prepareExportDir, writeExportFile, writeManifest } from './manifest.js';

/** Models whose initializers exceed this go to external data in 'auto' mode (protobuf's limit is 2 GiB). */
export const FUSED_EXTERNAL_DATA_BYTES = 256 * 1024 * 1024;

export type ExternalDataMode = 'auto' | 'always' | 'never';

export interface FusedOnnxOptions {
  baseDir: string;
  outDir: string;
  fileName?: string;
  externalData?: ExternalDataMode;
  executor?: Executor;
  onProgress?: (p: ExportProgress) => void;
  /** Write a manifest.json (false when the caller writes its own, e.g. a Triton repository). */
  manifest?: boolean;
}

export interface FusedPort {
  name: string;
  dtype: string;
  shape: Array<string | number | null>;
  /** The graph port this model port stands for (`node.port`). */
  source: string;
}

export interface FusedOnnxResult extends ExportResult {
  modelPath: string;
  inputs: FusedPort[];
  outputs: FusedPort[];
  /** The graph nodes fused into the model, in order. */
  nodes: string[];
}

/** The kind of an output port of a node ('image' for pixel_values), or undefined when unknown. */
function outputKind(doc: GraphDocument, catalog: Catalog, nodeId: string, port: string): string | undefined {
  const node = doc.nodes.find((n) => n.id === nodeId);
  const def = node && catalog.lookup(node.type);
  if (!node || !def) return undefined;
  const parsed = def.params.safeParse(node.params);
  if (!parsed.success) return undefined;
  return portsOf(def, parsed.data).outputs.find((p) => p.name === port)?.kind;
}

/**
 * The feed-forward vision path: ONNX nodes fed only by image tensors (an io.image, or a prompt step that passes
 * images on) or by other path nodes — the encoder and the projectors after it. An input projector that also reads
 * host-side text (InstructBLIP's instruction-aware Q-Former) joins too; its text inputs become model inputs. The
 * path stops where text embeddings mix in (the merge before the LLM, Flamingo's cross-attention).
 */
export function visionPath(doc: GraphDocument, catalog: Catalog): string[] {
  const path = new Set<string>();
  const isOnnx = (id: string) => Boolean(catalog.lookup(doc.nodes.find((n) => n.id === id)?.type ?? '')?.build);
  const carriesImage = (e: DocEdge) => outputKind(doc, catalog, e.from.node, e.from.port) === 'image';
  let grew = true;
  while (grew) {
    grew = false;
    for (const n of doc.nodes) {
      const def = catalog.lookup(n.type);
      if (path.has(n.id) || !def?.build) continue;
      const incoming = doc.edges.filter((e) => e.to.node === n.id);
      const fromPath = incoming.filter((e) => path.has(e.from.node) || carriesImage(e));
      const rest = incoming.filter((e) => !fromPath.includes(e));
      const joins =
        fromPath.length > 0 &&
        (rest.length === 0 || (def.info.family === 'input-projector' && fromPath.some((e) => path.has(e.from.node)) && rest.every((e) => !isOnnx(e.from.node))));
      if (joins) {
        path.add(n.id);
        grew = true;
      }
    }
  }
  return doc.nodes.map((n) => n.id).filter((id) => path.has(id));
}

function sanitize(name: string): string {
  return name.replace(/[^A-Za-z0-9_]/g, '_');
}

/** Renames the fused model's ports to plain names where they are unique (`pixel_values`, `image_features`). */
function plainPortNames(composed: ComposedModel): { model: Model; inputs: FusedPort[]; outputs: FusedPort[] } {
  const g = composed.model.graph;
  const rename = new Map<string, string>();
  const plain = (names: string[], short: (n: string) => string) => {
    const counts = new Map<string, number>();
    for (const n of names) counts.set(short(n), (counts.get(short(n)) ?? 0) + 1);
    for (const n of names) rename.set(n, counts.get(short(n)) === 1 ? short(n) : sanitize(n));
  };
  plain(g.inputs.map((v) => v.name), (n) => n.slice(n.indexOf('.') + 1));
  plain(g.outputs.map((v) => v.name), (n) => n.slice(n.lastIndexOf('/') + 1));
  const r = (v: string) => rename.get(v) ?? v;
  const port = (v: ValueInfo, source: string): FusedPort => ({ name: r(v.name), dtype: v.dtype, shape: v.shape ?? [], source });
  const inputs = g.inputs.map((v) => port(v, v.name));
  const outputs = g.outputs.map((v) => {
    const o = composed.outputs.get(v.name);
    return port(v, o ? `${o.node}.${o.port}` : v.name);
  });
  const model: Model = {
    ...composed.model,
    graph: {
      ...g,
      nodes: g.nodes.map((n) => ({ ...n, inputs: n.inputs.map(r), outputs: n.outputs.map(r) })),
      inputs: g.inputs.map((v) => ({ ...v, name: r(v.name) })),
      outputs: g.outputs.map((v) => ({ ...v, name: r(v.name) })),
      valueInfo: new Map([...g.valueInfo].map(([k, v]) => [r(k), { ...v, name: r(k) }])),
    },
  };
  return { model, inputs, outputs };
}

/** value_info for every intermediate value (graph inputs, outputs and initializers already carry theirs). */
function addValueInfo(model: Model): void {
  const g = model.graph;
  const skip = new Set([...g.inputs.map((v) => v.name), ...g.outputs.map((v) => v.name), ...g.initializers.keys()]);
  const inferred = inferShapes(model);
  for (const n of g.nodes) {
    for (const out of n.outputs) {
      if (!out || skip.has(out)) continue;
      const vi = inferred.get(out);
      if (vi) g.valueInfo.set(out, { ...vi, name: out });
    }
  }
}

function initializerBytes(model: Model): number {
  let n = 0;
  for (const t of model.graph.initializers.values()) n += Array.isArray(t.data) ? 0 : t.data.byteLength;
  return n;
}

/** The fused model in memory (also used by the benchmarks): vision path of `doc`, plain port names, value_info. */
export async function fusedVisionModel(
  doc: GraphDocument,
  baseDir: string,
  executor: Executor,
): Promise<{ model: Model; inputs: FusedPort[]; outputs: FusedPort[]; nodes: string[] }> {
  const nodes = visionPath(doc, executor.catalog);
  if (nodes.length === 0) throw new ExportError('the graph has no ONNX nodes fed only by an image input (io.image → encoder → projector)');
  const composed = await executor.fuse(doc, baseDir, nodes);
  const { model, inputs, outputs } = plainPortNames(composed);
  model.producerVersion = composerVersion().version;
  model.graph.name = sanitize(doc.name) || 'composed';
  model.metadata = {
    ...model.metadata,
    'composer.graph': doc.name,
    'composer.nodes': nodes.join(','),
    'composer.inputs': inputs.map((p) => `${p.name}=${p.source}`).join(','),
    'composer.outputs': outputs.map((p) => `${p.name}=${p.source}`).join(','),
  };
  addValueInfo(model);
  return { model, inputs, outputs, nodes };
}

export async function exportFusedOnnx(doc: GraphDocument, opts: FusedOnnxOptions): Promise<FusedOnnxResult> {
  const diagnostics = validateDocument(doc);
  if (hasErrors(diagnostics)) {
    const first = diagnostics.find((d) => d.severity === 'error')!;
    throw new ExportError(`the graph is not valid${first.nodeId ? ` (node '${first.nodeId}')` : ''}: ${first.message}`);
  }
  const dir = resolve(opts.outDir);
  if (opts.manifest !== false) prepareExportDir(dir);
  const executor = opts.executor ?? new Executor();
  try {
    const { model, inputs, outputs, nodes } = await fusedVisionModel(doc, opts.baseDir, executor);
    const fileName = opts.fileName ?? 'model.onnx';
    const mode = opts.externalData ?? 'auto';
    const external = mode === 'always' || (mode === 'auto' && initializerBytes(model) > FUSED_EXTERNAL_DATA_BYTES);
    const dataName = `${fileName}.data`;
    const modelPath = join(dir, fileName);
    saveModel(modelPath, model, external ? { externalDataName: dataName, externalThreshold: 1024 } : {});
    const files: ExportedFile[] = [describeFile(dir, fileName)];
    if (external) files.push(describeFile(dir, dataName));
    for (const f of files) opts.onProgress?.({ file: f.path });
    // Loading from the file path proves the external data resolves and ORT accepts the model.
    try {
      const session = await ort.InferenceSession.create(modelPath, { logSeverityLevel: 3 });
      await session.release();
    } catch (e) {
      throw new ExportError(`the exported model '${modelPath}' does not load in onnxruntime: ${(e as Error).message}`);
    }
    const notes = [`fused ${nodes.join(' → ')}; inputs ${inputs.map((p) => p.name).join(', ')}; outputs ${outputs.map((p) => p.name).join(', ')}`];
    if (opts.manifest !== false) {
      const ports = writeExportFile(dir, 'ports.json', `${JSON.stringify({ inputs, outputs, nodes }, null, 2)}\n`);
      files.push(ports);
      opts.onProgress?.({ file: ports.path });
      writeManifest(dir, { kind: 'onnx', graph: doc.name, entry: { model: fileName, ports: 'ports.json' }, files, notes });
    }
    return { dir, entry: fileName, files, notes, modelPath, inputs, outputs, nodes };
  } finally {
    if (!opts.executor) await executor.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Inference-server repository (Triton layout: <repo>/<model>/config.pbtxt and <repo>/<model>/1/model.onnx)

const TRITON_TYPES: Record<string, string> = { float32: 'TYPE_FP32', float16: 'TYPE_FP16', int64: 'TYPE_INT64', int32: 'TYPE_INT32', bool: 'TYPE_BOOL', uint8: 'TYPE_UINT8' };

function tritonTensor(p: FusedPort): string {
  const type = TRITON_TYPES[p.dtype];
  if (!type) throw new ExportError(`port '${p.name}': dtype ${p.dtype} has no Triton data type`);
  const dims = p.shape.map((d) => (typeof d === 'number' ? d : -1));
  return `  {\n    name: "${p.name}"\n    data_type: ${type}\n    dims: [ ${dims.join(', ')} ]\n  }`;
}

/** A config.pbtxt for the ONNX Runtime backend; batch stays an explicit (dynamic) dim, so max_batch_size is 0. */
export function tritonConfig(name: string, inputs: FusedPort[], outputs: FusedPort[]): string {
  return [
    `name: "${name}"`,
    'platform: "onnxruntime_onnx"',
    'max_batch_size: 0',
    `input [\n${inputs.map(tritonTensor).join(',\n')}\n]`,
    `output [\n${outputs.map(tritonTensor).join(',\n')}\n]`,
    'instance_group [\n  {\n    count: 1\n    kind: KIND_CPU\n  }\n]',
    '',
  ].join('\n');
}

export async function exportTritonRepository(
  doc: GraphDocument,
  opts: Omit<FusedOnnxOptions, 'fileName' | 'manifest'> & { modelName?: string },
): Promise<FusedOnnxResult> {
  const dir = resolve(opts.outDir);
  prepareExportDir(dir);
  const name = sanitize(opts.modelName ?? doc.name).toLowerCase().replace(/_+/g, '_').replace(/^_|_$/g, '') || 'composer_vision';
  const fused = await exportFusedOnnx(doc, {
    ...opts,
    outDir: join(dir, name, '1'),
    manifest: false,
    onProgress: (p) => opts.onProgress?.({ file: `${name}/1/${p.file}` }),
  });
  const files = fused.files.map((f) => ({ ...f, path: `${name}/1/${f.path}` }));
  const config = writeExportFile(dir, `${name}/config.pbtxt`, tritonConfig(name, fused.inputs, fused.outputs));
  files.push(config);
  opts.onProgress?.({ file: config.path });
  writeManifest(dir, { kind: 'triton', graph: doc.name, entry: { model: `${name}/1/model.onnx`, config: config.path }, files, notes: fused.notes });
  return { ...fused, dir, entry: config.path, files };
}
