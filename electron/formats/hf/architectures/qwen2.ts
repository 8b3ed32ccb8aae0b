// Qwen2ForCausalLM (Qwen2, Qwen2.5): the LLaMA layout with biases on q/k/v (not o), rope_theta 1e6, and a head tied
// to the word embedding in the small checkpoints (then the file has no lm_head.weight).

import { causalLmArchitecture } from './causal-lm.js';
import { LLAMA_LAYOUT } from './llama.js';

export const qwen2 = causalLmArchitecture({
  id: 'qwen2',
  classes: ['Qwen2ForCausalLM'],
  modelTypes: ['qwen2'],
  title: 'Qwen2',
  layouts: [LLAMA_LAYOUT],
});
