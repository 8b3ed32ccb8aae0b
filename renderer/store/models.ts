// Pure helpers of the Models panel: the memory a folder needs once loaded, dtype labels, how far the current run
// has read a folder's weights, and which dropped files make a model folder. No React, no host calls.

import type { ComposerNode } from './model.js';
import type { RunState } from './jobs.js';

/** What `progress` events call reading a node's weights from its folder (electron/engine/executor.ts). */
export const LOADING_WEIGHTS = 'loading weights';

/**
 * Bytes a folder needs in memory once its nodes are built: every parameter computed in float32 (4 bytes, so BF16
 * and F16 weights double), and onnxruntime keeps its own copy of each initializer — about 2 × the float32 bytes.
 */
export function memoryEstimate(parameters: number): number {
  return parameters * 4 * 2;
}

export const MEMORY_FORMULA =
  'parameters × 4 bytes (computed in float32: BF16/F16 weights double in size) × 2 (onnxruntime keeps its own copy of the initializers)';

const DTYPE_LABEL: Record<string, string> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16', float64: 'F64' };

export function dtypeLabel(dtypes: readonly string[]): string {
  return dtypes.length ? dtypes.map((d) => DTYPE_LABEL[d] ?? d.toUpperCase()).join(' + ') : '—';
}

/** Bytes read so far of the folder's weights by the current run's nodes, while any of them is still reading. */
export function folderLoading(nodes: readonly ComposerNode[], run: RunState, dir: string): { done: number; total: number } | null {
  let done = 0;
  let total = 0;
  let reading = false;
  for (const n of nodes) {
    if (n.data.weights?.path !== dir) continue;
    const st = run.nodes[n.id];
    if (!st || st.unit !== LOADING_WEIGHTS || st.total === undefined) continue;
    done += st.done ?? 0;
    total += st.total;
    if (st.status === 'running' && (st.done ?? 0) < st.total) reading = true;
  }
  return reading ? { done, total } : null;
}

/** Weight formats a folder may also carry that Composer does not read: left out of an upload when safetensors are there. */
const OTHER_WEIGHTS = /\.(bin|pt|pth|ckpt|h5|msgpack|onnx|onnx_data|gguf|tflite|ot)$/i;

/**
 * The files of a dropped folder worth uploading: no hidden entries (`.git`, `.cache`), and no other weight formats
 * beside safetensors weights.
 */
export function uploadable<T extends { path: string }>(files: readonly T[]): T[] {
  const visible = files.filter((f) => !f.path.split('/').some((part) => part.startsWith('.')));
  const safetensors = visible.some((f) => f.path.endsWith('.safetensors'));
  return safetensors ? visible.filter((f) => !OTHER_WEIGHTS.test(f.path)) : visible;
}
