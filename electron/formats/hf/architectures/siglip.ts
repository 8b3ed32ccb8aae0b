// SiglipModel, SiglipVisionModel → encoder.siglip_vit / encoder.siglip_text, named as transformers' state dict
// (identity mapping): vision_model.{embeddings.{patch_embedding, position_embedding}, encoder.layers.N.{layer_norm1,
// self_attn.{q,k,v,out}_proj, layer_norm2, mlp.{fc1,fc2}}, post_layernorm, head.{probe, attention.{in_proj_weight,
// in_proj_bias, out_proj}, layernorm, mlp}}, text_model.{embeddings.{token,position}_embedding, encoder.layers.N.*,
// final_layer_norm, head}, logit_scale and logit_bias (read at import into the zero-shot head: sigmoid of
// exp(logit_scale)·cos + logit_bias). The SigLIP processor pads the labels to max_length (64) and passes no attention
// mask; the text tower pools at the last position.

import { siglipTextDimsOf, siglipVitDimsOf } from '../../../nodes/encoders.js';
import type { HfModelFolder } from '../folder.js';
import { ArchitectureError, ConfigReader, configClass, renamedWeights } from './mapping.js';
import { subConfig } from './clip.js';
import { SIGLIP_PROCESSOR, headsDividing, hfActivation, imageInputParams, logitScaleOf, scalarOf, scalarTensor, textTowerConfig, towerNodes, visionTowerGraph, vitConfig, vitParams, zeroShotGraph } from './towers.js';
import type { HfArchitecture, HfExportPart, HfExportPlan, HfExportSource, HfPart } from './types.js';

export interface SiglipVisionTower {
  params: Record<string, unknown>;
  hiddenSize: number;
  imageSize: number;
  patchSize: number;
  /** Patch tokens (no CLS): ⌊image_size / patch_size⌋². */
  tokens: number;
}

/** encoder.siglip_vit params from a SiglipVisionConfig (its defaults for fields left out). */
export function siglipVisionTowerParams(v: ConfigReader): SiglipVisionTower {
  const vit = vitParams(v, { hidden: 768, layers: 12, heads: 12, intermediate: 3072, imageSize: 224, patchSize: 16, act: 'gelu_pytorch_tanh', eps: 1e-6, patches: 'floor' });
  return { ...vit, params: { ...vit.params, use_head: v.bool('vision_use_head', true) }, tokens: Math.floor(vit.imageSize / vit.patchSize) ** 2 };
}

/** encoder.siglip_text params from a SiglipTextConfig. */
export function siglipTextTowerParams(t: ConfigReader): { params: Record<string, unknown>; maxPositions: number } {
  const hidden = t.int('hidden_size', 768);
  const maxPositions = t.int('max_position_embeddings', 64);
  return {
    params: {
      preset: 'tiny',
      vocab_size: t.int('vocab_size', 32000),
      max_positions: maxPositions,
      hidden_size: hidden,
      num_layers: t.int('num_hidden_layers', 12),
      num_heads: headsDividing(t, hidden, 12),
      intermediate_size: t.int('intermediate_size', 3072),
      projection_size: t.optInt('projection_size') ?? hidden,
      act: hfActivation(t, 'hidden_act', 'gelu_pytorch_tanh'),
      eps: t.num('layer_norm_eps', 1e-6, { positive: true }),
    },
    maxPositions,
  };
}

const visionPart: HfPart = {
  weights: (folder, params) => renamedWeights(folder, 'encoder.siglip_vit', params, (ours) => ours, 'SigLIP vision tower'),
};

const textPart: HfPart = {
  weights: (folder, params) => renamedWeights(folder, 'encoder.siglip_text', params, (ours) => ours, 'SigLIP text tower'),
  // logit_scale and logit_bias are read at import into the zero-shot head's params.
  duplicates: (folder) => ['logit_scale', 'logit_bias'].filter((n) => folder.weights.has(n)),
};

function siglipClassOf(folder: HfModelFolder): 'SiglipModel' | 'SiglipVisionModel' {
  const cls = configClass(folder.config) ?? (folder.config.model_type === 'siglip_vision_model' ? 'SiglipVisionModel' : 'SiglipModel');
  if (cls !== 'SiglipModel' && cls !== 'SiglipVisionModel') throw new ArchitectureError(`config.json: architecture '${cls}' is not a SigLIP model Composer imports`);
  return cls;
}

export const siglip: HfArchitecture = {
  id: 'siglip',
  classes: ['SiglipModel', 'SiglipVisionModel'],
  modelTypes: ['siglip', 'siglip_vision_model'],
  parts: { vision: visionPart, text: textPart },
  fromGraph: siglipFromGraph,
  toGraph(folder, ctx) {
    const c = new ConfigReader(folder.config);
    if (siglipClassOf(folder) === 'SiglipVisionModel') {
      const tower = siglipVisionTowerParams(c);
      return visionTowerGraph(folder, {
        title: 'SigLIP vision tower',
        imageParams: imageInputParams(folder, tower.imageSize, SIGLIP_PROCESSOR),
        vision: { type: 'encoder.siglip_vit', params: tower.params },
        port: tower.params.use_head === false ? 'last_hidden_state' : 'pooler_output',
        note: `the tower gives ${tower.tokens} patch tokens (no CLS); `,
      });
    }
    const vision = siglipVisionTowerParams(subConfig(c, 'vision_config'));
    if (vision.params.use_head === false) throw new ArchitectureError('config.json: vision_config.vision_use_head = false: a SiglipModel needs the pooling head for its image embedding');
    const text = siglipTextTowerParams(subConfig(c, 'text_config'));
    return zeroShotGraph(folder, {
      family: 'SigLIP',
      folderRef: ctx.folderRef,
      imageParams: imageInputParams(folder, vision.imageSize, SIGLIP_PROCESSOR),
      vision: { type: 'encoder.siglip_vit', params: vision.params, port: 'pooler_output' },
      text: { type: 'encoder.siglip_text', params: text.params, port: 'pooler_output', mask: false },
      labels: { max_length: text.maxPositions, padding: 'max_length' },
      head: { logit_scale: logitScaleOf(folder), logit_bias: scalarTensor(folder, 'logit_bias'), activation: 'sigmoid' },
      notes: [
        "candidate labels come from the prompt, separated by ';', tokenised with the folder's tokenizer.json and padded to " +
          `${text.maxPositions} tokens as SigLIP's processor does (padding="max_length"); no attention mask, as SigLIP was trained`,
        'each label is scored on its own: sigmoid(exp(logit_scale)·cos + logit_bias), both read from the folder at import',
      ],
    });
  },
};

// ---------------------------------------------------------------------------------------------------------------
// The export direction: a zero-shot graph with a sigmoid head → SiglipModel; a vision tower alone → SiglipVisionModel.

/** Our tanh GELU is the formula SigLIP's configs name gelu_pytorch_tanh. */
const siglipAct = (act: string) => (act === 'gelu_new' ? 'gelu_pytorch_tanh' : act);

function siglipVisionConfig(params: Record<string, unknown>): Record<string, unknown> {
  const d = siglipVitDimsOf(params);
  return { ...vitConfig('siglip_vision_model', d, { act: siglipAct(d.act) }), vision_use_head: d.use_head };
}

function siglipTextConfig(params: Record<string, unknown>, special: { bos?: number; eos?: number; pad?: number }): Record<string, unknown> {
  const d = siglipTextDimsOf(params);
  return {
    ...textTowerConfig('siglip_text_model', d, siglipAct(d.act)),
    projection_size: d.projection_size,
    ...(special.eos !== undefined ? { eos_token_id: special.eos } : {}),
    ...(special.pad !== undefined ? { pad_token_id: special.pad } : {}),
  };
}

function siglipFromGraph(src: HfExportSource): HfExportPlan | undefined {
  const towers = towerNodes(src, 'encoder.siglip_vit', 'encoder.siglip_text');
  if (!towers) return undefined;
  const { vision, text, head, image, labels } = towers;
  const same = (ours: string) => ours;
  if (vision && !text) {
    return {
      config: { architectures: ['SiglipVisionModel'], ...siglipVisionConfig(src.params(vision.id)) },
      parts: [{ node: vision.id, part: 'vision', toHf: same }],
      ...(image ? { image: { node: image.id, imageProcessorType: 'SiglipImageProcessor' } } : {}),
      notes: [],
    };
  }
  if (!vision || !text) throw new ArchitectureError(`node '${text!.id}': a SigLIP text tower alone has no transformers class Composer writes (SiglipTextModel is not exported); add the vision tower and a zero-shot head`);
  if (!labels) throw new ArchitectureError(`node '${text.id}': the SigLIP text tower needs the tokenizer of a text.labels or text.tokenize node feeding it`);
  const vp = src.params(vision.id);
  if (vp.use_head === false) throw new ArchitectureError(`node '${vision.id}': a SiglipModel needs the vision pooling head (use_head: true) for its image embedding`);
  const tokenizer = typeof src.params(labels.id).tokenizer === 'string' ? String(src.params(labels.id).tokenizer) : 'builtin';
  let scale = 1;
  let bias = 0;
  if (head) {
    const h = src.params(head.id);
    if (h.activation !== 'sigmoid') throw new ArchitectureError(`node '${head.id}': SiglipModel scores each label with a sigmoid; this head uses ${String(h.activation)} (that is CLIP)`);
    scale = Number(h.logit_scale);
    bias = Number(h.logit_bias);
  }
  const parts: HfExportPart[] = [
    { node: vision.id, part: 'vision', toHf: same },
    { node: text.id, part: 'text', toHf: same },
  ];
  return {
    config: { architectures: ['SiglipModel'], model_type: 'siglip', text_config: siglipTextConfig(src.params(text.id), src.specialTokens(tokenizer)), vision_config: siglipVisionConfig(vp) },
    parts,
    extraTensors: new Map([
      ['logit_scale', scalarOf(Math.log(scale), [1])],
      ['logit_bias', scalarOf(bias, [1])],
    ]),
    tokenizerNode: labels.id,
    ...(labels.type === 'text.labels' && src.params(labels.id).append_eos === true ? { tokenizerAppendsEos: true } : {}),
    ...(image ? { image: { node: image.id, imageProcessorType: 'SiglipImageProcessor', processorClass: 'SiglipProcessor' } } : {}),
    notes: head ? [] : ['the graph has no zero-shot head: logit_scale 0 and logit_bias 0 are written (SiglipModel initialises them from log(10) and -10)'],
  };
}
