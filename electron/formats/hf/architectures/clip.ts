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
import type { HfModelFolder } from '../folder.js';
import { ArchitectureError, ConfigReader, configClass, folderDisplayName, renamedWeights } from './mapping.js';
import { CLIP_PROCESSOR, featuresNode, headsDividing, hfActivation, imageInputParams, logitScaleOf, visionTowerGraph, vitParams, zeroShotGraph } from './towers.js';
import type { HfArchitecture, HfPart, ImportedGraph, ImportedNode } from './types.js';

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
