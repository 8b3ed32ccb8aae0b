// OPTForCausalLM: learned positions offset by 2, pre-LN (do_layer_norm_before), ReLU, head tied to the word embedding.
// State dict: model.decoder.{embed_tokens, embed_positions, layers.N.{self_attn.{q,k,v,out}_proj, self_attn_layer_norm,
// fc1, fc2, final_layer_norm}, final_layer_norm} — ours without `model.decoder.` (llm.decoder flavour 'opt').

import { causalLmArchitecture } from './causal-lm.js';

export const OPT_LAYOUT = { body: 'model.decoder.', head: 'lm_head.weight' };

export const opt = causalLmArchitecture({
  id: 'opt',
  classes: ['OPTForCausalLM'],
  modelTypes: ['opt'],
  title: 'OPT',
  layouts: [OPT_LAYOUT],
});
