// A tiny LLaMA folder as `save_pretrained` writes it (config.json, model.safetensors with transformers' state-dict
// names, tokenizer.json + tokenizer_config.json, generation_config.json), random weights in BF16: what the host
// tests and e2e/models.spec.ts import. The tokenizer is the built-in one (models/tokenizer.json, 316 words).

import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Tensor, tensorFromNumbers } from '../../onnx/ir.js';
import { writeSafetensors } from '../../onnx/safetensors.js';

const TOKENIZER = join(import.meta.dirname, '..', '..', '..', 'models', 'tokenizer.json');

export const TINY_LLAMA = { vocab: 316, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 64, positions: 128 } as const;

/** Parameters of the folder's tensors (what the import summary counts). */
export function tinyLlamaParameters(): number {
  const { vocab: V, hidden: H, layers: L, heads, kvHeads, intermediate: I } = TINY_LLAMA;
  const d = H / heads;
  const layer = 2 * H + heads * d * H + 2 * kvHeads * d * H + H * heads * d + 3 * I * H;
  return 2 * V * H + L * layer + H;
}

function random(dims: number[], seed: number, scale = 0.08): Tensor {
  let s = seed >>> 0;
  const n = dims.reduce((a, b) => a * b, 1);
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    values[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return tensorFromNumbers('bfloat16', dims, values);
}

const ones = (n: number): Tensor => tensorFromNumbers('bfloat16', [n], new Float32Array(n).fill(1));

/** Writes the folder into `dir` (created) and returns it. */
export function writeTinyLlamaFolder(dir: string): string {
  const { vocab: V, hidden: H, layers: L, heads, kvHeads, intermediate: I, positions } = TINY_LLAMA;
  const d = H / heads;
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      vocab_size: V,
      hidden_size: H,
      intermediate_size: I,
      num_hidden_layers: L,
      num_attention_heads: heads,
      num_key_value_heads: kvHeads,
      max_position_embeddings: positions,
      rms_norm_eps: 1e-6,
      rope_theta: 10000,
      hidden_act: 'silu',
      tie_word_embeddings: false,
      bos_token_id: 1,
      eos_token_id: 2,
      torch_dtype: 'bfloat16',
    }, null, 2),
  );
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 1, eos_token_id: 2, max_new_tokens: 6 }));
  copyFileSync(TOKENIZER, join(dir, 'tokenizer.json'));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', pad_token: '<pad>', add_bos_token: true }));
  const t = new Map<string, Tensor>();
  let seed = 1;
  t.set('model.embed_tokens.weight', random([V, H], seed++, 0.5));
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.`;
    t.set(`${p}input_layernorm.weight`, ones(H));
    t.set(`${p}self_attn.q_proj.weight`, random([heads * d, H], seed++));
    t.set(`${p}self_attn.k_proj.weight`, random([kvHeads * d, H], seed++));
    t.set(`${p}self_attn.v_proj.weight`, random([kvHeads * d, H], seed++));
    t.set(`${p}self_attn.o_proj.weight`, random([H, heads * d], seed++));
    t.set(`${p}post_attention_layernorm.weight`, ones(H));
    t.set(`${p}mlp.gate_proj.weight`, random([I, H], seed++));
    t.set(`${p}mlp.up_proj.weight`, random([I, H], seed++));
    t.set(`${p}mlp.down_proj.weight`, random([H, I], seed++));
  }
  t.set('model.norm.weight', ones(H));
  t.set('lm_head.weight', random([V, H], seed++, 0.5));
  writeSafetensors(join(dir, 'model.safetensors'), t, { format: 'pt' });
  return dir;
}
