// LlamaForCausalLM (LLaMA 1–3, Vicuna, TinyLlama, SmolLM …): RMSNorm, rotary positions (rope_theta, rope_scaling
// 'linear' / 'llama3'), SwiGLU, grouped-query attention, untied head unless tie_word_embeddings.
// State dict: model.embed_tokens, model.layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj, post_attention_layernorm,
// mlp.{gate,up,down}_proj}, model.norm, lm_head — ours without the `model.` prefix (llm.decoder flavour 'llama').

import { causalLmArchitecture } from './causal-lm.js';

export const LLAMA_LAYOUT = { body: 'model.', head: 'lm_head.weight' };

export const llama = causalLmArchitecture({
  id: 'llama',
  classes: ['LlamaForCausalLM'],
  modelTypes: ['llama'],
  title: 'LLaMA',
  layouts: [LLAMA_LAYOUT],
});
