// CLIPModel, CLIPVisionModel(WithProjection), CLIPTextModel(WithProjection) → encoder.clip_vit / encoder.clip_text.
// Our nodes name their weights exactly as transformers' state dict does, so the mapping is the identity:
//   vision_model.{embeddings.{class_embedding, patch_embedding, position_embedding}, pre_layrnorm,
//     encoder.layers.N.{layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2, mlp.{fc1,fc2}}, post_layernorm},
//   visual_projection (…WithProjection, CLIPModel), text_model.{embeddings.{token,position}_embedding,
//   encoder.layers.N.*, final_layer_norm}, text_projection, logit_scale (CLIPModel: the zero-shot head's exp(·)).
// Config semantics taken from transformers: sub-configs may leave out fields equal to the class defaults
// (save_pretrained writes a diff), so those defaults apply; text pooling is at argmax(input_ids) for legacy configs
// whose text eos_token_id is 2, else at the first eos_token_id.

import { join } from 'node:path';
import { clipTextDimsOf, clipVitDimsOf } from '../../../nodes/encoders.js';
import type { Tensor } from '../../../onnx/ir.js';
import type { HfModelFolder } from '../folder.js';
import { ArchitectureError, ConfigReader, configClass, folderDisplayName, renamedWeights } from './mapping.js';
import { CLIP_PROCESSOR, featuresNode, headsDividing, hfActivation, imageInputParams, logitScaleOf, scalarOf, textTowerConfig, towerNodes, visionTowerGraph, vitConfig, vitParams, zeroShotGraph } from './towers.js';
import type { HfArchitecture, HfExportPart, HfExportPlan, HfExportSource, HfPart, ImportedGraph, ImportedNode } from './types.js';

export { imageInputParams } from './towers.js';

/** A sub-config, with the legacy `<key>_dict` copy (old openai configs) taking precedence as transformers does. */
export function subConfig(c: ConfigReader, key: 'vision_config' | 'text_config'): ConfigReader {
  const merged = { ...c.nested(key, true).raw, ...c.nested(`${key}_dict`, true).raw };
  return new ConfigReader(merged, c.where, `${key}.`);
}

export interface VisionTower {
  /** encoder.clip_vit params (dims, activation, epsilon; projection on with the config's projection_dim). */
  params: Record<string, unknown>;
  hiddenSize: number;
  imageSize: number;
  patchSize: number;
}

/** encoder.clip_vit params from a CLIPVisionConfig (CLIPVisionConfig's defaults for fields left out). */
export function clipVisionTowerParams(v: ConfigReader, projectionDim?: number): VisionTower {
  const vit = vitParams(v, { hidden: 768, layers: 12, heads: 12, intermediate: 3072, imageSize: 224, patchSize: 32, act: 'quick_gelu', eps: 1e-5, patches: 'multiple' });
  return { ...vit, params: { ...vit.params, projection_dim: projectionDim ?? v.int('projection_dim', 512), projection: true } };
}

/** encoder.clip_text params from a CLIPTextConfig, with transformers' pooling rule for its eos_token_id. */
export function clipTextTowerParams(t: ConfigReader, projectionDim?: number): { params: Record<string, unknown>; maxPositions: number; notes: string[] } {
  const hidden = t.int('hidden_size', 512);
  const eos = t.int('eos_token_id', 49407, { min: 0 });
  const maxPositions = t.int('max_position_embeddings', 77);
  const legacy = eos === 2;
  return {
    params: {
      preset: 'tiny',
      vocab_size: t.int('vocab_size', 49408),
      max_positions: maxPositions,
      hidden_size: hidden,
      num_layers: t.int('num_hidden_layers', 12),
      num_heads: headsDividing(t, hidden, 8),
      intermediate_size: t.int('intermediate_size', 2048),
      projection_dim: projectionDim ?? t.int('projection_dim', 512),
      act: hfActivation(t, 'hidden_act', 'quick_gelu'),
      eps: t.num('layer_norm_eps', 1e-5, { positive: true }),
      pooling: legacy ? 'argmax' : 'eos_id',
      eos_token_id: eos,
      projection: true,
    },
    maxPositions,
    notes: [
      legacy
        ? 'text pooling: text_config.eos_token_id is 2 (a legacy config), so the text tower pools at the largest token id, as transformers does'
        : `text pooling: at the first eos_token_id ${eos} of each label`,
    ],
  };
}

const visionPart: HfPart = {
  weights: (folder, params) => renamedWeights(folder, 'encoder.clip_vit', params, (ours) => ours, 'CLIP vision tower'),
};

const textPart: HfPart = {
  weights: (folder, params) => renamedWeights(folder, 'encoder.clip_text', params, (ours) => ours, 'CLIP text tower'),
  // CLIPModel's logit_scale is read at import into the zero-shot head's params.
  duplicates: (folder) => (folder.weights.has('logit_scale') ? ['logit_scale'] : []),
};

type ClipClass = 'CLIPModel' | 'CLIPVisionModel' | 'CLIPVisionModelWithProjection' | 'CLIPTextModel' | 'CLIPTextModelWithProjection';
const CLASS_OF_TYPE: Record<string, ClipClass> = { clip: 'CLIPModel', clip_vision_model: 'CLIPVisionModel', clip_text_model: 'CLIPTextModel' };

function clipClassOf(folder: HfModelFolder): ClipClass {
  const cls = configClass(folder.config);
  if (cls) return cls as ClipClass;
  const type = String(folder.config.model_type);
  const byType = CLASS_OF_TYPE[type];
  if (!byType) throw new ArchitectureError(`config.json: model_type '${type}' is not a CLIP model`);
  return byType;
}

/** A text tower alone: prompt → tokenizer.json → encoder. */
function textOnlyGraph(folder: HfModelFolder, ctx: { folderRef: string }, params: Record<string, unknown>, maxPositions: number, notes: string[], title: string): ImportedGraph {
  if (!folder.tokenizerJson) throw new ArchitectureError('the folder has no tokenizer.json (a text encoder needs its tokenizer to run)');
  const nodes: ImportedNode[] = [
    { id: 'prompt', type: 'io.text', params: { text: '' }, position: { x: 0, y: 0 } },
    {
      id: 'tokenize',
      type: 'text.tokenize',
      params: { tokenizer: join(ctx.folderRef, 'tokenizer.json'), add_special_tokens: true, max_length: maxPositions },
      position: { x: 260, y: 0 },
    },
    { id: 'text_encoder', type: 'encoder.clip_text', params, frozen: true, part: 'text', position: { x: 520, y: 0 } },
  ];
  const port = params.projection === true ? 'text_embeds' : 'pooler_output';
  return {
    name: `${title} (${folderDisplayName(folder.dir)})`,
    nodes: [...nodes, featuresNode(port, { x: 780, y: 0 })],
    edges: [
      { from: { node: 'prompt', port: 'text' }, to: { node: 'tokenize', port: 'text' } },
      { from: { node: 'tokenize', port: 'input_ids' }, to: { node: 'text_encoder', port: 'input_ids' } },
      { from: { node: 'tokenize', port: 'attention_mask' }, to: { node: 'text_encoder', port: 'attention_mask' } },
      { from: { node: 'text_encoder', port }, to: { node: 'features', port: 'tensor' } },
    ],
    groups: [{ id: 'text', title: `${title} — imported from ${folderDisplayName(folder.dir)}`, nodeIds: nodes.map((n) => n.id) }],
    notes: [...notes, `the Tensor output shows the tower's ${port}; save every output with 'vlmc run --save-outputs'`],
  };
}

export const clip: HfArchitecture = {
  id: 'clip',
  classes: ['CLIPModel', 'CLIPVisionModel', 'CLIPVisionModelWithProjection', 'CLIPTextModel', 'CLIPTextModelWithProjection'],
  modelTypes: ['clip', 'clip_vision_model', 'clip_text_model'],
  parts: { vision: visionPart, text: textPart },
  fromGraph: clipFromGraph,
  toGraph(folder, ctx) {
    const c = new ConfigReader(folder.config);
    const cls = clipClassOf(folder);
    if (cls === 'CLIPVisionModel' || cls === 'CLIPVisionModelWithProjection') {
      const tower = clipVisionTowerParams(c);
      const withProjection = cls === 'CLIPVisionModelWithProjection';
      return visionTowerGraph(folder, {
        title: withProjection ? 'CLIP vision tower with projection' : 'CLIP vision tower',
        imageParams: imageInputParams(folder, tower.imageSize, CLIP_PROCESSOR),
        vision: { type: 'encoder.clip_vit', params: { ...tower.params, projection: withProjection } },
        port: withProjection ? 'image_embeds' : 'pooler_output',
        note: '',
      });
    }
    if (cls === 'CLIPTextModel' || cls === 'CLIPTextModelWithProjection') {
      const text = clipTextTowerParams(c);
      const params = { ...text.params, projection: cls === 'CLIPTextModelWithProjection' };
      return textOnlyGraph(folder, ctx, params, text.maxPositions, text.notes, cls === 'CLIPTextModel' ? 'CLIP text tower' : 'CLIP text tower with projection');
    }
    const projectionDim = c.int('projection_dim', 512);
    const vision = clipVisionTowerParams(subConfig(c, 'vision_config'), projectionDim);
    const text = clipTextTowerParams(subConfig(c, 'text_config'), projectionDim);
    return zeroShotGraph(folder, {
      family: 'CLIP',
      folderRef: ctx.folderRef,
      imageParams: imageInputParams(folder, vision.imageSize, CLIP_PROCESSOR),
      vision: { type: 'encoder.clip_vit', params: vision.params, port: 'image_embeds' },
      text: { type: 'encoder.clip_text', params: text.params, port: 'text_embeds', mask: true },
      labels: { max_length: text.maxPositions, padding: 'longest' },
      head: { logit_scale: logitScaleOf(folder), logit_bias: 0, activation: 'softmax' },
      notes: [
        ...text.notes,
        "candidate labels come from the prompt, separated by ';' (vlmc run --prompt \"a photo of a cat;a photo of a dog\"), tokenised with the folder's tokenizer.json",
        'the zero-shot head multiplies cosine similarities by exp(logit_scale), read from the folder at import',
      ],
    });
  },
};

// ---------------------------------------------------------------------------------------------------------------
// The export direction: a zero-shot graph (image → encoder.clip_vit → head.zero_shot ← encoder.clip_text ← labels)
// → CLIPModel; a vision or text tower alone → CLIP{Vision,Text}Model[WithProjection]. Our weight names are
// transformers' own, so the mapping is the identity.

/** transformers' CLIPConfig.logit_scale_init_value (log(1/0.07)), written as the class writes it. */
const LOGIT_SCALE_INIT = 2.6592;

/** A CLIP vision tower's params → its CLIPVisionConfig (the inverse of clipVisionTowerParams). */
export function clipVisionConfig(params: Record<string, unknown>): Record<string, unknown> {
  const d = clipVitDimsOf(params);
  return { ...vitConfig('clip_vision_model', d), projection_dim: d.projection_dim };
}

/**
 * transformers pools CLIP's text tower at argmax(input_ids) when text_config.eos_token_id is 2 (legacy configs), so a
 * tower that pools at the first id-2 token (the built-in tokenizer's '</s>') has no faithful config. The export then
 * gives '</s>' the last id of the vocabulary instead (the swap of two rows of the token embedding and two ids of
 * tokenizer.json, consistent on both sides): the exported model reads the same text the same way.
 */
function eosSwapFor(textParams: ReturnType<typeof clipTextDimsOf>): [number, number] | undefined {
  if (textParams.pooling !== 'eos_id' || textParams.eos_token_id !== 2) return undefined;
  return [2, textParams.vocab_size - 1];
}

function swapRows(t: Tensor, [a, b]: [number, number], what: string): Tensor {
  const [rows, width] = t.dims;
  if (t.dtype !== 'float32' || t.dims.length !== 2 || a >= rows || b >= rows) throw new ArchitectureError(`${what}: cannot swap rows ${a} and ${b} of a ${t.dtype} [${t.dims.join(',')}] tensor`);
  const data = Float32Array.from(t.data as Float32Array);
  data.set((t.data as Float32Array).subarray(b * width, (b + 1) * width), a * width);
  data.set((t.data as Float32Array).subarray(a * width, (a + 1) * width), b * width);
  return { dtype: 'float32', dims: [...t.dims], data };
}

/** A CLIP text tower's params → its CLIPTextConfig, with the pooling rule transformers applies to its eos_token_id. */
function clipTextConfig(params: Record<string, unknown>, node: string, special: { bos?: number; eos?: number; pad?: number }, swap: [number, number] | undefined): Record<string, unknown> {
  const d = clipTextDimsOf(params);
  const mapId = (id: number | undefined) => (id === undefined || !swap ? id : id === swap[0] ? swap[1] : id === swap[1] ? swap[0] : id);
  let eos: number;
  if (d.pooling === 'argmax') eos = 2; // transformers' legacy rule: argmax(input_ids) when eos_token_id is 2
  else if (d.pooling === 'eos_id') eos = mapId(d.eos_token_id)!;
  else throw new ArchitectureError(`node '${node}': pooling 'last' has no CLIPTextConfig form (transformers pools at the eos token, or at argmax(input_ids) for legacy configs)`);
  const bos = mapId(special.bos);
  const pad = mapId(special.pad);
  return {
    ...textTowerConfig('clip_text_model', d),
    projection_dim: d.projection_dim,
    ...(bos !== undefined ? { bos_token_id: bos } : {}),
    eos_token_id: eos,
    ...(pad !== undefined ? { pad_token_id: pad } : {}),
  };
}

function clipFromGraph(src: HfExportSource): HfExportPlan | undefined {
  const towers = towerNodes(src, 'encoder.clip_vit', 'encoder.clip_text');
  if (!towers) return undefined;
  const { vision, text, head, image, labels } = towers;
  const parts: HfExportPart[] = [];
  const notes: string[] = [];
  const config: Record<string, unknown> = {};
  let tokenizerNode: string | undefined;
  let tokenIdSwap: [number, number] | undefined;
  let appendsEos = false;
  const identity = (prefixes: string[]) => (ours: string) => (prefixes.some((p) => ours.startsWith(p)) ? ours : null);

  let textCfg: Record<string, unknown> | undefined;
  if (text) {
    if (!labels) throw new ArchitectureError(`node '${text.id}': the CLIP text tower needs the tokenizer of a text.labels or text.tokenize node feeding it`);
    const p = src.params(text.id);
    const tokenizer = typeof src.params(labels.id).tokenizer === 'string' ? String(src.params(labels.id).tokenizer) : 'builtin';
    tokenIdSwap = eosSwapFor(clipTextDimsOf(p));
    textCfg = clipTextConfig(p, text.id, src.specialTokens(tokenizer), tokenIdSwap);
    tokenizerNode = labels.id;
    appendsEos = labels.type === 'text.labels' && src.params(labels.id).append_eos === true;
    if (appendsEos) notes.push(`node '${labels.id}' appends the end-of-text token itself; the exported tokenizer.json's post-processor does it, as CLIP's tokenizer does`);
    const swap = tokenIdSwap;
    parts.push({
      node: text.id,
      part: 'text',
      toHf: identity(['text_model.', 'text_projection.']),
      ...(swap
        ? {
            fuse: (w: Map<string, Tensor>) => {
              const name = 'text_model.embeddings.token_embedding.weight';
              const t = w.get(name);
              if (!t) throw new ArchitectureError(`node '${text.id}': has no weight '${name}'`);
              return new Map(w).set(name, swapRows(t, swap, `node '${text.id}' weight '${name}'`));
            },
          }
        : {}),
    });
    if (swap) notes.push(`the text tower pools at '</s>' (id ${swap[0]}), which transformers would read as its legacy argmax rule; the export gives '</s>' id ${swap[1]} instead (token embedding rows and tokenizer.json ids ${swap[0]} ↔ ${swap[1]} swapped)`);
  }
  let visionCfg: Record<string, unknown> | undefined;
  if (vision) {
    visionCfg = clipVisionConfig(src.params(vision.id));
    parts.push({ node: vision.id, part: 'vision', toHf: identity(['vision_model.', 'visual_projection.']) });
  }

  let cls: string;
  if (visionCfg && textCfg) {
    cls = 'CLIPModel';
    if (visionCfg.projection_dim !== textCfg.projection_dim) {
      throw new ArchitectureError(`nodes '${vision!.id}' and '${text!.id}': projection_dim ${String(visionCfg.projection_dim)} and ${String(textCfg.projection_dim)} differ; CLIPModel has one projection_dim`);
    }
    if (src.params(vision!.id).projection === false || src.params(text!.id).projection === false) throw new ArchitectureError(`CLIPModel needs both towers' projections (projection: true on '${vision!.id}' and '${text!.id}')`);
    let logitScale = Math.exp(LOGIT_SCALE_INIT);
    if (head) {
      const h = src.params(head.id);
      if (h.activation !== 'softmax' || h.logit_bias !== 0) throw new ArchitectureError(`node '${head.id}': CLIPModel scores with a softmax and no bias; this head is ${String(h.activation)} with logit_bias ${String(h.logit_bias)} (that is SigLIP)`);
      logitScale = Number(h.logit_scale);
    } else notes.push(`the graph has no zero-shot head: logit_scale is CLIP's initial value ${LOGIT_SCALE_INIT}`);
    Object.assign(config, { projection_dim: visionCfg.projection_dim, logit_scale_init_value: LOGIT_SCALE_INIT, text_config: textCfg, vision_config: visionCfg });
    return plan(cls, config, parts, { logit_scale: scalarOf(Math.log(logitScale), []) }, notes, tokenizerNode, image?.id, { swap: tokenIdSwap, appendsEos });
  }
  if (visionCfg) {
    cls = src.params(vision!.id).projection === false ? 'CLIPVisionModel' : 'CLIPVisionModelWithProjection';
    const { projection_dim: projectionDim, ...rest } = visionCfg;
    Object.assign(config, rest, cls === 'CLIPVisionModelWithProjection' ? { projection_dim: projectionDim } : {});
  } else {
    cls = src.params(text!.id).projection === false ? 'CLIPTextModel' : 'CLIPTextModelWithProjection';
    const { projection_dim: projectionDim, ...rest } = textCfg!;
    Object.assign(config, rest, cls === 'CLIPTextModelWithProjection' ? { projection_dim: projectionDim } : {});
  }
  return plan(cls, config, parts, {}, notes, tokenizerNode, image?.id, { swap: tokenIdSwap, appendsEos });
}

function plan(
  cls: string,
  config: Record<string, unknown>,
  parts: HfExportPart[],
  extra: Record<string, Tensor>,
  notes: string[],
  tokenizerNode: string | undefined,
  imageNode: string | undefined,
  tokenizer: { swap?: [number, number]; appendsEos: boolean },
): HfExportPlan {
  const modelType = cls === 'CLIPModel' ? 'clip' : String(config.model_type);
  const withImage = cls !== 'CLIPTextModel' && cls !== 'CLIPTextModelWithProjection';
  return {
    config: { architectures: [cls], ...config, model_type: modelType },
    parts,
    extraTensors: new Map(Object.entries(extra)),
    ...(tokenizerNode ? { tokenizerNode } : {}),
    ...(tokenizer.swap ? { tokenIdSwap: tokenizer.swap } : {}),
    ...(tokenizer.appendsEos ? { tokenizerAppendsEos: true } : {}),
    ...(withImage && imageNode ? { image: { node: imageNode, imageProcessorType: 'CLIPImageProcessor', processorClass: cls === 'CLIPModel' ? 'CLIPProcessor' : undefined } } : {}),
    notes,
  };
}
