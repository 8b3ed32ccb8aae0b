// What the encoder-side architectures (CLIP, SigLIP, BERT, BLIP-2 / InstructBLIP, and LLaVA's vision tower) share:
// transformers' activation names → ours, the Image node's preprocessing from preprocessor_config.json, a scalar
// parameter read at import (logit_scale), and the zero-shot classification nodes.

import { join } from 'node:path';
import type { DocEdge, DocNode } from '../../../engine/document.js';
import type { Activation } from '../../../nodes/blocks.js';
import { CLIP_MEAN, CLIP_STD } from '../../../engine/image.js';
import type { ResampleName } from '../../../nodes/io.js';
import { type PreprocessorConfig, resolveImageSize } from '../configs.js';
import type { HfModelFolder } from '../folder.js';
import { ArchitectureError, type ConfigReader, folderDisplayName } from './mapping.js';
import type { Tensor } from '../../../onnx/ir.js';
import type { HfExportSource, ImportedGraph, ImportedNode } from './types.js';

/** transformers' ACT2FN names Composer computes, onto our activations (the tanh GELUs are one formula). */
const ACTIVATIONS_OF: Record<string, Activation> = {
  gelu: 'gelu',
  quick_gelu: 'quick_gelu',
  gelu_new: 'gelu_new',
  gelu_pytorch_tanh: 'gelu_new',
  gelu_fast: 'gelu_new',
  relu: 'relu',
  silu: 'silu',
  swish: 'silu',
  tanh: 'tanh',
};

/** `hidden_act` (or another activation field) as our activation; other names are refused naming the field. */
export function hfActivation(c: ConfigReader, key: string, fallback: string): Activation {
  const name = c.oneOf(key, Object.keys(ACTIVATIONS_OF), fallback);
  return ACTIVATIONS_OF[name] as Activation;
}

/** num_attention_heads (the config class's default when left out), refused by field name unless it divides hidden_size. */
export function headsDividing(c: ConfigReader, hidden: number, fallback: number, key = 'num_attention_heads'): number {
  const heads = c.int(key, fallback);
  if (hidden % heads !== 0) throw c.fail(key, `= ${heads}${c.has(key) ? '' : ' (the default)'}: must divide hidden_size ${hidden}`);
  return heads;
}

/** A vision config class's defaults (transformers applies them to fields the folder's config leaves out). */
export interface VitDefaults {
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  imageSize: number;
  patchSize: number;
  act: string;
  eps: number;
  /** 'multiple': image_size must be a multiple of patch_size (CLIP, BLIP-2); 'floor': extra pixels are dropped (SigLIP). */
  patches: 'multiple' | 'floor';
}

/** The ViT fields every vision config shares, as our encoders' params (preset 'tiny' overridden by every dim). */
export function vitParams(v: ConfigReader, d: VitDefaults): { params: Record<string, unknown>; hiddenSize: number; imageSize: number; patchSize: number } {
  v.refuse('num_channels', (x) => x === 3, 'Composer encodes RGB images (3 channels)');
  const hidden = v.int('hidden_size', d.hidden);
  const imageSize = v.int('image_size', d.imageSize);
  const patchSize = v.int('patch_size', d.patchSize);
  if (d.patches === 'multiple') v.refuse('image_size', () => imageSize % patchSize === 0, `must be a multiple of patch_size ${patchSize}`);
  else v.refuse('patch_size', () => patchSize <= imageSize, `must not exceed image_size ${imageSize}`);
  return {
    params: {
      preset: 'tiny',
      image_size: imageSize,
      patch_size: patchSize,
      hidden_size: hidden,
      num_layers: v.int('num_hidden_layers', d.layers),
      num_heads: headsDividing(v, hidden, d.heads),
      intermediate_size: v.int('intermediate_size', d.intermediate),
      act: hfActivation(v, 'hidden_act', d.act),
      eps: v.num('layer_norm_eps', d.eps, { positive: true }),
    },
    hiddenSize: hidden,
    imageSize,
    patchSize,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// preprocessor_config.json → io.image

/** How the model's image processor works when the folder has no preprocessor_config.json (or leaves a field out). */
export interface ImageProcessorDefaults {
  /** CLIPImageProcessor: shortest edge + centre crop; Siglip/BlipImageProcessor: resize to size × size. */
  kind: 'shortest-edge-crop' | 'fixed-size';
  mean: readonly number[];
  std: readonly number[];
}

export const CLIP_PROCESSOR: ImageProcessorDefaults = { kind: 'shortest-edge-crop', mean: CLIP_MEAN, std: CLIP_STD };
export const SIGLIP_PROCESSOR: ImageProcessorDefaults = { kind: 'fixed-size', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
export const BLIP_PROCESSOR: ImageProcessorDefaults = { kind: 'fixed-size', mean: CLIP_MEAN, std: CLIP_STD };

function preprocessorError(field: string, why: string): ArchitectureError {
  return new ArchitectureError(`preprocessor_config.json: ${field} ${why}`);
}

/**
 * io.image params that preprocess as the folder's image processor does (the slow, PIL-based one transformers uses
 * by default): resize by shortest edge then centre crop, or straight to size × size, with Pillow's filter, rescale
 * and mean/std. The encoder needs `imageSize` square pixels; a processor that would give it anything else is refused
 * naming the field.
 */
export function imageInputParams(
  folder: Pick<HfModelFolder, 'preprocessorConfig'>,
  imageSize: number,
  defaults: ImageProcessorDefaults = CLIP_PROCESSOR,
): Record<string, unknown> {
  const pc: Partial<PreprocessorConfig> = folder.preprocessorConfig ?? {};
  if (pc.do_resize === false) throw preprocessorError('do_resize', `= false: Composer resizes every image to the encoder's ${imageSize} px`);
  const resample: ResampleName = pc.resample ?? 'bicubic';
  const common = {
    size: imageSize,
    resample,
    rescale_factor: pc.do_rescale === false ? 1 : (pc.rescale_factor ?? 1 / 255),
    mean: pc.do_normalize === false ? [0, 0, 0] : [...(pc.image_mean ?? defaults.mean)],
    std: pc.do_normalize === false ? [1, 1, 1] : [...(pc.image_std ?? defaults.std)],
  };
  const rawSize = pc.size ?? (defaults.kind === 'shortest-edge-crop' ? { shortest_edge: imageSize } : { height: imageSize, width: imageSize });
  const size = resolveImageSize(rawSize, { defaultToSquare: defaults.kind === 'fixed-size' });
  if (size.shortest_edge !== undefined) {
    if (size.longest_edge !== undefined) throw preprocessorError('size.longest_edge', 'is not supported (Composer resizes by the shortest edge alone)');
    const crop = resolveImageSize(pc.crop_size ?? imageSize, { defaultToSquare: true });
    const cropOn = pc.do_center_crop ?? defaults.kind === 'shortest-edge-crop';
    if (!cropOn) {
      throw preprocessorError('do_center_crop', `= false with size.shortest_edge: the picture would not be square, and the encoder takes ${imageSize}×${imageSize}`);
    }
    if (crop.height !== imageSize || crop.width !== imageSize) {
      throw preprocessorError('crop_size', `is ${crop.height ?? '?'}×${crop.width ?? '?'}, but the vision encoder takes ${imageSize}×${imageSize} (config.json image_size)`);
    }
    if (size.shortest_edge < imageSize) {
      throw preprocessorError('size.shortest_edge', `${size.shortest_edge} is smaller than crop_size ${imageSize}`);
    }
    return { ...common, resize: 'shortest-then-crop', shortest_edge: size.shortest_edge };
  }
  if (size.height !== undefined && size.width !== undefined) {
    if (size.height !== imageSize || size.width !== imageSize) {
      throw preprocessorError('size', `is ${size.height}×${size.width}, but the vision encoder takes ${imageSize}×${imageSize} (config.json image_size)`);
    }
    if (pc.do_center_crop === true) {
      const crop = resolveImageSize(pc.crop_size ?? imageSize, { defaultToSquare: true });
      if (crop.height !== imageSize || crop.width !== imageSize) {
        throw preprocessorError('crop_size', `${crop.height ?? '?'}×${crop.width ?? '?'} after a resize to ${imageSize}×${imageSize} is not supported`);
      }
    }
    return { ...common, resize: 'stretch' };
  }
  throw preprocessorError('size', `${JSON.stringify(pc.size)} is not supported (Composer takes {"shortest_edge"} or {"height", "width"})`);
}

// ---------------------------------------------------------------------------------------------------------------
// Scalars and the zero-shot nodes

/** A one-element tensor's value (CLIP's logit_scale), read at import; a tensor of another size is refused by name. */
export function scalarTensor(folder: HfModelFolder, name: string): number {
  const entry = folder.weights.tensors.get(name);
  if (!entry) throw new ArchitectureError(`the folder has no tensor '${name}' (files: ${folder.weights.files.join(', ')})`);
  if (entry.shape.reduce((n, d) => n * d, 1) !== 1) {
    throw new ArchitectureError(`tensor '${name}' in '${entry.file}' has shape [${entry.shape.join(',')}]; a single value is expected`);
  }
  const v = (folder.weights.readFloat32(name).data as Float32Array)[0];
  if (!Number.isFinite(v)) throw new ArchitectureError(`tensor '${name}' in '${entry.file}' is ${v}`);
  return v;
}

/** exp(logit_scale) as the zero-shot head's multiplier, within the head's range. */
export function logitScaleOf(folder: HfModelFolder, name = 'logit_scale'): number {
  const s = Math.exp(scalarTensor(folder, name));
  if (!(s > 0 && s <= 1000)) {
    throw new ArchitectureError(`tensor '${name}' = ${Math.log(s)} gives a logit scale exp(·) = ${s}; Composer's zero-shot head takes (0, 1000]`);
  }
  return s;
}

export interface ZeroShotOptions {
  folderRef: string;
  imageParams: Record<string, unknown>;
  vision: { type: string; params: Record<string, unknown>; port: string };
  /** `mask`: feed the labels' padding mask (CLIP's processor returns one; SigLIP's does not). */
  text: { type: string; params: Record<string, unknown>; port: string; mask: boolean };
  labels: { max_length: number; padding: 'longest' | 'max_length' };
  head: { logit_scale: number; logit_bias: number; activation: 'softmax' | 'sigmoid' };
}

/** The result node of a tower used on its own: a Tensor output named as transformers names that output. */
export function featuresNode(port: string, position: { x: number; y: number }): ImportedNode {
  return { id: 'features', type: 'io.tensor_output', params: { name: port }, position };
}

/** Candidate labels used until a prompt gives others (`vlmc run --prompt "a;b;c"` replaces them verbatim). */
export const PLACEHOLDER_LABELS = ['a photo of a cat', 'a photo of a dog'];

/** image → vision tower → head ← text tower ← labels ← prompt; the head's answer → Text output. */
function zeroShotNodes(folder: HfModelFolder, o: ZeroShotOptions): { nodes: ImportedNode[]; edges: DocEdge[] } {
  if (!folder.tokenizerJson) {
    const slow = folder.files.find((f) => /(^|\/)(spiece|sentencepiece[^/]*)\.model$/.test(f.name));
    throw new ArchitectureError(
      `the folder has no tokenizer.json (the text tower needs its tokenizer to read the labels)` +
        (slow ? `; it has only the SentencePiece model '${slow.name}', which Composer does not read (SigLIP's tokenizer has no tokenizer.json form in transformers)` : ''),
    );
  }
  const link = (from: string, fromPort: string, to: string, toPort: string): DocEdge => ({ from: { node: from, port: fromPort }, to: { node: to, port: toPort } });
  const nodes: ImportedNode[] = [
    { id: 'image', type: 'io.image', params: o.imageParams, position: { x: 0, y: 0 } },
    { id: 'vit', type: o.vision.type, params: o.vision.params, frozen: true, part: 'vision', position: { x: 280, y: 0 } },
    { id: 'prompt', type: 'io.text', params: { text: '' }, position: { x: 0, y: 320 } },
    {
      id: 'labels',
      type: 'text.labels',
      params: {
        labels: PLACEHOLDER_LABELS,
        tokenizer: join(o.folderRef, 'tokenizer.json'),
        max_length: o.labels.max_length,
        padding: o.labels.padding,
        append_eos: false,
      },
      position: { x: 280, y: 320 },
    },
    { id: 'text_encoder', type: o.text.type, params: o.text.params, frozen: true, part: 'text', position: { x: 560, y: 320 } },
    { id: 'classify', type: 'head.zero_shot', params: o.head, position: { x: 840, y: 160 } },
    { id: 'answer', type: 'io.text_output', params: {}, position: { x: 1120, y: 160 } },
  ];
  const edges: DocEdge[] = [
    link('image', 'pixel_values', 'vit', 'pixel_values'),
    link('prompt', 'text', 'labels', 'text'),
    link('labels', 'input_ids', 'text_encoder', 'input_ids'),
    ...(o.text.mask ? [link('labels', 'attention_mask', 'text_encoder', 'attention_mask')] : []),
    link('vit', o.vision.port, 'classify', 'image_embeds'),
    link('text_encoder', o.text.port, 'classify', 'text_embeds'),
    link('labels', 'labels', 'classify', 'labels'),
    link('classify', 'text', 'answer', 'text'),
  ];
  return { nodes, edges };
}

/** A CLIP-style dual encoder folder as a zero-shot classification graph, its towers grouped (frozen). */
export function zeroShotGraph(folder: HfModelFolder, o: ZeroShotOptions & { family: string; notes: string[] }): ImportedGraph {
  const { nodes, edges } = zeroShotNodes(folder, o);
  return {
    name: `${o.family} zero-shot classification (${folderDisplayName(folder.dir)})`,
    nodes,
    edges,
    groups: [
      { id: 'vision', title: `Vision tower (${o.family}, frozen)`, nodeIds: ['image', 'vit'] },
      { id: 'text', title: `Text tower (${o.family}, frozen)`, nodeIds: ['prompt', 'labels', 'text_encoder'] },
    ],
    notes: o.notes,
  };
}

/** A vision tower alone: image → encoder → a Tensor output of `port` (named as transformers names that output). */
export function visionTowerGraph(
  folder: HfModelFolder,
  o: { title: string; imageParams: Record<string, unknown>; vision: { type: string; params: Record<string, unknown> }; port: string; note: string },
): ImportedGraph {
  return {
    name: `${o.title} (${folderDisplayName(folder.dir)})`,
    nodes: [
      { id: 'image', type: 'io.image', params: o.imageParams, position: { x: 0, y: 0 } },
      { id: 'vit', type: o.vision.type, params: o.vision.params, frozen: true, part: 'vision', position: { x: 280, y: 0 } },
      featuresNode(o.port, { x: 560, y: 0 }),
    ],
    edges: [
      { from: { node: 'image', port: 'pixel_values' }, to: { node: 'vit', port: 'pixel_values' } },
      { from: { node: 'vit', port: o.port }, to: { node: 'features', port: 'tensor' } },
    ],
    groups: [{ id: 'vision', title: `${o.title} — imported from ${folderDisplayName(folder.dir)}`, nodeIds: ['image', 'vit'] }],
    notes: [`${o.note}the Tensor output shows its ${o.port}; connect vision_features to a projector to build a VLM, or save every output with 'vlmc run --save-outputs'`],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The export direction, shared by the dual encoders (CLIP, SigLIP): which tower nodes a graph has.

/** One encoder node of a type, or undefined when the graph has none; two of one type is not a tower graph. */
export function onlyNodeOf(src: HfExportSource, type: string): DocNode | undefined {
  const found = src.doc.nodes.filter((n) => n.type === type);
  if (found.length > 1) throw new ArchitectureError(`the graph has ${found.length} ${type} nodes (${found.map((n) => `'${n.id}'`).join(', ')}); a transformers model has one`);
  return found[0];
}

/** The towers a dual-encoder graph has, or undefined when it is some other model (it has a language model). */
export function towerNodes(src: HfExportSource, visionType: string, textType: string): { vision?: DocNode; text?: DocNode; head?: DocNode; image?: DocNode; labels?: DocNode } | undefined {
  if (src.doc.nodes.some((n) => n.type === 'llm.decoder' || n.type === 'projector.qformer')) return undefined;
  const vision = onlyNodeOf(src, visionType);
  const text = onlyNodeOf(src, textType);
  if (!vision && !text) return undefined;
  const byType = (type: string) => src.doc.nodes.find((n) => n.type === type);
  return { vision, text, head: byType('head.zero_shot'), image: byType('io.image'), labels: src.doc.nodes.find((n) => n.type === 'text.labels' || n.type === 'text.tokenize') };
}

/** A one-element float32 tensor for the export: CLIP's logit_scale is 0-d, SigLIP's logit_scale and logit_bias [1]. */
export function scalarOf(value: number, dims: [] | [1]): Tensor {
  return { dtype: 'float32', dims, data: Float32Array.of(value) };
}

/** Dims every ViT / text-tower node resolves (our param names), for the inverse mapping to config fields. */
interface TowerDims {
  hidden_size: number;
  intermediate_size: number;
  num_layers: number;
  num_heads: number;
  act: string;
  eps: number;
}

/** A vision tower's dims → the fields every transformers ViT config shares (the inverse of vitParams). */
export function vitConfig(modelType: string, d: TowerDims & { image_size: number; patch_size: number }, o: { act?: string; channels?: boolean } = {}): Record<string, unknown> {
  return {
    model_type: modelType,
    hidden_size: d.hidden_size,
    image_size: d.image_size,
    patch_size: d.patch_size,
    intermediate_size: d.intermediate_size,
    num_attention_heads: d.num_heads,
    num_hidden_layers: d.num_layers,
    ...(o.channels === false ? {} : { num_channels: 3 }),
    hidden_act: o.act ?? d.act,
    layer_norm_eps: d.eps,
  };
}

/** A text tower's dims → the fields CLIP's and SigLIP's text configs share. */
export function textTowerConfig(modelType: string, d: TowerDims & { vocab_size: number; max_positions: number }, act = d.act): Record<string, unknown> {
  return {
    model_type: modelType,
    vocab_size: d.vocab_size,
    hidden_size: d.hidden_size,
    intermediate_size: d.intermediate_size,
    num_hidden_layers: d.num_layers,
    num_attention_heads: d.num_heads,
    max_position_embeddings: d.max_positions,
    hidden_act: act,
    layer_norm_eps: d.eps,
  };
}
