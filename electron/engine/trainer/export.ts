// The `--out` folder: `graph.json` (the trained graph), `weights/<node>.safetensors` (every weight of each node
// that trained, trained values included; adapter weights as `adapters/<name>`), and `checkpoints/`. Paths in the
// graph are relative to the folder, so it can be moved, run (`vlmc run DIR`) and inspected as it is.

import { readFileSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { writeFileAtomic } from '../../onnx/atomic.js';
import type { Tensor } from '../../onnx/ir.js';
import { serializeSafetensors } from '../../onnx/safetensors.js';
import { ADAPTER_WEIGHT_PREFIX } from '../executor.js';
import type { GraphDocument } from '../document.js';
import { hashBytes } from '../keys.js';
import type { BuiltTraining } from './model.js';
import { TrainError } from './plan.js';

export interface WriteTrainedGraphOptions {
  out: string;
  /** The document as the user gave it. */
  graph: GraphDocument;
  /** The training copy (recipe freezing and added adapters). */
  doc: GraphDocument;
  baseDir: string;
  built: BuiltTraining;
  params: Map<string, Tensor>;
}

export const OUT_GRAPH = 'graph.json';
export const OUT_WEIGHTS = 'weights';

/** Params naming files (a tokenizer.json, an input or imported model path) are rewritten relative to the new folder. */
function rebaseFileParams(params: Record<string, unknown>, fromDir: string, toDir: string): void {
  for (const key of ['tokenizer', 'path']) {
    const v = params[key];
    if (typeof v !== 'string' || v === '' || v === 'builtin' || isAbsolute(v)) continue;
    params[key] = relative(toDir, resolve(fromDir, v));
  }
}

export async function writeTrainedGraph(o: WriteTrainedGraphOptions): Promise<string> {
  const out = resolve(o.out);
  const result: GraphDocument = structuredClone(o.graph);
  const constants = o.built.step.model.graph.initializers;
  for (const node of result.nodes) {
    rebaseFileParams(node.params, o.baseDir, out);
    const trainedDoc = o.doc.nodes.find((n) => n.id === node.id);
    // Adapters the run added stay on the node (their weights are in its file).
    if (trainedDoc) node.adapters = structuredClone(trainedDoc.adapters);
    const written = o.built.nodeWeights.get(node.id);
    if (written) {
      const tensors = new Map<string, Tensor>();
      for (const fused of written.fused) {
        const weight = fused.slice(fused.indexOf('/') + 1);
        const value = o.params.get(fused) ?? constants.get(fused);
        if (!value) throw new TrainError(`node '${node.id}': no value for weight '${weight}'`);
        tensors.set(written.adapters.has(weight) ? `${ADAPTER_WEIGHT_PREFIX}${weight}` : weight, value);
      }
      const rel = `${OUT_WEIGHTS}/${node.id}.safetensors`;
      const bytes = serializeSafetensors(tensors, { 'composer.node': node.id, 'composer.type': node.type });
      writeFileAtomic(join(out, rel), bytes);
      node.weights = { path: rel, sha256: hashBytes(bytes) };
    } else if (node.weights) {
      // Untouched weights stay where they are; the path becomes relative to the new folder.
      const abs = isAbsolute(node.weights.path) ? node.weights.path : resolve(o.baseDir, node.weights.path);
      node.weights = node.weights.hf
        ? { path: relative(out, abs), hf: node.weights.hf }
        : { path: relative(out, abs), sha256: node.weights.sha256 ?? hashBytes(readFileSync(abs)) };
    }
  }
  writeFileAtomic(join(out, OUT_GRAPH), `${JSON.stringify(result, null, 2)}\n`);
  return join(out, OUT_GRAPH);
}
