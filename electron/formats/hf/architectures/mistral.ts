// MistralForCausalLM: the LLaMA layout and names, plus sliding-window attention (config.sliding_window; null = off).

import { causalLmArchitecture } from './causal-lm.js';
import { LLAMA_LAYOUT } from './llama.js';

export const mistral = causalLmArchitecture({
  id: 'mistral',
  classes: ['MistralForCausalLM'],
  modelTypes: ['mistral'],
  title: 'Mistral',
  layouts: [LLAMA_LAYOUT],
});
