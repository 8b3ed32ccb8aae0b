// The config.json files of real checkpoints (as their authors published them, values copied from the hub) map onto
// decoders with exactly the parameter counts those checkpoints have: the mapping is right at real sizes too, on
// folders Composer's own scripts never wrote. Counted from weight shapes only (nothing is allocated).

import { describe, expect, it } from 'vitest';
import { describeDecoder } from '../../nodes/llms.js';
import { causalLmParams } from './architectures/causal-lm.js';
import { ConfigReader } from './architectures/mapping.js';

const REAL = [
  {
    name: 'openai-community/gpt2',
    parameters: 124_439_808,
    config: { architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: 50257, n_embd: 768, n_layer: 12, n_head: 12, n_positions: 1024, n_inner: null, activation_function: 'gelu_new', layer_norm_epsilon: 1e-5, scale_attn_weights: true },
  },
  {
    name: 'facebook/opt-125m',
    parameters: 125_239_296,
    config: { architectures: ['OPTForCausalLM'], model_type: 'opt', vocab_size: 50272, hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, ffn_dim: 3072, max_position_embeddings: 2048, do_layer_norm_before: true, word_embed_proj_dim: 768, activation_function: 'relu', enable_bias: true },
  },
  {
    name: 'Qwen/Qwen2.5-0.5B',
    parameters: 494_032_768,
    config: { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', vocab_size: 151936, hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, max_position_embeddings: 32768, rope_theta: 1000000.0, rms_norm_eps: 1e-6, tie_word_embeddings: true, use_sliding_window: false, sliding_window: 32768, max_window_layers: 24, hidden_act: 'silu' },
  },
  {
    name: 'TinyLlama/TinyLlama-1.1B-Chat-v1.0',
    parameters: 1_100_048_384,
    config: { architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 32000, hidden_size: 2048, intermediate_size: 5632, num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 4, max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000.0, rope_scaling: null, tie_word_embeddings: false, hidden_act: 'silu' },
  },
  {
    name: 'meta-llama/Llama-3.2-1B',
    parameters: 1_235_814_400,
    config: {
      architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 128256, hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, max_position_embeddings: 131072, rms_norm_eps: 1e-5, rope_theta: 500000.0, tie_word_embeddings: true, hidden_act: 'silu', mlp_bias: false, attention_bias: false,
      rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
    },
  },
  {
    name: 'mistralai/Mistral-7B-v0.1',
    parameters: 7_241_732_096,
    config: { architectures: ['MistralForCausalLM'], model_type: 'mistral', vocab_size: 32000, hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, max_position_embeddings: 32768, rms_norm_eps: 1e-5, rope_theta: 10000.0, sliding_window: 4096, tie_word_embeddings: false, hidden_act: 'silu' },
  },
];

describe('real checkpoints\' configs map onto decoders of their published size', () => {
  for (const r of REAL) {
    it(`${r.name}: ${r.parameters.toLocaleString('en-US')} parameters`, () => {
      const lm = causalLmParams(new ConfigReader(r.config), r.config.model_type);
      expect(describeDecoder(lm.decoder).totalParameters).toBe(r.parameters);
    });
  }

  it('keeps what changes the numbers: llama3 rope scaling, sliding window, Qwen2 q/k/v biases, head_dim', () => {
    const llama32 = causalLmParams(new ConfigReader(REAL[4].config), 'llama').decoder;
    expect(llama32.rope_scaling).toEqual({ rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 });
    expect(llama32.tie_word_embeddings).toBe(true);
    expect(causalLmParams(new ConfigReader(REAL[5].config), 'mistral').decoder.sliding_window).toBe(4096);
    expect(causalLmParams(new ConfigReader(REAL[2].config), 'qwen2').decoder.attention_bias).toBe('qkv');
    // transformers v5 moves rope_theta into rope_parameters.
    const v5 = { ...REAL[3].config, rope_theta: undefined, rope_parameters: { rope_type: 'default', rope_theta: 1e6 } };
    expect(causalLmParams(new ConfigReader(v5), 'llama').decoder.rope_theta).toBe(1e6);
  });
});
