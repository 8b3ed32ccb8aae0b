// Test support for the encoder-side import tests (CLIP, SigLIP, BERT, BLIP-2): row normalisation as transformers'
// CLIPModel / SiglipModel outputs are, and the Image node run on a fixture's PNG.

import { join } from 'node:path';
import type { GraphDocument } from '../../engine/document.js';
import type { Executor } from '../../engine/executor.js';
import type { Tensor } from '../../onnx/ir.js';
import { type Expected, TESTDATA, expectClose, fixtureDir } from './fixtures.test-support.js';

/** Rows of a [N, P] float tensor divided by their L2 norm (CLIPOutput / SiglipOutput's image_embeds, text_embeds). */
export function l2Rows(t: Tensor): Tensor {
  const [n, width] = t.dims;
  const src = t.data as Float32Array;
  const out = new Float32Array(src.length);
  for (let r = 0; r < n; r++) {
    let ss = 0;
    for (let i = 0; i < width; i++) ss += src[r * width + i] ** 2;
    const norm = Math.sqrt(ss) || 1;
    for (let i = 0; i < width; i++) out[r * width + i] = src[r * width + i] / norm;
  }
  return { dtype: 'float32', dims: [...t.dims], data: out };
}

/** A node of an imported graph by id (an error naming it when absent). */
export function nodeOf(doc: GraphDocument, id: string): GraphDocument['nodes'][number] {
  const n = doc.nodes.find((x) => x.id === id);
  if (!n) throw new Error(`the imported graph has no node '${id}' (it has ${doc.nodes.map((x) => x.id).join(', ')})`);
  return n;
}

/** The graph's Image node run on `<case>.image.png`: our preprocessing of the picture the fixture processed. */
export async function pngPixelValues(executor: Executor, doc: GraphDocument, name: string, imageNode = 'image'): Promise<Tensor> {
  const res = await executor.run(doc, {
    baseDir: fixtureDir(name),
    targets: [imageNode],
    inputs: { [imageNode]: { path: join(TESTDATA, `${name}.image.png`) } },
  });
  return res.outputs[imageNode].pixel_values as Tensor;
}

/**
 * A zero-shot graph's run (nodes vit, text_encoder, classify) against a CLIP/SigLIP fixture: both towers' hidden
 * states and pooled outputs, the normalised embeddings (read from the given ports), logits and probabilities.
 * Returns the measured errors by output.
 */
export function expectZeroShotOutputs(
  outputs: Record<string, Record<string, unknown>>,
  expected: Expected,
  embeds: { image: string; text: string },
): Record<string, { maxAbs: number; rel: number }> {
  const vit = outputs.vit as Record<string, Tensor>;
  const text = outputs.text_encoder as Record<string, Tensor>;
  const classify = outputs.classify as Record<string, Tensor>;
  const close = (ours: Tensor, key: string) => expectClose(ours, expected.get(`output.${key}`), 1e-4, key);
  return {
    vision_last_hidden_state: close(vit.last_hidden_state, 'vision_model_output.last_hidden_state'),
    vision_pooler_output: close(vit.pooler_output, 'vision_model_output.pooler_output'),
    text_last_hidden_state: close(text.last_hidden_state, 'text_model_output.last_hidden_state'),
    text_pooler_output: close(text.pooler_output, 'text_model_output.pooler_output'),
    image_embeds: close(l2Rows(vit[embeds.image]), 'image_embeds'),
    text_embeds: close(l2Rows(text[embeds.text]), 'text_embeds'),
    logits_per_image: close(classify.logits, 'logits_per_image'),
    probs: close(classify.scores, 'probs'),
  };
}
