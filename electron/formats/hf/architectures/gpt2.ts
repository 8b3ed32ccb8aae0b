// GPT2LMHeadModel: learned positions, pre-LN, tanh GELU, fused c_attn in HF's Conv1D layout [in, out] (ours too),
// head tied to wte. Checkpoints name tensors `transformer.h.N…` (save_pretrained) or `h.N…` (the original upload).

import { causalLmArchitecture } from './causal-lm.js';

export const gpt2 = causalLmArchitecture({
  id: 'gpt2',
  classes: ['GPT2LMHeadModel'],
  modelTypes: ['gpt2'],
  title: 'GPT-2',
  layouts: [
    { body: 'transformer.', head: 'lm_head.weight' },
    { body: '', head: 'lm_head.weight' },
  ],
});
