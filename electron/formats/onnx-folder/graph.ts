// An ONNX folder as a graph of our node types: the folder's graphs become imported nodes (`model.onnx_import`),
// wired with its tokenizer and generation defaults.
//   text:  prompt → tokenizer → decoder (model.onnx / decoder_model_merged.onnx, generates) → answer
//   VLM:   image → vision_encoder → merge (the <image> positions of embed_tokens' output) → decoder → answer
//          prompt → template (<image> expanded to the feature count) → tokenizer → embed_tokens ↗

import type { DocEdge } from '../../engine/document.js';
import type { ImportedGenerationParams } from '../../nodes/imported.js';
import type { ImportedNode } from '../hf/architectures/types.js';

export interface DecoderGraphOptions {
  /** Paths as the graph references them (relative to the graph file's folder, or absolute). */
  decoderPath: string;
  tokenizerPath: string;
  /** The decoder reads token ids (embeds inside) or embeddings (a split VLM / merged decoder without embedding). */
  decoderInput: 'input_ids' | 'inputs_embeds';
  generation: ImportedGenerationParams;
  maxLength: number;
  title: string;
  vlm?: {
    visionPath: string;
    embedPath: string;
    imageParams: Record<string, unknown>;
    imageTokenId: number;
    imageToken: string;
    imageTokens: number;
    featuresPort: string;
  };
  embedPath?: string;
  /** The folder's chat template and its bos/eos token strings (text decoders). */
  chat?: { template: string; bos: string; eos: string };
}

export interface FolderGraph {
  nodes: ImportedNode[];
  edges: DocEdge[];
  groups: Array<{ id: string; title: string; nodeIds: string[] }>;
}

export function folderGraph(o: DecoderGraphOptions): FolderGraph {
  const nodes: ImportedNode[] = [];
  const edges: DocEdge[] = [];
  const link = (from: string, fromPort: string, to: string, toPort: string) => edges.push({ from: { node: from, port: fromPort }, to: { node: to, port: toPort } });
  const textY = o.vlm ? 320 : 0;
  let col = 0;
  const at = (y = textY) => ({ x: (col += 300) - 300, y });

  nodes.push({ id: 'prompt', type: 'io.text', params: { text: '' }, position: at() });
  let textSource = 'prompt';
  let addSpecialTokens = true;
  if (o.chat && !o.vlm) {
    // The folder's chat template (tokenizer_config.json chat_template), tokenized without extra special tokens as
    // apply_chat_template does — the same text nodes a Hugging Face import makes.
    nodes.push({
      id: 'chat',
      type: 'prompt.chat',
      params: { style: 'custom', template: o.chat.template, system: '', image_placeholder: '<image>', image_position: 'none', bos_token: o.chat.bos, eos_token: o.chat.eos },
      position: at(),
    });
    link('prompt', 'text', 'chat', 'text');
    textSource = 'chat';
    addSpecialTokens = false;
  }
  if (o.vlm) {
    nodes.push({
      id: 'template',
      type: 'prompt.instruction',
      params: { template: `${o.vlm.imageToken}\n{input}`, image_token: o.vlm.imageToken, image_tokens: o.vlm.imageTokens },
      position: at(),
    });
    link('prompt', 'text', 'template', 'text');
    textSource = 'template';
  }
  nodes.push({ id: 'tokenize', type: 'text.tokenize', params: { tokenizer: o.tokenizerPath, add_special_tokens: addSpecialTokens, max_length: o.maxLength }, position: at() });
  link(textSource, 'text', 'tokenize', 'text');

  let embedsFrom: { node: string; port: string } | undefined;
  let maskFrom = { node: 'tokenize', port: 'attention_mask' };
  const embedPath = o.vlm?.embedPath ?? o.embedPath;
  if (o.decoderInput === 'inputs_embeds') {
    if (!embedPath) throw new Error('an inputs_embeds decoder needs embed_tokens.onnx');
    nodes.push({ id: 'embed', type: 'model.onnx_import', params: { path: embedPath }, frozen: true, position: at() });
    link('tokenize', 'input_ids', 'embed', 'input_ids');
    embedsFrom = { node: 'embed', port: 'inputs_embeds' };
  }
  if (o.vlm) {
    nodes.push({ id: 'image', type: 'io.image', params: o.vlm.imageParams, position: { x: 0, y: 0 } });
    nodes.push({ id: 'vision', type: 'model.onnx_import', params: { path: o.vlm.visionPath, portKinds: { [o.vlm.featuresPort]: 'embeds' } }, frozen: true, position: { x: 300, y: 0 } });
    link('image', 'pixel_values', 'vision', 'pixel_values');
    nodes.push({ id: 'merge', type: 'llm.merge_image_text', params: { mode: 'scatter', image_token_id: o.vlm.imageTokenId }, position: at(160) });
    link('vision', o.vlm.featuresPort, 'merge', 'image_features');
    link(embedsFrom!.node, embedsFrom!.port, 'merge', 'token_embeds');
    link('tokenize', 'attention_mask', 'merge', 'token_attention_mask');
    link('tokenize', 'input_ids', 'merge', 'input_ids');
    embedsFrom = { node: 'merge', port: 'inputs_embeds' };
    maskFrom = { node: 'merge', port: 'attention_mask' };
  }
  nodes.push({ id: 'llm', type: 'model.onnx_import', params: { path: o.decoderPath, generation: o.generation }, frozen: true, position: at(o.vlm ? 160 : textY) });
  if (embedsFrom) link(embedsFrom.node, embedsFrom.port, 'llm', 'inputs_embeds');
  else link('tokenize', 'input_ids', 'llm', 'input_ids');
  link(maskFrom.node, maskFrom.port, 'llm', 'attention_mask');
  nodes.push({ id: 'answer', type: 'io.text_output', params: {}, position: at(o.vlm ? 160 : textY) });
  link('llm', 'text', 'answer', 'text');
  return { nodes, edges, groups: [{ id: 'model', title: o.title, nodeIds: nodes.map((n) => n.id) }] };
}
