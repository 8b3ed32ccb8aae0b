// The engine's door into Hugging Face folders: a node whose weights say `{path: <folder>, hf: {architecture, part}}`
// gets its tensors read from the folder's shards when it builds, renamed by the architecture file.

import type { HfWeightsRef } from '../../engine/document.js';
import type { Tensor } from '../../onnx/ir.js';
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

/** The node's weights by our initializer names, read (as float32) from the folder. */
export function loadHfNodeWeights(dir: string, ref: HfWeightsRef, params: Record<string, unknown>): Map<string, Tensor> {
  const folder = hfFolderFor(dir, ref);
  const part = architectureById(ref.architecture).parts[ref.part];
  if (!part) throw new ModelFolderError(`'${dir}': architecture '${ref.architecture}' has no part '${ref.part}'`);
  const out = new Map<string, Tensor>();
  for (const [name, w] of part.weights(folder, params)) out.set(name, w.read());
  return out;
}
