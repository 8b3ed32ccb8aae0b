// The engine's door into Hugging Face folders: a node whose weights say `{path: <folder>, hf: {architecture, part}}`
// gets its tensors read from the folder's shards when it builds, renamed by the architecture file.

import type { HfWeightsRef } from '../../engine/document.js';
import type { Tensor } from '../../onnx/ir.js';
import { lazyTensor } from '../../onnx/lazy.js';
import { type HfModelFolder, ModelFolderError, openHfFolder } from './folder.js';
import { architectureById } from './architectures/index.js';

/** Opened folders by absolute path (headers only; cheap to keep). */
const openFolders = new Map<string, HfModelFolder>();

/** The folder, opened once; a fingerprint other than the import's means a shard was replaced. */
export function hfFolderFor(dir: string, ref: HfWeightsRef): HfModelFolder {
  let folder = openFolders.get(dir);
  if (!folder || folder.weights.fingerprint !== ref.fingerprint) {
    folder = openHfFolder(dir);
    openFolders.set(dir, folder);
  }
  if (folder.weights.fingerprint !== ref.fingerprint) {
    throw new ModelFolderError(
      `the weights in '${dir}' changed since the graph was imported (fingerprint ${folder.weights.fingerprint.slice(0, 12)}…, ` +
        `the graph expects ${ref.fingerprint.slice(0, 12)}…); import the folder again`,
    );
  }
  return folder;
}

/** Bytes of the folder's tensors read so far for a node, of all it reads (called after each tensor). */
export type WeightsProgress = (bytesRead: number, totalBytes: number) => void;

/**
 * The node's weights by our initializer names, as float32. Those whose shape the architecture file knows are
 * file-backed (onnx/lazy.ts): read from the shards when something reads their values (serialising the node's
 * session streams them one by one) and not kept afterwards, so a real-size model is never held beside
 * onnxruntime's copy. `onProgress` follows the first read of each tensor.
 */
export function loadHfNodeWeights(dir: string, ref: HfWeightsRef, params: Record<string, unknown>, onProgress?: WeightsProgress): Map<string, Tensor> {
  const folder = hfFolderFor(dir, ref);
  const part = architectureById(ref.architecture).parts[ref.part];
  if (!part) throw new ModelFolderError(`'${dir}': architecture '${ref.architecture}' has no part '${ref.part}'`);
  const weights = [...part.weights(folder, params)];
  const stored = (from: string[]) => {
    let n = 0;
    for (const t of from) {
      const e = folder.weights.tensors.get(t);
      if (e) n += e.end - e.begin;
    }
    return n;
  };
  const total = weights.reduce((n, [, w]) => n + stored(w.from), 0);
  let read = 0;
  const out = new Map<string, Tensor>();
  for (const [name, w] of weights) {
    if (!w.dims) {
      out.set(name, w.read());
      read += stored(w.from);
      onProgress?.(read, total);
      continue;
    }
    let first = true;
    const counted = () => {
      if (!first) return;
      first = false;
      read += stored(w.from);
      onProgress?.(read, total);
    };
    const what = `'${dir}': weight '${name}' (${w.from.join(', ')})`;
    const stream = w.stream?.bind(w);
    out.set(
      name,
      lazyTensor('float32', w.dims, () => {
        const t = w.read();
        if (t.dtype !== 'float32') throw new ModelFolderError(`${what}: read as ${t.dtype}, not float32`);
        counted();
        return t.data;
      }, what, stream && ((write) => {
        stream(write);
        counted();
      })),
    );
  }
  return out;
}
