// PEFT export of a graph's adapters (typically a trained `--out` folder): for every node with adapters,
// `adapters/<node>/adapter_model.safetensors` + `adapter_config.json` as huggingface/peft writes them (one subfolder
// per adapter id when a node has several), and with `merge` the LoRA-merged base weights as
// `merged/<node>.safetensors` (the node's weight names, ready to replace its weights file).

import { join } from 'node:path';
import { serializeSafetensors } from '../onnx/safetensors.js';
import type { Tensor } from '../onnx/ir.js';
import { type Catalog, defaultCatalog } from '../nodes/catalog.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_MODEL_FILE, type PeftExportOptions as PeftFileOptions, savePeftAdapter } from '../nodes/adapters/peft-format.js';
import { applyAdapters } from '../nodes/adapters/index.js';
import { type LoraInfo, mergeLora } from '../nodes/adapters/lora.js';
import type { AdapterResult } from '../nodes/adapters/common.js';
import type { GraphDocument } from '../engine/document.js';
import { ADAPTER_WEIGHT_PREFIX, Executor, RunPlan } from '../engine/executor.js';
import { nodeSeed } from '../engine/keys.js';
import type { ExportProgress, ExportResult } from './bundle.js';
import { ExportError, type ExportedFile, describeFile, writeExportFile } from './manifest.js';

export interface PeftExportOptions {
  baseDir: string;
  outDir: string;
  /** Also write the LoRA-merged base weights of each node (`merged/<node>.safetensors`). */
  merge?: boolean;
  executor?: Executor;
  catalog?: Catalog;
  onProgress?: (p: ExportProgress) => void;
  /** PEFT options per adapted node (the HF export names each adapted layer as its exported state dict does). */
  peftOptions?: (nodeId: string) => PeftFileOptions;
}

export async function exportPeftAdapters(doc: GraphDocument, o: PeftExportOptions): Promise<ExportResult> {
  const adapted = doc.nodes.filter((n) => n.adapters.length > 0);
  if (adapted.length === 0) throw new ExportError(`graph '${doc.name}' has no node with adapters: there is nothing to export in PEFT format`);
  const catalog = o.catalog ?? defaultCatalog;
  const executor = o.executor ?? new Executor({ catalog });
  const files: ExportedFile[] = [];
  const notes: string[] = [];
  try {
    for (const node of adapted) {
      const { base, applied } = await adaptedFragment(executor, catalog, doc, o.baseDir, node.id);
      if (applied.storedWeights === 0) notes.push(`node '${node.id}': no trained adapter weights in its weights file; exported the initial adapter`);
      for (const { id, method, result } of applied.results) {
        const rel = applied.results.length === 1 ? `adapters/${node.id}` : `adapters/${node.id}/${id}`;
        await savePeftAdapter(join(o.outDir, rel), method, result, o.peftOptions?.(node.id));
        for (const f of [ADAPTER_MODEL_FILE, ADAPTER_CONFIG_FILE]) {
          files.push(describeFile(o.outDir, `${rel}/${f}`));
          o.onProgress?.({ file: `${rel}/${f}` });
        }
      }
      if (o.merge) {
        const tensors = mergedWeights(node.id, base, applied.results);
        const rel = `merged/${node.id}.safetensors`;
        files.push(writeExportFile(o.outDir, rel, serializeSafetensors(tensors, { 'composer.node': node.id, 'composer.type': node.type, 'composer.merged': 'lora' })));
        o.onProgress?.({ file: rel });
      }
    }
  } finally {
    if (!o.executor) await executor.dispose();
  }
  return { dir: o.outDir, entry: files[0].path, files, notes };
}

type AppliedAdapters = ReturnType<typeof applyAdapters>;

/** A node's base fragment (its own weights, adapters removed) and its adapters applied with their stored weights. */
async function adaptedFragment(executor: Executor, catalog: Catalog, doc: GraphDocument, baseDir: string, nodeId: string) {
  const bare: GraphDocument = { ...doc, nodes: doc.nodes.map((n) => (n.id === nodeId ? { ...n, adapters: [] } : n)) };
  const base = await executor.fragmentOf(bare, baseDir, nodeId);
  const node = doc.nodes.find((n) => n.id === nodeId)!;
  const plan = new RunPlan(doc, catalog, { baseDir, targets: [nodeId] });
  const owner = plan.weightOwner(nodeId);
  const loaded = plan.loadWeights(owner, nodeId);
  const stored = new Map<string, Tensor>();
  for (const [k, t] of loaded ?? []) if (k.startsWith(ADAPTER_WEIGHT_PREFIX)) stored.set(k.slice(ADAPTER_WEIGHT_PREFIX.length), t);
  const applied = applyAdapters(base, node.adapters, nodeSeed(doc.seed ?? 0, owner), { what: `node '${nodeId}'`, weights: stored });
  return { base, applied: { ...applied, storedWeights: stored.size } };
}

/** The base weights with exactly one LoRA adapter folded in (an error naming the node otherwise). */
function mergedWeights(nodeId: string, base: { weights: string[] }, results: AppliedAdapters['results']): Map<string, Tensor> {
  const lora = results.filter((r) => r.method === 'lora');
  if (lora.length !== 1 || results.length !== 1) {
    const methods = results.map((r) => r.method).join(', ');
    throw new ExportError(`node '${nodeId}': --merge folds exactly one LoRA adapter into the base weights; the node has ${methods}`);
  }
  const merged = mergeLora(lora[0].result as AdapterResult<LoraInfo>);
  const tensors = new Map<string, Tensor>();
  for (const w of base.weights) {
    const t = merged.graph.initializers.get(w);
    if (!t) throw new ExportError(`node '${nodeId}': merged model has no weight '${w}'`);
    tensors.set(w, t);
  }
  return tensors;
}

/**
 * A node's weights as an export writes them: its built fragment's, or with adapters the base weights (adapters
 * removed) — LoRA-merged when `merge`.
 */
export async function nodeExportWeights(
  executor: Executor,
  doc: GraphDocument,
  baseDir: string,
  nodeId: string,
  o: { merge?: boolean; catalog?: Catalog } = {},
): Promise<Map<string, Tensor>> {
  const node = doc.nodes.find((n) => n.id === nodeId);
  if (!node) throw new ExportError(`the graph has no node '${nodeId}'`);
  if (node.adapters.length === 0 || !o.merge) {
    const bare: GraphDocument = node.adapters.length ? { ...doc, nodes: doc.nodes.map((n) => (n.id === nodeId ? { ...n, adapters: [] } : n)) } : doc;
    const f = await executor.fragmentOf(bare, baseDir, nodeId);
    const out = new Map<string, Tensor>();
    for (const w of f.weights) {
      const t = f.graph.initializers.get(w);
      if (!t) throw new ExportError(`node '${nodeId}': weight '${w}' is not an initializer of its fragment`);
      out.set(w, t);
    }
    return out;
  }
  const { base, applied } = await adaptedFragment(executor, o.catalog ?? defaultCatalog, doc, baseDir, nodeId);
  return mergedWeights(nodeId, base, applied.results);
}
