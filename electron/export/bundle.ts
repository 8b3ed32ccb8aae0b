// Bundle export: a folder that runs unchanged anywhere (`vlmc run BUNDLE_DIR`). The graph is pinned: every param
// resolved (defaults filled in, 'auto' widths replaced by the numbers they resolved to), every node's weights written
// to `weights/<node>.safetensors` with their sha256 in the node's `weights` field, the tokenizer copied next to it,
// per-node ONNX files for inspection, and a manifest with the sha256 of every file. All paths are relative.

import { cpSync, existsSync, readFileSync, statSync } from 'node:fs';
import { basename, isAbsolute, join, resolve } from 'node:path';
import type { Tensor } from '../onnx/ir.js';
import { loadModel, saveModel } from '../onnx/proto.js';
import { serializeSafetensors } from '../onnx/safetensors.js';
import type { BuildContext, NodeTypeDef, OnnxFragment } from '../nodes/types.js';
import { type DocNode, type GraphDocument, graphDocumentFromJson } from '../engine/document.js';
import { Executor, RunPlan } from '../engine/executor.js';
import { nodeSeed } from '../engine/keys.js';
import { BUILTIN_TOKENIZER_PATH } from '../engine/tokenizer.js';
import { hasErrors, validateDocument } from '../engine/validate.js';
import { type ExportedFile, ExportError, composerVersion, describeFile, listFiles, prepareExportDir, writeExportFile, writeManifest } from './manifest.js';

export const BUNDLE_GRAPH_FILE = 'graph.json';
/** Per-node ONNX files put initializers above this size in a `.data` file next to the model. */
export const EXTERNAL_DATA_BYTES = 64 * 1024 * 1024;

export interface ExportProgress {
  /** The file just written, relative to the export folder. */
  file: string;
}

export interface BundleOptions {
  /** Folder relative paths in the document resolve against. */
  baseDir: string;
  outDir: string;
  executor?: Executor;
  onProgress?: (p: ExportProgress) => void;
}

export interface ExportResult {
  dir: string;
  /** The entry point: `graph.json` for a bundle, the model file for ONNX. */
  entry: string;
  files: ExportedFile[];
  notes: string[];
}

// ---------------------------------------------------------------------------------------------------------------
// Pinning 'auto' params

/** What a built fragment looks like from outside: its weights' names and shapes and its ports' shapes. */
function fragmentSignature(f: OnnxFragment): string {
  const weights = f.weights.map((n) => `${n}:${f.graph.initializers.get(n)?.dims.join('x') ?? '?'}`).sort();
  const ports = [...f.graph.inputs, ...f.graph.outputs].map((v) => `${v.name}:${v.dtype}:${JSON.stringify(v.shape)}`);
  return JSON.stringify([weights, ports]);
}

function buildSignature(def: NodeTypeDef, params: Record<string, unknown>, ctx: BuildContext): string {
  const parsed = def.params.parse(params) as unknown;
  // A meta build has the structure and shapes without the weights' memory (blocks.ts MetaBuildContext).
  try {
    return fragmentSignature(def.build!(parsed, { ...ctx, meta: true } as BuildContext));
  } catch {
    return fragmentSignature(def.build!(parsed, ctx));
  }
}

/**
 * Replaces each 'auto' param by the number it resolves to in this graph. The value is found among the widths that
 * reach the node (its resolved input and downstream shapes) and accepted only when the pinned node builds exactly
 * the same fragment (same weights, same port shapes). Params that match no width stay 'auto' and are reported.
 */
export function pinAutoParams(
  def: NodeTypeDef,
  params: Record<string, unknown>,
  ctx: BuildContext,
): { params: Record<string, unknown>; pinned: Record<string, number>; unresolved: string[] } {
  const autos = Object.keys(params).filter((k) => params[k] === 'auto');
  if (autos.length === 0 || !def.build) return { params, pinned: {}, unresolved: [] };
  const widths = new Set<number>();
  for (const shape of Object.values(ctx.inputShapes)) {
    const last = shape[shape.length - 1];
    if (typeof last === 'number') widths.add(last);
  }
  const candidates = [...widths];
  const target = buildSignature(def, params, ctx);
  const combos = candidates.length ** autos.length;
  for (let c = 0; c < Math.min(combos, 512); c++) {
    const assignment: Record<string, number> = {};
    let rest = c;
    for (const k of autos) {
      assignment[k] = candidates[rest % candidates.length];
      rest = Math.floor(rest / candidates.length);
    }
    const trial = { ...params, ...assignment };
    let sig: string;
    try {
      sig = buildSignature(def, trial, ctx);
    } catch {
      continue;
    }
    if (sig === target) return { params: trial, pinned: assignment, unresolved: [] };
  }
  return { params, pinned: {}, unresolved: autos };
}

// ---------------------------------------------------------------------------------------------------------------
// The bundle

/** JSON-safe copy of zod-parsed params (drops undefined optionals). */
function plainParams(params: unknown): Record<string, unknown> {
  return JSON.parse(JSON.stringify(params ?? {})) as Record<string, unknown>;
}

function weightsOf(fragment: OnnxFragment, nodeId: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const name of fragment.weights) {
    const t = fragment.graph.initializers.get(name);
    if (!t) throw new ExportError(`node '${nodeId}': weight '${name}' is not an initializer of its fragment`);
    out.set(name, t);
  }
  return out;
}

function initializerBytes(fragment: OnnxFragment): number {
  let n = 0;
  for (const t of fragment.graph.initializers.values()) n += Array.isArray(t.data) ? 0 : t.data.byteLength;
  return n;
}

export async function exportBundle(doc: GraphDocument, opts: BundleOptions): Promise<ExportResult> {
  const diagnostics = validateDocument(doc);
  if (hasErrors(diagnostics)) {
    const first = diagnostics.find((d) => d.severity === 'error')!;
    throw new ExportError(`the graph is not valid${first.nodeId ? ` (node '${first.nodeId}')` : ''}: ${first.message}`);
  }
  const dir = resolve(opts.outDir);
  prepareExportDir(dir);
  const executor = opts.executor ?? new Executor();
  const files: ExportedFile[] = [];
  const notes: string[] = [];
  const add = (f: ExportedFile) => {
    files.push(f);
    opts.onProgress?.({ file: f.path });
  };
  const tokenizers = new Map<string, string>();
  try {
    const plan = new RunPlan(doc, executor.catalog, { baseDir: opts.baseDir, targets: doc.nodes.map((n) => n.id) });
    const fragments = new Map<string, OnnxFragment>();
    const fragmentOf = async (id: string) => {
      let f = fragments.get(id);
      if (!f) fragments.set(id, (f = await executor.fragmentOf(doc, opts.baseDir, id)));
      return f;
    };
    const nodes: DocNode[] = [];
    for (const node of doc.nodes) {
      const def = plan.def(node.id);
      let params = plainParams(plan.params(node.id));
      let weights: DocNode['weights'];
      if (def.build) {
        const fragment = await fragmentOf(node.id);
        const ctx: BuildContext = { nodeId: node.id, seed: nodeSeed(doc.seed ?? 0, plan.weightOwner(node.id)), inputShapes: plan.shapes(node.id).inputs };
        const pin = pinAutoParams(def, params, ctx);
        params = pin.params;
        if (pin.unresolved.length) notes.push(`node '${node.id}': ${pin.unresolved.join(', ')} left 'auto' (no neighbour width reproduces the built node)`);
        // Per-node ONNX (weights included) for Netron and other runtimes.
        const onnxRel = `onnx/${node.id}.onnx`;
        const external = initializerBytes(fragment) > EXTERNAL_DATA_BYTES;
        saveModel(join(dir, onnxRel), { irVersion: 8, producerName: 'vlm-composer', producerVersion: composerVersion().version, opsets: { '': fragment.opset }, graph: fragment.graph, metadata: { 'composer.node': node.id, 'composer.type': node.type } }, external ? { externalDataName: `${node.id}.onnx.data`, externalThreshold: 1024 } : {});
        add(describeFile(dir, onnxRel));
        if (external && existsSync(join(dir, `onnx/${node.id}.onnx.data`))) add(describeFile(dir, `onnx/${node.id}.onnx.data`));
        // Weights: the node's own file, unless they all live in its owner's (a tied word embedding).
        const owner = plan.weightOwner(node.id);
        let shared = false;
        if (owner !== node.id) {
          const ownerFragment = await fragmentOf(owner);
          shared = fragment.weights.every((w) => ownerFragment.weights.includes(w));
        }
        if (!shared && fragment.weights.length) {
          const rel = `weights/${node.id}.safetensors`;
          const f = writeExportFile(dir, rel, serializeSafetensors(weightsOf(fragment, node.id), { 'composer.node': node.id, 'composer.type': node.type }));
          add(f);
          weights = { path: rel, sha256: f.sha256 };
        }
      }
      params = copyFileParams(node, def, params, { baseDir: opts.baseDir, dir, tokenizers, add });
      if (node.adapters.length) notes.push(`node '${node.id}': adapters are kept as configured (${node.adapters.map((a) => a.id).join(', ')})`);
      nodes.push({ id: node.id, type: node.type, typeVersion: node.typeVersion, params, frozen: node.frozen, adapters: node.adapters, ...(weights ? { weights } : {}) });
    }
    const pinned: GraphDocument = { ...doc, nodes };
    // The pinned document must still be a valid graph (guards against a pinning mistake shipping).
    const reparsed = graphDocumentFromJson(JSON.parse(JSON.stringify(pinned)), BUNDLE_GRAPH_FILE);
    const problems = validateDocument(reparsed).filter((d) => d.severity === 'error');
    if (problems.length) throw new ExportError(`the pinned graph is not valid: ${problems[0].message}`);
    add(writeExportFile(dir, BUNDLE_GRAPH_FILE, `${JSON.stringify(pinned, null, 2)}\n`));
    writeManifest(dir, { kind: 'bundle', graph: doc.name, entry: { graph: BUNDLE_GRAPH_FILE }, files, notes });
    const stray = listFiles(dir).filter((f) => f !== 'manifest.json' && !files.some((x) => x.path === f));
    if (stray.length) notes.push(`files not written by this export were left in the folder: ${stray.join(', ')}`);
    return { dir, entry: BUNDLE_GRAPH_FILE, files, notes };
  } finally {
    if (!opts.executor) await executor.dispose();
  }
}

interface CopyContext {
  baseDir: string;
  dir: string;
  /** Source tokenizer file → its name in the bundle. */
  tokenizers: Map<string, string>;
  add: (f: ExportedFile) => void;
}

/** Copies the files a node's params point to into the bundle and points the params at the copies. */
function copyFileParams(node: DocNode, def: NodeTypeDef, params: Record<string, unknown>, c: CopyContext): Record<string, unknown> {
  const out = { ...params };
  const from = (p: string) => (isAbsolute(p) ? p : resolve(c.baseDir, p));
  if (typeof out.tokenizer === 'string') {
    const source = out.tokenizer === 'builtin' ? BUILTIN_TOKENIZER_PATH : from(out.tokenizer);
    let name = c.tokenizers.get(source);
    if (!name) {
      name = c.tokenizers.size === 0 ? 'tokenizer.json' : `tokenizer-${node.id}.json`;
      let bytes: Buffer;
      try {
        bytes = readFileSync(source);
      } catch (e) {
        throw new ExportError(`node '${node.id}': cannot read tokenizer '${String(out.tokenizer)}': ${(e as Error).message}`);
      }
      c.add(writeExportFile(c.dir, name, bytes));
      c.tokenizers.set(source, name);
    }
    out.tokenizer = name;
  }
  const isInput = (def.info.family === 'io' && !def.info.type.endsWith('_output')) || def.info.family === 'imported';
  if (isInput && typeof out.path === 'string' && out.path) {
    const source = from(out.path);
    const rel = `files/${node.id}/${basename(source)}`;
    if (def.info.family === 'imported') {
      // Re-saved rather than copied, so external data files come along (inside the bundle).
      const model = loadModel(source);
      saveModel(join(c.dir, rel), model, { externalDataName: `${basename(source)}.data`, externalThreshold: 1024 });
      c.add(describeFile(c.dir, rel));
      if (existsSync(join(c.dir, `${rel}.data`))) c.add(describeFile(c.dir, `${rel}.data`));
    } else if (existsSync(source) && statSync(source).isDirectory()) {
      cpSync(source, join(c.dir, rel), { recursive: true });
      for (const f of listFiles(join(c.dir, rel))) c.add(describeFile(c.dir, `${rel}/${f}`));
    } else {
      let bytes: Buffer;
      try {
        bytes = readFileSync(source);
      } catch (e) {
        throw new ExportError(`node '${node.id}': cannot read its file '${out.path}': ${(e as Error).message}`);
      }
      c.add(writeExportFile(c.dir, rel, bytes));
    }
    out.path = rel;
  }
  return out;
}
