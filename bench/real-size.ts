// Real sizes: writes a random-weight BF16 folder at a real decoder's shapes (TinyLlama-1.1B: LLaMA, 22 layers,
// GQA 32/4, 1.1 B parameters), imports it with `importHfFolder`, generates, and prints load seconds, first-token
// latency, tokens/s and peak RSS against the weight bytes. Not a test: it needs ~12 GB of memory and minutes.
//
//   npx tsx bench/real-size.ts [--dir DIR] [--tokens N] [--keep]

import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Executor, type RunEvent } from '../electron/engine/executor.js';
import { importHfFolder } from '../electron/formats/hf/import.js';
import type { Tensor } from '../electron/onnx/ir.js';
import { writeSafetensors } from '../electron/onnx/safetensors.js';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const dir = flag('dir') ?? join(tmpdir(), 'composer-real-size-tinyllama');
const newTokens = Number(flag('tokens') ?? 16);

/** TinyLlama-1.1B-Chat-v1.0's config.json (the published values). */
const CONFIG = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 32000, hidden_size: 2048, intermediate_size: 5632,
  num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 4, max_position_embeddings: 2048, rms_norm_eps: 1e-5,
  rope_theta: 10000.0, tie_word_embeddings: false, hidden_act: 'silu', bos_token_id: 1, eos_token_id: 2, torch_dtype: 'bfloat16',
};

/** N(0, 0.02²)-like bf16 values from a xorshift stream (fast; the values only need to be plausible). */
function randomBf16(dims: number[], seed: number, scale = 0.02): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  const bits = new Uint16Array(n);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    f[0] = ((s >>> 0) / 2 ** 32 - 0.5) * 2 * scale * 1.7;
    bits[i] = u[0] >>> 16;
  }
  return { dtype: 'bfloat16', dims, data: bits } as Tensor;
}

function ones(n: number): Tensor {
  return { dtype: 'bfloat16', dims: [n], data: new Uint16Array(n).fill(0x3f80) } as Tensor;
}

function writeFolder(): number {
  const c = CONFIG;
  const H = c.hidden_size;
  const kv = (H / c.num_attention_heads) * c.num_key_value_heads;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c, null, 2));
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 1, eos_token_id: 2, max_new_tokens: newTokens }));
  // The built-in word-level tokenizer stands in for LLaMA's (only ids 0…315 are ever produced from text).
  copyFileSync(join(import.meta.dirname, '..', 'models', 'tokenizer.json'), join(dir, 'tokenizer.json'));
  let seed = 1;
  let bytes = 0;
  // Two shards, as save_pretrained writes models past its shard size.
  const shards: Array<Map<string, Tensor>> = [new Map(), new Map()];
  const put = (shard: number, name: string, t: Tensor) => {
    shards[shard].set(name, t);
    bytes += (t.data as Uint16Array).byteLength;
  };
  put(0, 'model.embed_tokens.weight', randomBf16([c.vocab_size, H], seed++));
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const s = i < c.num_hidden_layers / 2 ? 0 : 1;
    const p = `model.layers.${i}.`;
    put(s, `${p}input_layernorm.weight`, ones(H));
    put(s, `${p}self_attn.q_proj.weight`, randomBf16([H, H], seed++));
    put(s, `${p}self_attn.k_proj.weight`, randomBf16([kv, H], seed++));
    put(s, `${p}self_attn.v_proj.weight`, randomBf16([kv, H], seed++));
    put(s, `${p}self_attn.o_proj.weight`, randomBf16([H, H], seed++));
    put(s, `${p}post_attention_layernorm.weight`, ones(H));
    put(s, `${p}mlp.gate_proj.weight`, randomBf16([c.intermediate_size, H], seed++));
    put(s, `${p}mlp.up_proj.weight`, randomBf16([c.intermediate_size, H], seed++));
    put(s, `${p}mlp.down_proj.weight`, randomBf16([H, c.intermediate_size], seed++));
  }
  put(1, 'model.norm.weight', ones(H));
  put(1, 'lm_head.weight', randomBf16([c.vocab_size, H], seed++));
  const names = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  const weightMap: Record<string, string> = {};
  shards.forEach((m, i) => {
    for (const k of m.keys()) weightMap[k] = names[i];
    writeSafetensors(join(dir, names[i]), m, { format: 'pt' });
  });
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: bytes }, weight_map: weightMap }));
  return bytes;
}

const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;

async function main(): Promise<void> {
  if (!existsSync(join(dir, 'config.json'))) {
    const t = performance.now();
    writeFolder();
    console.log(`wrote ${dir} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
  const t0 = performance.now();
  const { doc, summary } = importHfFolder(dir);
  const importS = (performance.now() - t0) / 1000;
  const executor = new Executor();
  let firstToken = 0;
  let started = 0;
  let tokens = 0;
  let lastToken = 0;
  const onEvent = (e: RunEvent) => {
    if (e.type === 'started' && e.node === 'llm') started = performance.now();
    if (e.type === 'progress' && e.node === 'llm' && e.detail === 'token') {
      tokens++;
      lastToken = performance.now();
      if (tokens === 1) firstToken = lastToken;
    }
  };
  const t1 = performance.now();
  const res = await executor.run(
    { ...doc, nodes: doc.nodes.map((n) => (n.type === 'llm.decoder' ? { ...n, params: { ...n.params, max_new_tokens: newTokens, eos_token_ids: [] } } : n)) },
    { baseDir: dir, inputs: { prompt: { text: 'a red circle on the left of a blue square' } }, onEvent },
  );
  const total = (performance.now() - t1) / 1000;
  const rss = process.resourceUsage().maxRSS * 1024;
  const loadS = (started ? firstToken - started : 0) / 1000;
  console.log(`load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  console.log(`model: ${summary.class}, ${(summary.parameters / 1e9).toFixed(3)} B parameters, ${summary.dtypes.join('/')}, ${gib(summary.weightBytes)} of weights in ${summary.files.filter((f) => f.name.endsWith('.safetensors')).length} shards`);
  console.log(`import (headers, shapes): ${importS.toFixed(2)} s`);
  console.log(`decoder load + first token: ${loadS.toFixed(1)} s (run total ${total.toFixed(1)} s, ${res.computed.length} nodes)`);
  const rate = tokens > 1 ? (tokens - 1) / ((lastToken - firstToken) / 1000) : 0;
  console.log(`generation: ${tokens} tokens, ${rate.toFixed(2)} tokens/s after the first`);
  console.log(`peak RSS: ${gib(rss)} = ${(rss / summary.weightBytes).toFixed(2)}× the BF16 weight bytes, ${(rss / (summary.parameters * 4)).toFixed(2)}× their float32 size`);
  await executor.dispose();
  if (!args.includes('--keep')) rmSync(dir, { recursive: true, force: true });
}

await main();
