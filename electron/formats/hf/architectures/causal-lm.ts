// What every causal language model import shares — LLaMA, Mistral, Qwen2, OPT and GPT-2 alone or inside LLaVA,
// BLIP-2 and InstructBLIP: config.json → `llm.decoder` / `llm.embed_tokens` params, state-dict names → ours, the
// generation defaults of generation_config.json, and the text nodes (prompt → tokenizer → embed → decoder → text).

import { join } from 'node:path';
import { type DocEdge, type DocNode, type GraphDocument, weightOwnerOf } from '../../../engine/document.js';
import { type DecoderConfig, type DecoderParamsInput, type Flavour, resolveDecoderConfig } from '../../../nodes/llms.js';
import type { HfModelFolder } from '../folder.js';
import { ArchitectureError, ConfigReader, folderDisplayName, renamedWeights } from './mapping.js';
import type { HfArchitecture, HfExportPart, HfExportSource, HfPart, ImportedNode } from './types.js';

/** transformers `model_type` → our decoder flavour. */
const FLAVOUR_OF: Record<string, Flavour> = { llama: 'llama', mistral: 'llama', qwen2: 'llama', opt: 'opt', gpt2: 'gpt2' };

export const CAUSAL_LM_TYPES = Object.keys(FLAVOUR_OF);

export interface CausalLmParams {
  flavour: Flavour;
  /** `llm.decoder` params (dims only; generation params come from generationParams). */
  decoder: Record<string, unknown>;
  /** `llm.embed_tokens` params. */
  embed: Record<string, unknown>;
  notes: string[];
}

/**
 * Rotary scaling of a LLaMA-family config (null, 'default', 'linear', 'llama3'; others refused naming the field):
 * `rope_scaling`, or `rope_parameters` where transformers v5 keeps rope_theta and the scaling together.
 */
function ropeScaling(c: ConfigReader): Record<string, unknown> | null {
  const key = c.has('rope_scaling') ? 'rope_scaling' : c.has('rope_parameters') ? 'rope_parameters' : undefined;
  if (!key) return null;
  const rs = c.nested(key);
  const kind = rs.has('rope_type') ? rs.str('rope_type') : rs.str('type', 'default');
  if (kind === 'default') return null;
  if (kind === 'linear') return { rope_type: 'linear', factor: rs.num('factor', undefined, { positive: true }) };
  if (kind === 'llama3') {
    return {
      rope_type: 'llama3',
      factor: rs.num('factor', undefined, { positive: true }),
      low_freq_factor: rs.num('low_freq_factor', undefined, { positive: true }),
      high_freq_factor: rs.num('high_freq_factor', undefined, { positive: true }),
      original_max_position_embeddings: rs.int('original_max_position_embeddings'),
    };
  }
  throw new ArchitectureError(
    `config.json: rope_scaling type '${kind}' is not supported (Composer computes 'default', 'linear' and 'llama3' rotary frequencies)`,
  );
}

/** Decoder and embedding params from a (text) config, every value Composer does not implement refused by name. */
export function causalLmParams(c: ConfigReader, modelType: string): CausalLmParams {
  const flavour = FLAVOUR_OF[modelType];
  if (!flavour) {
    throw new ArchitectureError(`config.json: language model type '${modelType}' is not supported (Composer imports ${CAUSAL_LM_TYPES.join(', ')})`);
  }
  const notes: string[] = [];
  let decoder: Record<string, unknown>;
  if (flavour === 'llama') {
    c.refuse('hidden_act', (v) => v === 'silu', "Composer's LLaMA-family MLP is SwiGLU with silu");
    c.refuse('mlp_bias', (v) => v === false, 'MLP biases are not implemented for LLaMA-family decoders');
    if (modelType === 'qwen2') c.refuse('use_sliding_window', (v) => v === false, 'Qwen2 sliding-window layers (max_window_layers) are not implemented');
    const heads = c.int('num_attention_heads');
    const hidden = c.int('hidden_size');
    const headDim = c.optInt('head_dim');
    decoder = {
      flavour,
      vocab_size: c.int('vocab_size'),
      hidden_size: hidden,
      num_layers: c.int('num_hidden_layers'),
      num_heads: heads,
      num_kv_heads: c.int('num_key_value_heads', heads),
      intermediate_size: c.int('intermediate_size'),
      max_positions: c.int('max_position_embeddings'),
      norm_eps: c.num('rms_norm_eps', 1e-6, { positive: true }),
      rope_theta: c.has('rope_theta') || !c.has('rope_parameters') ? c.num('rope_theta', 10000, { positive: true }) : c.nested('rope_parameters').num('rope_theta', 10000, { positive: true }),
      tie_word_embeddings: c.bool('tie_word_embeddings', false),
      attention_bias: modelType === 'qwen2' ? 'qkv' : c.bool('attention_bias', false) ? 'all' : 'none',
      rope_scaling: ropeScaling(c),
      sliding_window: modelType === 'mistral' && c.has('sliding_window') ? c.int('sliding_window') : null,
      ...(headDim !== undefined && headDim !== hidden / heads ? { head_dim: headDim } : {}),
    };
  } else if (flavour === 'opt') {
    c.refuse('do_layer_norm_before', (v) => v === true, 'post-LN OPT (opt-350m) is not implemented');
    c.refuse('activation_function', (v) => v === 'relu', "Composer's OPT uses relu");
    c.refuse('enable_bias', (v) => v === true, 'OPT without biases is not implemented');
    c.refuse('layer_norm_elementwise_affine', (v) => v === true, 'OPT without layer-norm weights is not implemented');
    c.refuse('_remove_final_layer_norm', (v) => v === false, 'OPT without its final layer norm is not implemented');
    const hidden = c.int('hidden_size');
    c.refuse('word_embed_proj_dim', (v) => v === hidden, `a projected word embedding (≠ hidden_size ${hidden}, opt-350m) is not implemented`);
    decoder = {
      flavour,
      vocab_size: c.int('vocab_size'),
      hidden_size: hidden,
      num_layers: c.int('num_hidden_layers'),
      num_heads: c.int('num_attention_heads'),
      intermediate_size: c.int('ffn_dim'),
      max_positions: c.int('max_position_embeddings'),
      norm_eps: 1e-5, // nn.LayerNorm's default: OPT's config has no epsilon
      tie_word_embeddings: c.bool('tie_word_embeddings', true),
    };
  } else {
    c.refuse('activation_function', (v) => v === 'gelu_new' || v === 'gelu_pytorch_tanh', "Composer's GPT-2 MLP uses the tanh GELU (gelu_new)");
    c.refuse('scale_attn_weights', (v) => v === true, 'unscaled attention is not implemented');
    c.refuse('scale_attn_by_inverse_layer_idx', (v) => v === false, 'per-layer attention scaling is not implemented');
    const hidden = c.int('n_embd');
    decoder = {
      flavour,
      vocab_size: c.int('vocab_size'),
      hidden_size: hidden,
      num_layers: c.int('n_layer'),
      num_heads: c.int('n_head'),
      intermediate_size: c.optInt('n_inner') ?? 4 * hidden,
      max_positions: c.int('n_positions'),
      norm_eps: c.num('layer_norm_epsilon', 1e-5, { positive: true }),
      tie_word_embeddings: c.bool('tie_word_embeddings', true),
    };
  }
  const decoderWithPreset = { preset: 'tiny', ...decoder };
  const embed = {
    preset: 'tiny',
    flavour,
    vocab_size: decoder.vocab_size,
    hidden_size: decoder.hidden_size,
  };
  return { flavour, decoder: decoderWithPreset, embed, notes };
}

// ---------------------------------------------------------------------------------------------------------------
// State-dict names

/**
 * Where a language model's tensors live in a checkpoint: `body` prefixes the transformer (`model.`,
 * `language_model.model.`, `model.language_model.`, `model.decoder.`, `transformer.`), `head` names the LM head.
 */
export interface LmLayout {
  body: string;
  head: string;
}

/** Our decoder / embedding weight name → the checkpoint's. */
export function hfLmName(flavour: Flavour, layout: LmLayout, ours: string): string {
  if (ours === 'lm_head.weight') return layout.head;
  if (flavour === 'gpt2' && ours === 'embed_tokens.weight') return `${layout.body}wte.weight`;
  return `${layout.body}${ours}`;
}

/** The first layout whose word embedding the folder holds (so one part reads several naming generations). */
export function detectLayout(folder: HfModelFolder, flavour: Flavour, candidates: LmLayout[]): LmLayout {
  const found = candidates.find((l) => folder.weights.has(hfLmName(flavour, l, 'embed_tokens.weight')));
  if (!found) {
    const tried = candidates.map((l) => `'${hfLmName(flavour, l, 'embed_tokens.weight')}'`).join(' or ');
    throw new ArchitectureError(`the folder has no word embedding ${tried} (files: ${folder.weights.files.join(', ')})`);
  }
  return found;
}

/**
 * The decoder and embedding parts of a language model whose tensors follow one of `layouts`. A tied head saved
 * anyway (some exports keep `lm_head.weight`) is accepted as a duplicate of the word embedding.
 */
export function causalLmParts(layouts: LmLayout[], what: string): { decoder: HfPart; embed: HfPart } {
  const flavourOf = (params: Record<string, unknown>): Flavour => {
    const f = params.flavour;
    if (f !== 'llama' && f !== 'opt' && f !== 'gpt2') throw new ArchitectureError(`${what}: node params have no decoder flavour`);
    return f;
  };
  return {
    decoder: {
      weights(folder, params) {
        const flavour = flavourOf(params);
        const layout = detectLayout(folder, flavour, layouts);
        return renamedWeights(folder, 'llm.decoder', params, (ours) => hfLmName(flavour, layout, ours), what);
      },
      duplicates(folder, params) {
        const flavour = flavourOf(params);
        const layout = detectLayout(folder, flavour, layouts);
        return params.tie_word_embeddings === true && folder.weights.has(layout.head) ? [layout.head] : [];
      },
    },
    embed: {
      weights(folder, params) {
        const flavour = flavourOf(params);
        const layout = detectLayout(folder, flavour, layouts);
        return renamedWeights(folder, 'llm.embed_tokens', params, (ours) => hfLmName(flavour, layout, ours), what);
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Generation defaults and the text nodes

/** `llm.decoder` generation params from generation_config.json (greedy unless it samples). */
export function generationParams(folder: HfModelFolder, fallbackEos: number[] | undefined): Record<string, unknown> {
  const g = folder.generationConfig;
  const out: Record<string, unknown> = { max_new_tokens: g?.max_new_tokens ?? 32 };
  if (g?.do_sample) {
    out.temperature = g.temperature ?? 1;
    out.top_k = g.top_k ?? 50;
    out.top_p = g.top_p ?? 1;
  }
  const eos = g?.eos_token_id ?? fallbackEos;
  if (eos && eos.length) out.eos_token_ids = eos;
  return out;
}

/** The eos id(s) config.json names (text_config for a VLM), used when generation_config.json is absent. */
export function configEos(c: ConfigReader): number[] | undefined {
  const v = c.raw.eos_token_id;
  if (typeof v === 'number') return [v];
  if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return v as number[];
  return undefined;
}

export interface TextNodesOptions {
  /** Node ids get this prefix (none for a plain LLM). */
  x: number;
  y: number;
  prompt: string;
  decoder: Record<string, unknown>;
  embed: Record<string, unknown>;
  /** Chat template (tokenizer_config's chat_template), an instruction template, or the raw prompt. */
  template?:
    | { kind: 'chat'; source: string; imagePlaceholder?: string }
    /** With imageTokens, each imageToken of the template expands to that many tokens (processor_config.json). */
    | { kind: 'instruction'; template: string; imageToken?: string; imageTokens?: number };
  /** Image features enter between the embedding and the decoder. */
  merge?: { mode: 'prefix' } | { mode: 'scatter'; imageTokenId: number };
  frozen?: boolean;
  /** Folder path as the graph references it (for the tokenizer). */
  folderRef: string;
}

/** The text side: prompt → (template) → tokenize → embed → (merge) → decoder → answer. */
export function textGenerationNodes(folder: HfModelFolder, o: TextNodesOptions): { nodes: ImportedNode[]; edges: DocEdge[]; mergeId?: string } {
  if (!folder.tokenizerJson) throw new ArchitectureError('the folder has no tokenizer.json (a language model needs its tokenizer to run)');
  const tokenizer = join(o.folderRef, 'tokenizer.json');
  const tc = folder.tokenizerConfig;
  const nodes: ImportedNode[] = [];
  const edges: DocEdge[] = [];
  const link = (from: string, fromPort: string, to: string, toPort: string) => edges.push({ from: { node: from, port: fromPort }, to: { node: to, port: toPort } });
  let col = o.x;
  // One column per node, 300 px apart (nodes are 236 px wide; edges need room to be read).
  const at = (dy = 0) => ({ x: (col += 300) - 300, y: o.y + dy });

  nodes.push({ id: 'prompt', type: 'io.text', params: { text: o.prompt }, position: at() });
  let textSource = 'prompt';
  let addSpecialTokens = true;
  if (o.template?.kind === 'chat') {
    nodes.push({
      id: 'chat',
      type: 'prompt.chat',
      params: {
        style: 'custom',
        template: o.template.source,
        system: '',
        image_placeholder: o.template.imagePlaceholder ?? '<image>',
        image_position: o.template.imagePlaceholder ? 'before' : 'none',
        bos_token: tc?.bos_token ?? '',
        eos_token: tc?.eos_token ?? '',
      },
      position: at(),
    });
    link('prompt', 'text', 'chat', 'text');
    textSource = 'chat';
  } else if (o.template?.kind === 'instruction') {
    const images = o.template.imageTokens ? { image_token: o.template.imageToken ?? '<image>', image_tokens: o.template.imageTokens } : {};
    nodes.push({ id: 'template', type: 'prompt.instruction', params: { template: o.template.template, ...images }, position: at() });
    link('prompt', 'text', 'template', 'text');
    textSource = 'template';
  }
  if (o.template?.kind === 'chat' && !o.merge) addSpecialTokens = false; // apply_chat_template(tokenize=True) adds none
  const maxPositions = typeof o.decoder.max_positions === 'number' ? o.decoder.max_positions : 2048;
  nodes.push({ id: 'tokenize', type: 'text.tokenize', params: { tokenizer, add_special_tokens: addSpecialTokens, max_length: maxPositions }, position: at() });
  link(textSource, 'text', 'tokenize', 'text');
  nodes.push({ id: 'embed', type: 'llm.embed_tokens', params: o.embed, frozen: o.frozen ?? true, part: 'embed', position: at(120) });
  link('tokenize', 'input_ids', 'embed', 'input_ids');
  let embedsFrom = { node: 'embed', port: 'inputs_embeds' };
  let maskFrom = { node: 'tokenize', port: 'attention_mask' };
  let mergeId: string | undefined;
  if (o.merge) {
    mergeId = 'merge';
    const params = o.merge.mode === 'scatter' ? { mode: 'scatter', image_token_id: o.merge.imageTokenId } : { mode: 'prefix' };
    nodes.push({ id: 'merge', type: 'llm.merge_image_text', params, position: at() });
    link('embed', 'inputs_embeds', 'merge', 'token_embeds');
    link('tokenize', 'attention_mask', 'merge', 'token_attention_mask');
    if (o.merge.mode === 'scatter') link('tokenize', 'input_ids', 'merge', 'input_ids');
    embedsFrom = { node: 'merge', port: 'inputs_embeds' };
    maskFrom = { node: 'merge', port: 'attention_mask' };
  }
  nodes.push({ id: 'llm', type: 'llm.decoder', params: { ...o.decoder, tokenizer }, frozen: o.frozen ?? true, part: 'decoder', position: at() });
  link(embedsFrom.node, embedsFrom.port, 'llm', 'inputs_embeds');
  link(maskFrom.node, maskFrom.port, 'llm', 'attention_mask');
  nodes.push({ id: 'answer', type: 'io.text_output', params: {}, position: at() });
  link('llm', 'text', 'answer', 'text');
  return { nodes, edges, mergeId };
}

/** The folder's chat template (chat_template.jinja / .json or tokenizer_config.json), if any. */
export function chatTemplateOf(folder: HfModelFolder): string | undefined {
  const t = folder.chatTemplate ?? folder.tokenizerConfig?.chat_template;
  return typeof t === 'string' && t.trim() ? t : undefined;
}

/**
 * A `*ForCausalLM` folder as a graph: prompt → (chat template) → tokenizer → embed → decoder → answer, frozen as a
 * pretrained backbone is; `layouts` are the state-dict prefixes its checkpoints use.
 */
export function causalLmArchitecture(spec: { id: string; classes: string[]; modelTypes: string[]; title: string; layouts: LmLayout[] }): HfArchitecture {
  const parts = causalLmParts(spec.layouts, spec.title);
  return {
    id: spec.id,
    classes: spec.classes,
    modelTypes: spec.modelTypes,
    parts,
    toGraph(folder, ctx) {
      const c = new ConfigReader(folder.config);
      const modelType = c.str('model_type');
      const lm = causalLmParams(c, modelType);
      const chat = chatTemplateOf(folder);
      const text = textGenerationNodes(folder, {
        x: 0,
        y: 0,
        prompt: '',
        decoder: { ...lm.decoder, ...generationParams(folder, configEos(c)) },
        embed: lm.embed,
        template: chat ? { kind: 'chat', source: chat } : undefined,
        folderRef: ctx.folderRef,
      });
      const notes = [...lm.notes];
      if (chat) notes.push("the prompt goes through the folder's chat template (tokenizer_config.json chat_template), tokenized without extra special tokens as apply_chat_template does");
      return {
        name: `${spec.title} (${folderDisplayName(folder.dir)})`,
        nodes: text.nodes,
        edges: text.edges,
        groups: [{ id: 'lm', title: `${spec.title} — imported from ${folderDisplayName(folder.dir)}`, nodeIds: text.nodes.map((n) => n.id) }],
        notes,
      };
    },
    fromGraph(src) {
      const lm = graphLm(src);
      if (!lm) return undefined;
      const modelType = causalLmTypeOf(lm.config, lm.hint);
      if (!spec.modelTypes.includes(modelType)) return undefined;
      const { config, generation } = lmExportConfig(src, lm, modelType);
      return {
        config,
        generation,
        parts: lmExportParts(lm, spec.layouts[0]),
        tokenizerNode: lm.tokenizerNode,
        chatTemplate: lm.chatTemplate,
        notes: [],
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The export direction: a graph's decoder → config.json fields and state-dict names (the same hfLmName as above).

/** transformers' class for each causal-LM model_type. */
export const CAUSAL_LM_CLASS: Record<string, string> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  opt: 'OPTForCausalLM',
  gpt2: 'GPT2LMHeadModel',
};

/**
 * The transformers model_type of a resolved decoder: opt / gpt2 by flavour; for the llama flavour Qwen2 when only
 * q/k/v carry biases, Mistral when it has a sliding window, else LLaMA — unless the mapping the node was imported
 * with (`hint`) names another LLaMA-layout type that expresses the same decoder.
 */
export function causalLmTypeOf(d: DecoderConfig, hint?: string): string {
  if (d.flavour !== 'llama') return d.flavour;
  const natural = d.attentionBias === 'qkv' ? 'qwen2' : d.slidingWindow !== null ? 'mistral' : 'llama';
  if (hint === 'mistral' && d.attentionBias === 'none' && d.ropeScaling === null) return 'mistral';
  if (hint === 'llama' && natural === 'llama') return 'llama';
  return natural;
}

/** The inverse of causalLmParams: a resolved decoder → the (text) config.json fields transformers reads. */
export function causalLmConfig(d: DecoderConfig, modelType: string, tokens: { bos?: number; eos?: number[]; pad?: number }): Record<string, unknown> {
  const ids: Record<string, unknown> = {};
  if (tokens.bos !== undefined) ids.bos_token_id = tokens.bos;
  if (tokens.eos?.length) ids.eos_token_id = tokens.eos.length === 1 ? tokens.eos[0] : tokens.eos;
  if (tokens.pad !== undefined) ids.pad_token_id = tokens.pad;
  const cls = CAUSAL_LM_CLASS[modelType];
  if (!cls) throw new ArchitectureError(`language model type '${modelType}' has no transformers class Composer exports (${Object.keys(CAUSAL_LM_CLASS).join(', ')})`);
  // GPT-2's config leaves tie_word_embeddings at PretrainedConfig's default (true) unless it is off.
  const tie = modelType === 'gpt2' && d.tieWordEmbeddings ? {} : { tie_word_embeddings: d.tieWordEmbeddings };
  const head = { architectures: [cls], model_type: modelType, vocab_size: d.vocabSize, ...tie, ...ids };
  if (d.flavour === 'opt') {
    return {
      ...head,
      hidden_size: d.hiddenSize,
      word_embed_proj_dim: d.hiddenSize,
      num_hidden_layers: d.numLayers,
      num_attention_heads: d.numHeads,
      ffn_dim: d.intermediateSize,
      max_position_embeddings: d.maxPositions,
      activation_function: 'relu',
      do_layer_norm_before: true,
      enable_bias: true,
      layer_norm_elementwise_affine: true,
      _remove_final_layer_norm: false,
      init_std: d.initStd,
    };
  }
  if (d.flavour === 'gpt2') {
    return {
      ...head,
      n_embd: d.hiddenSize,
      n_layer: d.numLayers,
      n_head: d.numHeads,
      n_inner: d.intermediateSize === 4 * d.hiddenSize ? null : d.intermediateSize,
      n_positions: d.maxPositions,
      n_ctx: d.maxPositions,
      layer_norm_epsilon: d.normEps,
      activation_function: 'gelu_new',
      scale_attn_weights: true,
      scale_attn_by_inverse_layer_idx: false,
      initializer_range: d.initStd,
    };
  }
  if (modelType === 'qwen2' && d.attentionBias !== 'qkv') throw new ArchitectureError(`Qwen2 has biases on q, k and v only; this decoder's attention_bias is '${d.attentionBias}'`);
  if (modelType === 'qwen2' && d.slidingWindow !== null) throw new ArchitectureError('Qwen2 sliding-window layers are not exported (Composer does not implement max_window_layers)');
  if (modelType !== 'qwen2' && d.attentionBias === 'qkv') throw new ArchitectureError(`${cls} cannot hold biases on q, k and v without o (that is Qwen2)`);
  if (modelType === 'mistral' && (d.attentionBias !== 'none' || d.ropeScaling !== null)) throw new ArchitectureError('MistralConfig has no attention_bias or rope_scaling (export it as LLaMA)');
  const defaultHeadDim = d.headDim === d.hiddenSize / d.numHeads;
  return {
    ...head,
    hidden_size: d.hiddenSize,
    intermediate_size: d.intermediateSize,
    num_hidden_layers: d.numLayers,
    num_attention_heads: d.numHeads,
    num_key_value_heads: d.numKvHeads,
    ...(modelType !== 'qwen2' || !defaultHeadDim ? { head_dim: d.headDim } : {}),
    max_position_embeddings: d.maxPositions,
    rms_norm_eps: d.normEps,
    rope_theta: d.ropeTheta,
    hidden_act: 'silu',
    initializer_range: d.initStd,
    ...(modelType === 'qwen2' ? { rope_scaling: d.ropeScaling, use_sliding_window: false, sliding_window: null } : {}),
    ...(modelType === 'llama' ? { rope_scaling: d.ropeScaling, attention_bias: d.attentionBias === 'all', mlp_bias: false } : {}),
    ...(modelType === 'mistral' ? { sliding_window: d.slidingWindow } : {}),
  };
}

/** The language model of a graph: its one llm.decoder, the embedding nodes feeding it, and the tokenizer node. */
export interface GraphLm {
  decoder: DocNode;
  embeds: DocNode[];
  config: DecoderConfig;
  /** The mapping the decoder was imported with (`weights.hf.architecture`), if any. */
  hint?: string;
  /** text.tokenize upstream of the embedding, else the decoder (both carry a `tokenizer` param). */
  tokenizerNode: string;
  tokenizer: string;
  /** The prompt.chat node's custom template, if the graph has one. */
  chatTemplate?: string;
}

/** Node ids upstream of `id` (breadth-first). */
export function upstreamOf(doc: GraphDocument, id: string): string[] {
  const seen = new Set([id]);
  const out: string[] = [];
  const queue = [id];
  while (queue.length) {
    const cur = queue.shift()!;
    for (const e of doc.edges) {
      if (e.to.node !== cur || seen.has(e.from.node)) continue;
      seen.add(e.from.node);
      out.push(e.from.node);
      queue.push(e.from.node);
    }
  }
  return out;
}

export function graphLm(src: HfExportSource): GraphLm | undefined {
  const decoders = src.doc.nodes.filter((n) => n.type === 'llm.decoder');
  if (decoders.length !== 1) return undefined;
  const decoder = decoders[0];
  const up = upstreamOf(src.doc, decoder.id);
  const byId = (id: string) => src.doc.nodes.find((n) => n.id === id);
  const embeds = up.map(byId).filter((n): n is DocNode => n?.type === 'llm.embed_tokens' && weightOwnerOf(src.doc, n.id) === decoder.id);
  const tokenize = up.map(byId).find((n) => n?.type === 'text.tokenize');
  const chat = up.map(byId).find((n) => n?.type === 'prompt.chat');
  const chatParams = chat ? src.params(chat.id) : undefined;
  const tokenizerOf = (id: string) => {
    const t = src.params(id).tokenizer;
    return typeof t === 'string' ? t : 'builtin';
  };
  const tokenizerNode = tokenize && tokenizerOf(tokenize.id) !== 'builtin' ? tokenize.id : tokenize && tokenizerOf(decoder.id) === 'builtin' ? tokenize.id : decoder.id;
  return {
    decoder,
    embeds,
    config: resolveDecoderConfig(src.params(decoder.id) as DecoderParamsInput, `node '${decoder.id}'`),
    hint: decoder.weights?.hf?.architecture,
    tokenizerNode,
    tokenizer: tokenizerOf(tokenizerNode),
    chatTemplate: chatParams?.style === 'custom' && typeof chatParams.template === 'string' ? chatParams.template : undefined,
  };
}

/** The decoder's and its embeddings' tensors under `layout` (our names → hfLmName, the import's own function). */
export function lmExportParts(lm: GraphLm, layout: LmLayout): HfExportPart[] {
  const toHf = (ours: string) => hfLmName(lm.config.flavour, layout, ours);
  return [{ node: lm.decoder.id, part: 'decoder', toHf }, ...lm.embeds.map((e) => ({ node: e.id, part: 'embed', toHf }))];
}

/** The language model's config fields, generation_config.json and eos ids. */
export function lmExportConfig(src: HfExportSource, lm: GraphLm, modelType: string): { config: Record<string, unknown>; generation: Record<string, unknown> } {
  const p = src.params(lm.decoder.id);
  const special = src.specialTokens(lm.tokenizer);
  const eos = Array.isArray(p.eos_token_ids) && p.eos_token_ids.length ? (p.eos_token_ids as number[]) : special.eos !== undefined ? [special.eos] : undefined;
  const config = causalLmConfig(lm.config, modelType, { bos: special.bos, eos, pad: special.pad });
  const temperature = typeof p.temperature === 'number' ? p.temperature : 0;
  const generation: Record<string, unknown> = {
    ...(special.bos !== undefined ? { bos_token_id: special.bos } : {}),
    ...(eos ? { eos_token_id: eos.length === 1 ? eos[0] : eos } : {}),
    ...(special.pad !== undefined ? { pad_token_id: special.pad } : {}),
    max_new_tokens: p.max_new_tokens,
    do_sample: temperature > 0,
    ...(temperature > 0 ? { temperature, top_k: p.top_k, top_p: p.top_p } : {}),
  };
  return { config, generation };
}
