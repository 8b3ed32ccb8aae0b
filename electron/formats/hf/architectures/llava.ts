// LlavaForConditionalGeneration (LLaVA-1.5, llava-hf/*): CLIP vision tower (frozen; features of
// vision_feature_layer, CLS dropped when vision_feature_select_strategy is 'default') → multi_modal_projector
// (linear_1 → projector_hidden_act → linear_2) → the image features take the places of the expanded `<image>` tokens
// of the prompt → LLaMA-family language model (frozen). Two naming generations of the state dict:
//   classic  vision_tower.vision_model.*, multi_modal_projector.*, language_model.model.*, language_model.lm_head.weight
//   newer    model.vision_tower.vision_model.*, model.multi_modal_projector.*, model.language_model.*, lm_head.weight

import type { HfModelFolder } from '../folder.js';
import { causalLmParams, causalLmParts, causalLmTypeOf, configEos, generationParams, graphLm, lmExportConfig, lmExportParts, textGenerationNodes, upstreamOf } from './causal-lm.js';
import { ArchitectureError, ConfigReader, folderDisplayName, renamedWeights } from './mapping.js';
import type { HfArchitecture, HfExportPlan, HfExportSource, HfPart, ImportedNode } from './types.js';
import { clipVisionConfig, clipVisionTowerParams, imageInputParams } from './clip.js';

/** Where each part's tensors live in one naming generation. */
interface LlavaLayout {
  vision: string;
  projector: string;
  lm: { body: string; head: string };
}

const LAYOUTS: LlavaLayout[] = [
  { vision: 'vision_tower.', projector: 'multi_modal_projector.', lm: { body: 'language_model.model.', head: 'language_model.lm_head.weight' } },
  { vision: 'model.vision_tower.', projector: 'model.multi_modal_projector.', lm: { body: 'model.language_model.', head: 'lm_head.weight' } },
];

function layoutOf(folder: HfModelFolder): LlavaLayout {
  const found = LAYOUTS.find((l) => folder.weights.has(`${l.projector}linear_1.weight`));
  if (!found) {
    throw new ArchitectureError(
      `the folder has no multi-modal projector ('multi_modal_projector.linear_1.weight' or 'model.multi_modal_projector.linear_1.weight'; files: ${folder.weights.files.join(', ')})`,
    );
  }
  return found;
}

const lmParts = causalLmParts(LAYOUTS.map((l) => l.lm), 'LLaVA language model');

const visionPart: HfPart = {
  weights(folder, params) {
    const { vision } = layoutOf(folder);
    return renamedWeights(folder, 'encoder.clip_vit', params, (ours) => `${vision}${ours}`, 'LLaVA vision tower');
  },
};

const projectorPart: HfPart = {
  weights(folder, params) {
    const { projector } = layoutOf(folder);
    return renamedWeights(folder, 'projector.mlp', params, (ours) => `${projector}${ours}`, 'LLaVA projector');
  },
};

/** Projector activations transformers' ACT2FN names that projector.mlp computes. */
const PROJECTOR_ACTS: Record<string, string> = { gelu: 'gelu', gelu_new: 'gelu_new', gelu_pytorch_tanh: 'gelu_new', quick_gelu: 'quick_gelu', relu: 'relu', silu: 'silu' };

export const llava: HfArchitecture = {
  id: 'llava',
  classes: ['LlavaForConditionalGeneration'],
  modelTypes: ['llava'],
  parts: { vision: visionPart, projector: projectorPart, decoder: lmParts.decoder, embed: lmParts.embed },
  fromGraph: llavaFromGraph,
  toGraph(folder, ctx) {
    const c = new ConfigReader(folder.config);
    const visionCfg = c.nested('vision_config');
    const visionType = visionCfg.str('model_type', 'clip_vision_model');
    if (visionType !== 'clip_vision_model') {
      throw new ArchitectureError(`config.json: vision_config.model_type '${visionType}' is not supported in LLaVA (Composer imports a CLIP vision tower)`);
    }
    const textCfg = c.nested('text_config');
    const lm = causalLmParams(textCfg, textCfg.str('model_type', 'llama'));
    const strategy = c.oneOf('vision_feature_select_strategy', ['default', 'full'] as const, 'default');
    const featureLayer = c.raw.vision_feature_layer ?? -2;
    if (typeof featureLayer !== 'number' || !Number.isInteger(featureLayer)) {
      throw new ArchitectureError(`config.json: vision_feature_layer = ${JSON.stringify(featureLayer)}: Composer takes one layer (an integer), not a list`);
    }
    const act = c.str('projector_hidden_act', 'gelu');
    const projectorAct = PROJECTOR_ACTS[act];
    if (!projectorAct) throw new ArchitectureError(`config.json: projector_hidden_act '${act}' is not supported (${Object.keys(PROJECTOR_ACTS).join(', ')})`);
    const imageTokenId = c.has('image_token_index') ? c.int('image_token_index', undefined, { min: 0 }) : c.int('image_token_id', undefined, { min: 0 });

    const vision = clipVisionTowerParams(visionCfg);
    const visionParams = { ...vision.params, projection: false, feature_layer: featureLayer, select: strategy === 'default' ? 'patch' : 'cls_patch' };
    const dVision = vision.hiddenSize;
    const dText = lm.decoder.hidden_size as number;
    const patches = (vision.imageSize / vision.patchSize) ** 2;
    const imageTokens = strategy === 'default' ? patches : patches + 1;

    const text = textGenerationNodes(folder, {
      x: 300,
      y: 320,
      prompt: '',
      decoder: { ...lm.decoder, ...generationParams(folder, configEos(textCfg) ?? configEos(c)) },
      embed: lm.embed,
      template: { kind: 'instruction', template: 'USER: <image>\n{input} ASSISTANT:', imageToken: '<image>', imageTokens },
      merge: { mode: 'scatter', imageTokenId },
      folderRef: ctx.folderRef,
    });
    const nodes: ImportedNode[] = [
      { id: 'image', type: 'io.image', params: imageInputParams(folder, vision.imageSize), position: { x: 0, y: 0 } },
      { id: 'vit', type: 'encoder.clip_vit', params: visionParams, frozen: true, part: 'vision', position: { x: 300, y: 0 } },
      {
        id: 'proj',
        type: 'projector.mlp',
        params: { d_in: dVision, d_out: dText, depth: 2, act: projectorAct, bias: c.bool('multimodal_projector_bias', true) },
        part: 'projector',
        position: { x: 600, y: 0 },
      },
      ...text.nodes,
    ];
    const edges = [
      { from: { node: 'image', port: 'pixel_values' }, to: { node: 'vit', port: 'pixel_values' } },
      { from: { node: 'vit', port: 'vision_features' }, to: { node: 'proj', port: 'vision_features' } },
      { from: { node: 'proj', port: 'image_features' }, to: { node: text.mergeId ?? 'merge', port: 'image_features' } },
      ...text.edges,
    ];
    return {
      name: `LLaVA (${folderDisplayName(folder.dir)})`,
      nodes,
      edges,
      groups: [
        { id: 'vision', title: 'Vision tower (CLIP, frozen)', nodeIds: ['image', 'vit'] },
        { id: 'lm', title: `Language model (${lm.flavour}, frozen)`, nodeIds: ['embed', 'merge', 'llm'] },
      ],
      notes: [
        ...lm.notes,
        `the prompt is "USER: <image>\\n{input} ASSISTANT:" (LLaVA-1.5's format); each <image> expands to ${imageTokens} image tokens as the processor does`,
      ],
    };
  },
};

// ---------------------------------------------------------------------------------------------------------------
// The export direction: image → encoder.clip_vit → projector.mlp (2 linears) → scatter merge → decoder, written in
// the classic names (LAYOUTS[0]), which every transformers version since LLaVA's first loads.

function llavaFromGraph(src: HfExportSource): HfExportPlan | undefined {
  const lm = graphLm(src);
  if (!lm) return undefined;
  const byId = (id: string) => src.doc.nodes.find((n) => n.id === id);
  const up = upstreamOf(src.doc, lm.decoder.id).map(byId);
  const merge = up.find((n) => n?.type === 'llm.merge_image_text');
  const proj = up.find((n) => n?.type === 'projector.mlp');
  const vit = up.find((n) => n?.type === 'encoder.clip_vit');
  const image = up.find((n) => n?.type === 'io.image');
  if (!merge || !proj || !vit || !image) return undefined;
  const m = src.params(merge.id);
  if (m.mode !== 'scatter') throw new ArchitectureError(`node '${merge.id}': LLaVA places image features at the <image> tokens (mode 'scatter'); '${String(m.mode)}' has no LlavaForConditionalGeneration form`);
  const p = src.params(proj.id);
  if (p.depth !== 2) throw new ArchitectureError(`node '${proj.id}': LLaVA's multi_modal_projector is two linears (depth 2); this projector has depth ${String(p.depth)}`);
  const v = src.params(vit.id);
  if (v.feature_norm === true) throw new ArchitectureError(`node '${vit.id}': feature_norm (post-layernorm on the selected layer) has no LLaVA config field`);
  const modelType = causalLmTypeOf(lm.config, lm.hint);
  const { config: text, generation } = lmExportConfig(src, lm, modelType);
  const vision = clipVisionConfig(v);
  const patches = ((vision.image_size as number) / (vision.patch_size as number)) ** 2;
  const full = v.select === 'cls_patch';
  const layout = LAYOUTS[0];
  const lmParts = lmExportParts(lm, layout.lm);
  return {
    config: {
      architectures: ['LlavaForConditionalGeneration'],
      model_type: 'llava',
      image_token_index: m.image_token_id,
      image_seq_length: full ? patches + 1 : patches,
      projector_hidden_act: p.act,
      ...(p.bias === false ? { multimodal_projector_bias: false } : {}),
      vision_feature_layer: v.feature_layer,
      vision_feature_select_strategy: full ? 'full' : 'default',
      tie_word_embeddings: lm.config.tieWordEmbeddings,
      vision_config: vision,
      text_config: text,
    },
    generation,
    parts: [
      // A CLIPVisionModel has no visual_projection: LLaVA reads the tower's hidden states.
      { node: vit.id, part: 'vision', toHf: (ours) => (ours.startsWith('vision_model.') ? `${layout.vision}${ours}` : null) },
      { node: proj.id, part: 'projector', toHf: (ours) => `${layout.projector}${ours}` },
      ...lmParts,
    ],
    tokenizerNode: lm.tokenizerNode,
    chatTemplate: lm.chatTemplate,
    image: {
      node: image.id,
      imageProcessorType: 'CLIPImageProcessor',
      processorClass: 'LlavaProcessor',
      processor: { image_token: '<image>', num_additional_image_tokens: 1, patch_size: vision.patch_size, processor_class: 'LlavaProcessor', vision_feature_select_strategy: full ? 'full' : 'default' },
    },
    notes: [],
  };
}
