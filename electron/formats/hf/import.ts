// `vlmc import DIR` and the app's Import model folder…: a Hugging Face folder becomes a runnable graph of our node
// types whose nodes reference the folder's weights where they lie (no copy).

import { isAbsolute, relative, resolve } from 'node:path';
import { type GraphDocument, graphDocumentFromJson } from '../../engine/document.js';
import { validateDocument } from '../../engine/validate.js';
import { importOnnxFolder } from '../onnx-folder/import.js';
import { isOnnxFolder } from '../onnx-folder/layout.js';
import { type HfModelFolder, openHfFolder } from './folder.js';
import { architectureFor } from './architectures/index.js';
import { ArchitectureError, configClass, folderDisplayName } from './architectures/mapping.js';
import type { HfArchitecture, NodeWeightMap } from './architectures/types.js';

/** Checkpoint tensors no node needs and that are safe to skip (persistent buffers of older transformers). */
const SKIPPABLE_BUFFERS: RegExp[] = [
  /(^|\.)position_ids$/,
  /(^|\.)num_batches_tracked$/,
  /(^|\.)attn\.(masked_)?bias$/, // GPT-2's causal-mask buffers
  /(^|\.)rotary_emb\.inv_freq$/,
];

export interface ImportedModelSummary {
  dir: string;
  name: string;
  architecture: string;
  class: string;
  parameters: number;
  dtypes: string[];
  weightBytes: number;
  files: Array<{ name: string; bytes: number }>;
}

export interface ImportResult {
  doc: GraphDocument;
  summary: ImportedModelSummary;
  notes: string[];
  /** ONNX folders: the precision imported, those offered and the graph file of each role. */
  onnx?: { precision: string; precisions: string[]; graphs: Record<string, string> };
}

export interface ImportOptions {
  /** Folder the graph file will be written to: node weight paths are made relative to it. Default: absolute paths. */
  graphDir?: string;
  /** ONNX folders with several precisions (model.onnx, model_q4.onnx, …): which one; default fp32. */
  precision?: string;
}

/** Every node's weight map (validated by name and shape), and the folder tensors that no node uses. */
export function mapFolderWeights(folder: HfModelFolder, arch: HfArchitecture, nodes: Array<{ id: string; part?: string; params: Record<string, unknown> }>) {
  const used = new Set<string>();
  const maps = new Map<string, NodeWeightMap>();
  for (const n of nodes) {
    if (!n.part) continue;
    const part = arch.parts[n.part];
    if (!part) throw new ArchitectureError(`${arch.id}: node '${n.id}' names unknown part '${n.part}'`);
    const map = part.weights(folder, n.params);
    for (const w of map.values()) for (const hf of w.from) used.add(hf);
    for (const hf of part.duplicates?.(folder, n.params) ?? []) used.add(hf);
    maps.set(n.id, map);
  }
  const unused = [...folder.weights.tensors.keys()].filter((t) => !used.has(t));
  return { maps, unused };
}

export function importHfFolder(dir: string, opts: ImportOptions = {}): ImportResult {
  const abs = resolve(dir);
  // A Transformers.js / Optimum export (onnx/*.onnx, no safetensors) imports as imported ONNX nodes.
  if (isOnnxFolder(abs)) return importOnnxFolder(abs, opts);
  if (opts.precision !== undefined) throw new ArchitectureError(`--precision ${opts.precision}: only ONNX model folders offer precisions; ${abs} is a safetensors folder`);
  const folder = openHfFolder(abs);
  const arch = architectureFor(folder.config);
  const folderRef = opts.graphDir ? relative(resolve(opts.graphDir), abs) || '.' : abs;
  const g = arch.toGraph(folder, { folderRef });
  const notes = [...g.notes];

  const { unused } = mapFolderWeights(folder, arch, g.nodes);
  const skipped = unused.filter((t) => SKIPPABLE_BUFFERS.some((re) => re.test(t)));
  const unexpected = unused.filter((t) => !skipped.includes(t));
  if (unexpected.length) {
    const where = (t: string) => `'${t}' (${folder.weights.tensors.get(t)?.file ?? '?'})`;
    throw new ArchitectureError(
      `${unexpected.length} tensor(s) in the folder match no weight of the imported ${configClass(folder.config) ?? arch.id}: ` +
        `${unexpected.slice(0, 6).map(where).join(', ')}${unexpected.length > 6 ? ', …' : ''} — the config does not describe these weights`,
    );
  }
  if (skipped.length) notes.push(`skipped ${skipped.length} buffer(s) the checkpoint carries and the graph recomputes (e.g. '${skipped[0]}')`);

  const fingerprint = folder.weights.fingerprint;
  const raw = {
    format: 'composer.graph',
    version: 1,
    name: g.name,
    seed: 0,
    nodes: g.nodes.map((n) => ({
      id: n.id,
      type: n.type,
      typeVersion: 1,
      params: n.params,
      frozen: n.frozen ?? false,
      adapters: [],
      ...(n.part ? { weights: { path: folderRef, hf: { architecture: arch.id, part: n.part, fingerprint } } } : {}),
    })),
    edges: g.edges,
    ui: {
      positions: Object.fromEntries(g.nodes.map((n) => [n.id, n.position])),
      groups: (g.groups ?? []).map((gr) => ({ id: gr.id, title: gr.title, nodeIds: gr.nodeIds })),
    },
  };
  const doc = graphDocumentFromJson(raw, `${folderDisplayName(abs)} (imported)`);
  const problems = validateDocument(doc).filter((d) => d.severity === 'error');
  if (problems.length) {
    throw new ArchitectureError(`the graph imported from ${arch.id} is not valid: ${problems.map((p) => p.message).join('; ')}`);
  }
  return {
    doc,
    notes,
    summary: {
      dir: abs,
      name: folderDisplayName(abs),
      architecture: arch.id,
      class: configClass(folder.config) ?? String(folder.config.model_type),
      parameters: folder.weights.parameterCount,
      dtypes: folder.weights.dtypes,
      weightBytes: folder.weights.totalBytes,
      files: folder.files,
    },
  };
}

/** Resolves a node's folder path against the graph's folder. */
export function resolveFolderRef(path: string, baseDir: string): string {
  return isAbsolute(path) ? path : resolve(baseDir, path);
}
