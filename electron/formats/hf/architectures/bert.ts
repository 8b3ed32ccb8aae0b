// BertModel → encoder.bert, named as transformers' state dict (identity mapping): embeddings.{word_embeddings,
// position_embeddings, token_type_embeddings, LayerNorm}, encoder.layer.N.{attention.{self.{query,key,value},
// output.{dense,LayerNorm}}, intermediate.dense, output.{dense,LayerNorm}}, pooler.dense (when the model has its
// pooling layer). The graph: text → tokenizer.json → encoder, whose last_hidden_state and pooler_output are the result.

import { join } from 'node:path';
import { ArchitectureError, ConfigReader, folderDisplayName, renamedWeights } from './mapping.js';
import { featuresNode, headsDividing, hfActivation } from './towers.js';
import type { HfArchitecture, HfPart, ImportedNode } from './types.js';

/** encoder.bert params from a BertConfig (its defaults for fields left out); what Composer does not compute is refused. */
export function bertParams(c: ConfigReader): Record<string, unknown> {
  c.refuse('position_embedding_type', (v) => v === 'absolute', "only absolute position embeddings are implemented (not 'relative_key')");
  c.refuse('is_decoder', (v) => v === false, 'a causal (decoder) BERT is not implemented');
  c.refuse('add_cross_attention', (v) => v === false, 'BERT cross-attention layers are not implemented');
  const hidden = c.int('hidden_size', 768);
  return {
    preset: 'tiny',
    vocab_size: c.int('vocab_size', 30522),
    max_positions: c.int('max_position_embeddings', 512),
    type_vocab_size: c.int('type_vocab_size', 2),
    hidden_size: hidden,
    num_layers: c.int('num_hidden_layers', 12),
    num_heads: headsDividing(c, hidden, 12),
    intermediate_size: c.int('intermediate_size', 3072),
    eps: c.num('layer_norm_eps', 1e-12, { positive: true }),
    act: hfActivation(c, 'hidden_act', 'gelu'),
  };
}

const encoderPart: HfPart = {
  weights: (folder, params) => renamedWeights(folder, 'encoder.bert', params, (ours) => ours, 'BERT encoder'),
};

export const bert: HfArchitecture = {
  id: 'bert',
  classes: ['BertModel'],
  modelTypes: ['bert'],
  parts: { encoder: encoderPart },
  toGraph(folder, ctx) {
    if (!folder.tokenizerJson) throw new ArchitectureError('the folder has no tokenizer.json (BERT needs its tokenizer to run)');
    const c = new ConfigReader(folder.config);
    const pooler = folder.weights.has('pooler.dense.weight');
    const params = { ...bertParams(c), pooler };
    const maxLength = c.int('max_position_embeddings', 512);
    const nodes: ImportedNode[] = [
      { id: 'prompt', type: 'io.text', params: { text: '' }, position: { x: 0, y: 0 } },
      {
        id: 'tokenize',
        type: 'text.tokenize',
        params: { tokenizer: join(ctx.folderRef, 'tokenizer.json'), add_special_tokens: true, max_length: maxLength },
        position: { x: 260, y: 0 },
      },
      { id: 'bert', type: 'encoder.bert', params, frozen: true, part: 'encoder', position: { x: 520, y: 0 } },
      featuresNode(pooler ? 'pooler_output' : 'last_hidden_state', { x: 780, y: 0 }),
    ];
    const port = pooler ? 'pooler_output' : 'last_hidden_state';
    return {
      name: `BERT (${folderDisplayName(folder.dir)})`,
      nodes,
      edges: [
        { from: { node: 'prompt', port: 'text' }, to: { node: 'tokenize', port: 'text' } },
        { from: { node: 'tokenize', port: 'input_ids' }, to: { node: 'bert', port: 'input_ids' } },
        { from: { node: 'tokenize', port: 'attention_mask' }, to: { node: 'bert', port: 'attention_mask' } },
        { from: { node: 'bert', port }, to: { node: 'features', port: 'tensor' } },
      ],
      groups: [{ id: 'bert', title: `BERT — imported from ${folderDisplayName(folder.dir)}`, nodeIds: nodes.map((n) => n.id) }],
      notes: [
        `the Tensor output shows the encoder's ${port} (token_type_ids are zeros, one segment); save every output with 'vlmc run --save-outputs'`,
        ...(pooler ? [] : ['the folder has no pooler.dense: the encoder is built without its pooling layer']),
      ],
    };
  },
};
