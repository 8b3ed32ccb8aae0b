// Blip2ForConditionalGeneration and InstructBlipForConditionalGeneration: the whole BLIP-2 graph as the templates
// have it — Image → EVA ViT (frozen) → Q-Former (+ language_projection) → prefix of the prompt's embeddings →
// OPT / LLaMA-family language model (frozen) → answer. InstructBLIP also feeds the instruction to the Q-Former
// (its own BERT tokenizer, qformer_tokenizer/), bidirectionally with the queries.
//
// State dict → our nodes:
//   vision_model.embeddings.{class_embedding, position_embedding, patch_embedding}  → encoder.eva_vit cls_token,
//     pos_embed, patch_embed.proj;  vision_model.encoder.layers.N.{layer_norm1, layer_norm2, self_attn.qkv,
//     self_attn.{q_bias, v_bias} (or the fused self_attn.qkv.bias newer transformers saves), self_attn.projection,
//     mlp.fc1, mlp.fc2} → blocks.N.{norm1, norm2, attn.qkv, attn.{q_bias, v_bias}, attn.proj, mlp.*};
//     vision_model.post_layernorm → ln_vision.
//   query_tokens, qformer.{layernorm | embeddings.{word_embeddings, position_embeddings, layernorm}},
//     qformer.encoder.layer.N.{attention.attention.*, attention.output.*, crossattention.attention.*,
//     crossattention.output.*, intermediate_query, output_query, intermediate, output}, language_projection
//     → projector.qformer (LAVIS names: embeddings.LayerNorm, attention.self.*, …).
//   language_model.model.decoder.* (OPT) | language_model.model.* (LLaMA), language_model.lm_head → llm.decoder.

import { join } from 'node:path';
import { evaVitDimsOf } from '../../../nodes/encoders.js';
import { qformerDimsOf } from '../../../nodes/projectors.js';
import type { Tensor } from '../../../onnx/ir.js';
import type { HfModelFolder } from '../folder.js';
import { causalLmParams, causalLmParts, causalLmTypeOf, configEos, generationParams, graphLm, lmExportConfig, lmExportParts, textGenerationNodes } from './causal-lm.js';
import { ArchitectureError, ConfigReader, folderDisplayName, renamedWeights, rowsOf } from './mapping.js';
import { BLIP_PROCESSOR, headsDividing, hfActivation, imageInputParams, vitConfig, vitParams } from './towers.js';
import type { HfArchitecture, HfExportPlan, HfExportSource, HfPart, ImportedGraph, ImportedNode, MappedWeight } from './types.js';

type Flavour = 'blip2' | 'instructblip';

// ---------------------------------------------------------------------------------------------------------------
// Config → params

/** encoder.eva_vit params from a Blip2VisionConfig / InstructBlipVisionConfig (their defaults for fields left out). */
export function blipVisionParams(v: ConfigReader): { params: Record<string, unknown>; hiddenSize: number; imageSize: number } {
  const vit = vitParams(v, { hidden: 1408, layers: 39, heads: 16, intermediate: 6144, imageSize: 224, patchSize: 14, act: 'gelu', eps: 1e-6, patches: 'multiple' });
  return { ...vit, params: { ...vit.params, qkv_bias: v.bool('qkv_bias', true), feature_layer: -1, select: 'cls_patch', pooler_norm: true } };
}

/** projector.qformer params from a (InstructBlip|Blip2)QFormerConfig, the query count and the widths around it. */
export function qformerParams(q: ConfigReader, o: { queries: number; dVision: number; dText: number; flavour: Flavour }): Record<string, unknown> {
  q.refuse('position_embedding_type', (v) => v === 'absolute', "only absolute position embeddings are implemented");
  const hidden = q.int('hidden_size', 768);
  return {
    preset: 'tiny',
    num_query_tokens: o.queries,
    hidden_size: hidden,
    num_layers: q.int('num_hidden_layers', 12),
    num_heads: headsDividing(q, hidden, 12),
    intermediate_size: q.int('intermediate_size', 3072),
    cross_attention_frequency: q.int('cross_attention_frequency', 2),
    vocab_size: q.int('vocab_size', 30522),
    max_positions: q.int('max_position_embeddings', 512),
    d_in: o.dVision,
    d_out: o.dText,
    mask_mode: o.flavour === 'instructblip' ? 'instruct' : 'itm',
    eps: q.num('layer_norm_eps', 1e-12, { positive: true }),
    act: hfActivation(q, 'hidden_act', 'gelu'),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// State-dict names

const V = 'vision_model.';

/** encoder.eva_vit weight → the Blip2VisionModel tensor (or rows of the fused qkv bias). */
function visionTensor(folder: HfModelFolder, ours: string, hidden: number): string | MappedWeight {
  if (ours === 'cls_token') return `${V}embeddings.class_embedding`;
  if (ours === 'pos_embed') return `${V}embeddings.position_embedding`;
  if (ours.startsWith('patch_embed.proj.')) return `${V}embeddings.patch_embedding.${ours.slice('patch_embed.proj.'.length)}`;
  if (ours.startsWith('ln_vision.')) return `${V}post_layernorm.${ours.slice('ln_vision.'.length)}`;
  const m = /^blocks\.(\d+)\.(.+)$/.exec(ours);
  if (!m) throw new ArchitectureError(`BLIP-2 vision tower: no Hugging Face name for weight '${ours}'`);
  const layer = `${V}encoder.layers.${m[1]}.`;
  const rest = m[2];
  if (rest === 'attn.q_bias' || rest === 'attn.v_bias') {
    const split = `${layer}self_attn.${rest.slice('attn.'.length)}`;
    const fused = `${layer}self_attn.qkv.bias`;
    if (folder.weights.has(split) || !folder.weights.has(fused)) return split;
    // Newer transformers saves the fused [q_bias, 0, v_bias]; its k part adds q·b_k to every score of a query,
    // which softmax ignores, so only the q and v rows matter.
    const shape = folder.weights.tensors.get(fused)?.shape ?? [];
    if (shape.length !== 1 || shape[0] !== 3 * hidden) {
      throw new ArchitectureError(`BLIP-2 vision tower: tensor '${fused}' has shape [${shape.join(',')}], but config.json implies [${3 * hidden}]`);
    }
    return rest === 'attn.q_bias' ? rowsOf(folder, fused, 0, hidden) : rowsOf(folder, fused, 2 * hidden, 3 * hidden);
  }
  const renamed = rest
    .replace(/^norm1\./, 'layer_norm1.')
    .replace(/^norm2\./, 'layer_norm2.')
    .replace(/^attn\.qkv\./, 'self_attn.qkv.')
    .replace(/^attn\.proj\./, 'self_attn.projection.');
  return `${layer}${renamed}`;
}

/** projector.qformer weight (LAVIS names) → the transformers tensor. */
function qformerTensor(ours: string, flavour: Flavour): string {
  if (ours === 'query_tokens' || ours.startsWith('language_projection.')) return ours;
  if (ours.startsWith('embeddings.LayerNorm.')) {
    const rest = ours.slice('embeddings.LayerNorm.'.length);
    return flavour === 'instructblip' ? `qformer.embeddings.layernorm.${rest}` : `qformer.layernorm.${rest}`;
  }
  return `qformer.${ours.replace('.crossattention.self.', '.crossattention.attention.').replace('.attention.self.', '.attention.attention.')}`;
}

/** BLIP-2 checkpoints made with use_qformer_text_input carry a text FFN per layer that captioning never runs. */
const TEXT_FFN = /^qformer\.encoder\.layer\.\d+\.(intermediate|output)\./;

function visionPart(what: string): HfPart {
  return {
    weights(folder, params) {
      const hidden = params.hidden_size;
      if (typeof hidden !== 'number') throw new ArchitectureError(`${what}: node params have no hidden_size`);
      return renamedWeights(folder, 'encoder.eva_vit', params, (ours) => visionTensor(folder, ours, hidden), what);
    },
  };
}

/** The Q-Former's text branch (embeddings, text FFN) has weights only when the instruction is connected: InstructBLIP. */
const INSTRUCTION_CONNECTED = { qformer_input_ids: ['B', 'T'], qformer_attention_mask: ['B', 'T'] };

function qformerPart(flavour: Flavour, what: string): HfPart {
  return {
    weights: (folder, params) =>
      renamedWeights(folder, 'projector.qformer', params, (ours) => qformerTensor(ours, flavour), what, params.mask_mode === 'instruct' ? INSTRUCTION_CONNECTED : {}),
    duplicates: (folder) => (flavour === 'blip2' ? [...folder.weights.tensors.keys()].filter((t) => TEXT_FFN.test(t)) : []),
  };
}

/** The language model's tensors: OPT under language_model.model.decoder., LLaMA-family under language_model.model. */
const LM_LAYOUTS = [
  { body: 'language_model.model.decoder.', head: 'language_model.lm_head.weight' },
  { body: 'language_model.model.', head: 'language_model.lm_head.weight' },
];

// ---------------------------------------------------------------------------------------------------------------
// The graph

const QFORMER_TOKENIZER = 'qformer_tokenizer/tokenizer.json';

function blipGraph(folder: HfModelFolder, ctx: { folderRef: string }, flavour: Flavour): ImportedGraph {
  const c = new ConfigReader(folder.config);
  const title = flavour === 'blip2' ? 'BLIP-2' : 'InstructBLIP';
  const textCfg = c.nested('text_config', true);
  const lmType = textCfg.str('model_type', 'opt');
  const lm = causalLmParams(textCfg, lmType);
  const vision = blipVisionParams(c.nested('vision_config', true));
  const queries = c.int('num_query_tokens', 32);
  const dText = lm.decoder.hidden_size as number;
  const qformer = qformerParams(c.nested('qformer_config', true), { queries, dVision: vision.hiddenSize, dText, flavour });

  const text = textGenerationNodes(folder, {
    x: 560,
    y: 220,
    prompt: 'What is in the image?',
    decoder: { ...lm.decoder, ...generationParams(folder, configEos(textCfg) ?? configEos(c)) },
    embed: lm.embed,
    template: flavour === 'blip2' ? { kind: 'instruction', template: 'Question: {input} Answer:' } : undefined,
    merge: { mode: 'prefix' },
    folderRef: ctx.folderRef,
  });
  const mergeId = text.mergeId ?? 'merge';
  const nodes: ImportedNode[] = [
    { id: 'image', type: 'io.image', params: imageInputParams(folder, vision.imageSize, BLIP_PROCESSOR), position: { x: 0, y: 0 } },
    { id: 'vit', type: 'encoder.eva_vit', params: vision.params, frozen: true, part: 'vision', position: { x: 280, y: 0 } },
    { id: 'qformer', type: 'projector.qformer', params: qformer, frozen: false, part: 'qformer', position: { x: 560, y: 0 } },
    ...text.nodes,
  ];
  const edges = [
    { from: { node: 'image', port: 'pixel_values' }, to: { node: 'vit', port: 'pixel_values' } },
    { from: { node: 'vit', port: 'vision_features' }, to: { node: 'qformer', port: 'vision_features' } },
    { from: { node: 'qformer', port: 'image_features' }, to: { node: mergeId, port: 'image_features' } },
    ...text.edges,
  ];
  const notes = [
    ...lm.notes,
    `${queries} learned queries read the ${vision.imageSize} px image through the Q-Former; their projection (language_projection) is put before the prompt's embeddings`,
  ];
  if (flavour === 'blip2') {
    notes.push('the prompt is "Question: {input} Answer:" (BLIP-2\'s VQA format); an empty prompt captions');
    if (c.has('image_token_index')) {
      notes.push("the processor's image tokens (image_token_index) are the Q-Former outputs themselves: the merge puts them before the prompt, where the processor puts its <image> tokens");
    }
  } else {
    if (!folder.files.some((f) => f.name === QFORMER_TOKENIZER)) {
      throw new ArchitectureError(`the folder has no ${QFORMER_TOKENIZER} (InstructBLIP's Q-Former reads the instruction with its own tokenizer)`);
    }
    nodes.push({
      id: 'qformer_tokenize',
      type: 'text.tokenize',
      params: { tokenizer: join(ctx.folderRef, QFORMER_TOKENIZER), add_special_tokens: true, max_length: qformer.max_positions },
      position: { x: 280, y: 220 },
    });
    edges.push(
      { from: { node: 'prompt', port: 'text' }, to: { node: 'qformer_tokenize', port: 'text' } },
      { from: { node: 'qformer_tokenize', port: 'input_ids' }, to: { node: 'qformer', port: 'qformer_input_ids' } },
      { from: { node: 'qformer_tokenize', port: 'attention_mask' }, to: { node: 'qformer', port: 'qformer_attention_mask' } },
    );
    notes.push('the instruction goes to the Q-Former too (qformer_tokenizer/, bidirectional with the queries) and, as typed, to the language model');
  }
  return {
    name: `${title} (${folderDisplayName(folder.dir)})`,
    nodes,
    edges,
    groups: [
      { id: 'vision', title: 'Vision tower (EVA ViT, frozen)', nodeIds: ['image', 'vit'] },
      { id: 'qformer', title: 'Q-Former (trainable)', nodeIds: flavour === 'blip2' ? ['qformer'] : ['qformer', 'qformer_tokenize'] },
      { id: 'lm', title: `Language model (${lm.flavour}, frozen)`, nodeIds: ['embed', mergeId, 'llm'] },
    ],
    notes,
  };
}

function blipArchitecture(flavour: Flavour): HfArchitecture {
  const title = flavour === 'blip2' ? 'BLIP-2' : 'InstructBLIP';
  const lm = causalLmParts(LM_LAYOUTS, `${title} language model`);
  return {
    id: flavour,
    classes: flavour === 'blip2' ? ['Blip2ForConditionalGeneration'] : ['InstructBlipForConditionalGeneration'],
    modelTypes: flavour === 'blip2' ? ['blip-2'] : ['instructblip'],
    parts: {
      vision: visionPart(`${title} vision tower`),
      qformer: qformerPart(flavour, `${title} Q-Former`),
      decoder: lm.decoder,
      embed: lm.embed,
    },
    toGraph: (folder, ctx) => blipGraph(folder, ctx, flavour),
    fromGraph: (src) => blipFromGraph(src, flavour),
  };
}

export const blip2 = blipArchitecture('blip2');
export const instructblip = blipArchitecture('instructblip');

// ---------------------------------------------------------------------------------------------------------------
// The export direction: image → encoder.eva_vit → projector.qformer → prefix merge → decoder, the Q-Former feeding
// the merge itself (MiniGPT-4's extra linear has no place in these classes). A Q-Former that reads the instruction
// is InstructBLIP.

/** encoder.eva_vit weight (after fuseEvaBias) → the Blip2VisionModel tensor: the inverse of visionTensor. */
function visionHfName(ours: string): string {
  if (ours === 'cls_token') return `${V}embeddings.class_embedding`;
  if (ours === 'pos_embed') return `${V}embeddings.position_embedding`;
  if (ours.startsWith('patch_embed.proj.')) return `${V}embeddings.patch_embedding.${ours.slice('patch_embed.proj.'.length)}`;
  if (ours.startsWith('ln_vision.')) return `${V}post_layernorm.${ours.slice('ln_vision.'.length)}`;
  const m = /^blocks\.(\d+)\.(.+)$/.exec(ours);
  if (!m) throw new ArchitectureError(`BLIP-2 vision tower: weight '${ours}' has no Hugging Face name`);
  const rest = m[2]
    .replace(/^norm1\./, 'layer_norm1.')
    .replace(/^norm2\./, 'layer_norm2.')
    .replace(/^attn\.qkv\./, 'self_attn.qkv.')
    .replace(/^attn\.proj\./, 'self_attn.projection.');
  return `${V}encoder.layers.${m[1]}.${rest}`;
}

/** EVA's q_bias and v_bias → one qkv bias [q_bias, 0, v_bias], the form transformers saves (see visionTensor). */
function fuseEvaBias(weights: Map<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, t] of weights) {
    const m = /^(blocks\.\d+\.attn)\.(q_bias|v_bias)$/.exec(name);
    if (!m) {
      out.set(name, t);
      continue;
    }
    if (m[2] === 'v_bias') continue;
    const v = weights.get(`${m[1]}.v_bias`);
    if (!v) throw new ArchitectureError(`BLIP-2 vision tower: '${name}' has no '${m[1]}.v_bias' beside it`);
    const d = t.dims[0];
    const fused = new Float32Array(3 * d);
    fused.set(t.data as Float32Array, 0);
    fused.set(v.data as Float32Array, 2 * d);
    out.set(`${m[1]}.qkv.bias`, { dtype: 'float32', dims: [3 * d], data: fused });
  }
  return out;
}

function blipFromGraph(src: HfExportSource, flavour: Flavour): HfExportPlan | undefined {
  const lm = graphLm(src);
  if (!lm) return undefined;
  const byId = (id: string) => src.doc.nodes.find((n) => n.id === id);
  const feeding = (id: string, port: string) => byId(src.doc.edges.find((e) => e.to.node === id && e.to.port === port)?.from.node ?? '');
  const merge = feeding(lm.decoder.id, 'inputs_embeds');
  if (merge?.type !== 'llm.merge_image_text') return undefined;
  const qformer = feeding(merge.id, 'image_features');
  if (qformer?.type !== 'projector.qformer') return undefined;
  const vit = feeding(qformer.id, 'vision_features');
  if (vit?.type !== 'encoder.eva_vit') return undefined;
  const instruct = src.doc.edges.some((e) => e.to.node === qformer.id && e.to.port === 'qformer_input_ids');
  if (instruct !== (flavour === 'instructblip')) return undefined;
  const image = feeding(vit.id, 'pixel_values');
  const cls = flavour === 'blip2' ? 'Blip2ForConditionalGeneration' : 'InstructBlipForConditionalGeneration';

  const m = src.params(merge.id);
  if (m.mode !== 'prefix') throw new ArchitectureError(`node '${merge.id}': ${cls} puts the query outputs before the prompt (mode 'prefix'); '${String(m.mode)}' has no form there`);
  const v = evaVitDimsOf(src.params(vit.id));
  if (!(v.feature_layer === -1 || v.feature_layer === v.num_layers) || v.select !== 'cls_patch') {
    throw new ArchitectureError(`node '${vit.id}': ${cls}'s Q-Former reads the last layer with its CLS token (feature_layer -1, select 'cls_patch'); this tower gives feature_layer ${v.feature_layer}, select '${v.select}'`);
  }
  const q = qformerDimsOf(src.params(qformer.id));
  if (flavour === 'instructblip' && q.mask_mode !== 'instruct') throw new ArchitectureError(`node '${qformer.id}': reads the instruction, so its mask_mode must be 'instruct' (InstructBLIP), not '${q.mask_mode}'`);
  const modelType = causalLmTypeOf(lm.config, lm.hint);
  if (modelType === 'gpt2') throw new ArchitectureError(`node '${lm.decoder.id}': ${cls} takes an OPT or LLaMA-family language model, not GPT-2`);
  const { config: text, generation } = lmExportConfig(src, lm, modelType);
  const prefix = flavour === 'blip2' ? 'blip_2' : 'instructblip';

  // Blip2VisionConfig has no num_channels.
  const vision = { ...vitConfig(`${prefix}_vision_model`, v, { channels: false }), qkv_bias: v.qkv_bias };
  const qformerConfig = {
    model_type: `${prefix}_qformer`,
    vocab_size: q.vocab_size,
    hidden_size: q.hidden_size,
    num_hidden_layers: q.num_layers,
    num_attention_heads: q.num_heads,
    intermediate_size: q.intermediate_size,
    hidden_act: q.act,
    max_position_embeddings: q.max_positions,
    layer_norm_eps: q.eps,
    position_embedding_type: 'absolute',
    cross_attention_frequency: q.cross_attention_frequency,
    encoder_hidden_size: v.hidden_size,
    ...(flavour === 'blip2' ? { use_qformer_text_input: false } : {}),
  };
  // A BLIP-2 Q-Former trained with its text branch (blip2-stage1) keeps weights Blip2QFormerModel has no place for.
  const qformerHf = (ours: string): string | null => {
    const hf = qformerTensor(ours, flavour);
    if (flavour === 'blip2' && (hf.startsWith('qformer.embeddings.') || TEXT_FFN.test(hf))) return null;
    return hf;
  };
  const layout = lm.config.flavour === 'opt' ? LM_LAYOUTS[0] : LM_LAYOUTS[1];
  const qformerTokenize = instruct ? feeding(qformer.id, 'qformer_input_ids') : undefined;
  return {
    config: {
      architectures: [cls],
      model_type: flavour === 'blip2' ? 'blip-2' : 'instructblip',
      num_query_tokens: q.num_query_tokens,
      use_decoder_only_language_model: true,
      tie_word_embeddings: lm.config.tieWordEmbeddings,
      vision_config: vision,
      qformer_config: qformerConfig,
      text_config: text,
    },
    generation,
    parts: [
      { node: vit.id, part: 'vision', toHf: visionHfName, fuse: fuseEvaBias },
      { node: qformer.id, part: 'qformer', toHf: qformerHf },
      ...lmExportParts(lm, layout),
    ],
    tokenizerNode: lm.tokenizerNode,
    chatTemplate: lm.chatTemplate,
    ...(qformerTokenize ? { subTokenizers: [{ node: qformerTokenize.id, dir: 'qformer_tokenizer' }] } : {}),
    ...(image
      ? {
          image: {
            node: image.id,
            imageProcessorType: 'BlipImageProcessor',
            processorClass: flavour === 'blip2' ? 'Blip2Processor' : 'InstructBlipProcessor',
            processor: { num_query_tokens: null, processor_class: flavour === 'blip2' ? 'Blip2Processor' : 'InstructBlipProcessor' },
          },
        }
      : {}),
    notes: flavour === 'blip2' ? ["transformers' processor takes the prompt as typed: write it in BLIP-2's form (\"Question: … Answer:\"), as this graph's prompt node did"] : [],
  };
}
