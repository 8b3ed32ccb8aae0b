// Real sizes: writes random-weight folders at real models' shapes, as save_pretrained lays them out, imports them
// with `importHfFolder` and measures, each row in its own child process (so its peak resident set is its own):
//   decoder  TinyLlama-1.1B (LLaMA, 22 layers, GQA 32/4, 1.1 B parameters, BF16, two shards): load seconds,
//            first-token latency, tokens/s;
//   clip     CLIP ViT-L/14 (openai/clip-vit-large-patch14's shapes: 24-layer 1024-wide vision tower, 12-layer
//            768-wide text tower, 0.43 B parameters, F32, one file): load seconds, forward latency;
//   lora     one LoRA train step on the 1.1B decoder (recipe `lm` with `--adapter lora`, as `vlmc train` runs it,
//            batch 1, one shapes caption ≈ 20–30 tokens): build seconds, step seconds.
// Every row prints its peak RSS (the kernel's VmHWM) against the float32 bytes of its weights, what onnxruntime
// holds (the aim of issue 11 is ≤ 1.3×). Not a test: it needs ~6 GB of memory per row and a few minutes.
//
//   npx tsx bench/real-size.ts [--dir DIR] [--tokens N] [--rows decoder,clip,lora] [--steps N] [--keep] [--json]

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Executor, type RunEvent } from '../electron/engine/executor.js';
import { Trainer } from '../electron/engine/trainer/trainer.js';
import { openHfFolder } from '../electron/formats/hf/folder.js';
import { importHfFolder } from '../electron/formats/hf/import.js';
import type { Tensor } from '../electron/onnx/ir.js';
import { writeSafetensors } from '../electron/onnx/safetensors.js';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const root = flag('dir') ?? tmpdir();
const decoderDir = join(root, 'composer-real-size-tinyllama');
const clipDir = join(root, 'composer-real-size-clip-vit-l-14');
const newTokens = Number(flag('tokens') ?? 16);
const trainSteps = Number(flag('steps') ?? 2);
const ROWS = ['decoder', 'clip', 'lora'] as const;
type Row = (typeof ROWS)[number];
const rows = (flag('rows')?.split(',') ?? [...ROWS]) as Row[];
for (const r of rows) if (!ROWS.includes(r)) throw new Error(`--rows: unknown row '${r}' (one of ${ROWS.join(', ')})`);

/** TinyLlama-1.1B-Chat-v1.0's config.json (the published values). */
const LLAMA = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 32000, hidden_size: 2048, intermediate_size: 5632,
  num_hidden_layers: 22, num_attention_heads: 32, num_key_value_heads: 4, max_position_embeddings: 2048, rms_norm_eps: 1e-5,
  rope_theta: 10000.0, tie_word_embeddings: false, hidden_act: 'silu', bos_token_id: 1, eos_token_id: 2, torch_dtype: 'bfloat16',
};

/** openai/clip-vit-large-patch14's config.json; the token ids are those of the stand-in tokenizer (see writeClip). */
const CLIP = {
  architectures: ['CLIPModel'], model_type: 'clip', projection_dim: 768, logit_scale_init_value: 2.6592, torch_dtype: 'float32',
  text_config: {
    model_type: 'clip_text_model', hidden_size: 768, intermediate_size: 3072, num_attention_heads: 12, num_hidden_layers: 12,
    max_position_embeddings: 77, vocab_size: 49408, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5, projection_dim: 768,
    bos_token_id: 317, eos_token_id: 316, pad_token_id: 316,
  },
  vision_config: {
    model_type: 'clip_vision_model', hidden_size: 1024, intermediate_size: 4096, num_attention_heads: 16, num_hidden_layers: 24,
    image_size: 224, patch_size: 14, num_channels: 3, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5, projection_dim: 768,
  },
};

/** ±0.034-uniform values (std ≈ 0.02) from a xorshift stream: fast, and only plausible values are needed. */
function fillRandom(n: number, seed: number, put: (i: number, v: number) => void, scale = 0.02): void {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    put(i, ((s >>> 0) / 2 ** 32 - 0.5) * 2 * scale * 1.7);
  }
}

function randomBf16(dims: number[], seed: number): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  const bits = new Uint16Array(n);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  fillRandom(n, seed, (i, v) => {
    f[0] = v;
    bits[i] = u[0] >>> 16;
  });
  return { dtype: 'bfloat16', dims, data: bits } as Tensor;
}

function randomF32(dims: number[], seed: number): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  fillRandom(n, seed, (i, v) => (data[i] = v));
  return { dtype: 'float32', dims, data };
}

const TOKENIZER = join(import.meta.dirname, '..', 'models', 'tokenizer.json');
const CLIP_FIXTURE = join(import.meta.dirname, '..', 'electron', 'formats', 'hf', 'testdata', 'clip');

function writeDecoder(dir: string): void {
  const c = LLAMA;
  const H = c.hidden_size;
  const kv = (H / c.num_attention_heads) * c.num_key_value_heads;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c, null, 2));
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 1, eos_token_id: 2, max_new_tokens: newTokens }));
  // The built-in word-level tokenizer stands in for LLaMA's (only ids 0…315 are ever produced from text).
  copyFileSync(TOKENIZER, join(dir, 'tokenizer.json'));
  let seed = 1;
  let bytes = 0;
  const ones = (n: number): Tensor => ({ dtype: 'bfloat16', dims: [n], data: new Uint16Array(n).fill(0x3f80) });
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
    m.clear();
  });
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: bytes }, weight_map: weightMap }));
}

/**
 * CLIPModel at ViT-L/14's shapes: the tensor names of our CLIP fixture (transformers' state dict, written by
 * tools/hf_reference.py) with each of its small dims replaced by the real one, F32 in one model.safetensors as
 * the published checkpoint. The fixture's tokenizer (318 ids) and processor files stand in for CLIP's.
 */
function writeClip(dir: string): void {
  const vision: Record<number, number> = { 32: 1024, 64: 4096, 17: 257, 8: 14, 24: 768, 3: 3 };
  const text: Record<number, number> = { 40: 768, 80: 3072, 16: 77, 318: 49408, 24: 768 };
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(CLIP, null, 2));
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(CLIP_FIXTURE, f), join(dir, f));
  const pre = JSON.parse(readFileSync(join(CLIP_FIXTURE, 'preprocessor_config.json'), 'utf8'));
  writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify({ ...pre, crop_size: { height: 224, width: 224 }, size: { shortest_edge: 224 } }, null, 2));
  const tensors = new Map<string, Tensor>();
  let seed = 1000;
  // The fixture has 2 layers per tower: layer 0's tensors stand for every layer.
  const layers = (name: string) => (name.startsWith('vision_model.') ? CLIP.vision_config : CLIP.text_config).num_hidden_layers;
  const names = [...openHfFolder(CLIP_FIXTURE).weights.tensors].flatMap(([name, e]) =>
    /\.layers\.0\./.test(name)
      ? Array.from({ length: layers(name) }, (_, i) => [name.replace('.layers.0.', `.layers.${i}.`), e] as const)
      : /\.layers\.\d+\./.test(name) ? [] : [[name, e] as const],
  );
  for (const [name, e] of names) {
    const map = name.startsWith('vision_model.') || name.startsWith('visual_projection.') ? vision : text;
    const dims = e.shape.map((d) => {
      const real = map[d];
      if (real === undefined) throw new Error(`writeClip: no real size for dim ${d} of '${name}'`);
      return real;
    });
    const n = dims.reduce((a, b) => a * b, 1);
    if (name === 'logit_scale') tensors.set(name, { dtype: 'float32', dims, data: Float32Array.of(CLIP.logit_scale_init_value) });
    else if (/(norm\d?|layrnorm|layernorm)\.weight$/.test(name)) tensors.set(name, { dtype: 'float32', dims, data: new Float32Array(n).fill(1) });
    else if (name.endsWith('.bias')) tensors.set(name, { dtype: 'float32', dims, data: new Float32Array(n) });
    else tensors.set(name, randomF32(dims, seed++));
  }
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
}

// ---------------------------------------------------------------- measuring (children)

/** The kernel's peak resident set of this process (VmHWM), in bytes; maxRSS where /proc is missing. */
function peakRss(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS * 1024;
}

interface Result {
  row: Row;
  model: string;
  parameters: number;
  /** float32 bytes of the weights: what onnxruntime holds. */
  weightBytes: number;
  storedBytes: number;
  importS: number;
  loadS?: number;
  firstTokenS?: number;
  tokensPerS?: number;
  forwardMs?: number;
  buildS?: number;
  stepS?: number[];
  loss?: number[];
  peakRss: number;
  notes: string[];
}

function imported(dir: string) {
  const t = performance.now();
  const res = importHfFolder(dir);
  return { ...res, importS: (performance.now() - t) / 1000 };
}

async function measureDecoder(): Promise<Result> {
  const { doc, summary, importS } = imported(decoderDir);
  const executor = new Executor();
  const generateOnce = async (text: string) => {
    let started = 0;
    const times: number[] = [];
    const onEvent = (e: RunEvent) => {
      if (e.type === 'started' && e.node === 'llm') started = performance.now();
      if (e.type === 'progress' && e.node === 'llm' && e.detail === 'token') times.push(performance.now());
    };
    const withTokens = { ...doc, nodes: doc.nodes.map((n) => (n.type === 'llm.decoder' ? { ...n, params: { ...n.params, max_new_tokens: newTokens, eos_token_ids: [] } } : n)) };
    await executor.run(withTokens, { baseDir: decoderDir, inputs: { prompt: { text } }, onEvent });
    const first = (times[0] - started) / 1000;
    const rate = times.length > 1 ? (times.length - 1) / ((times.at(-1)! - times[0]) / 1000) : 0;
    return { first, rate, tokens: times.length };
  };
  // Cold: the decoder's session is built (weights read, streamed to onnxruntime) before its first token. Warm: the
  // same session, another prompt (so no cached output), gives the first-token latency itself.
  const cold = await generateOnce('a red circle on the left of a blue square');
  const warm = await generateOnce('two green triangles at the top');
  await executor.dispose();
  return {
    row: 'decoder', model: `TinyLlama-1.1B shapes (${summary.class}, ${summary.dtypes.join('/')})`, parameters: summary.parameters,
    weightBytes: summary.parameters * 4, storedBytes: summary.weightBytes, importS,
    loadS: cold.first - warm.first, firstTokenS: warm.first, tokensPerS: Math.max(cold.rate, warm.rate), peakRss: peakRss(),
    notes: [`${cold.tokens} + ${warm.tokens} tokens generated; cold first token ${cold.first.toFixed(1)} s`],
  };
}

async function measureClip(): Promise<Result> {
  const { doc, summary, importS } = imported(clipDir);
  const executor = new Executor();
  const pixels = (seed: number): Tensor => randomF32([1, 3, 224, 224], seed);
  const target = doc.nodes.find((n) => n.type === 'head.zero_shot')?.id;
  const vit = doc.nodes.find((n) => n.type === 'encoder.clip_vit')?.id;
  if (!target || !vit) throw new Error('the CLIP import has no zero-shot head or vision tower');
  const forward = async (seed: number) => {
    const t = performance.now();
    await executor.run(doc, { baseDir: clipDir, targets: [target], inputs: { prompt: { text: 'a photo of a cat;a photo of a dog;a diagram' } }, feeds: { image: { pixel_values: pixels(seed) } } });
    return (performance.now() - t) / 1000;
  };
  const cold = await forward(1);
  // Warm: sessions built and the labels' text features cached; a new picture runs the vision tower and the head.
  const warm = [await forward(2), await forward(3)];
  const warmS = Math.min(...warm);
  await executor.dispose();
  return {
    row: 'clip', model: `CLIP ViT-L/14 shapes (${summary.class}, ${summary.dtypes.join('/')})`, parameters: summary.parameters,
    weightBytes: summary.parameters * 4, storedBytes: summary.weightBytes, importS, loadS: cold - warmS, forwardMs: warmS * 1000,
    peakRss: peakRss(), notes: [`first run ${cold.toFixed(1)} s (both towers' sessions, 3 labels, one 224×224 picture)`],
  };
}

async function measureLora(): Promise<Result> {
  const { doc, summary, importS } = imported(decoderDir);
  const t0 = performance.now();
  let built = 0;
  const stepMs: number[] = [];
  const loss: number[] = [];
  let elapsed = 0;
  let trainable = 0;
  const trainer = await Trainer.create({
    graph: doc, baseDir: decoderDir, recipe: 'lm', adapter: { method: 'lora', config: {} }, steps: trainSteps, batchSize: 1,
    dataset: 'shapes', datasetSize: 8, evalAtEnd: false,
    onEvent: (e) => {
      if (e.type === 'started') {
        built = (performance.now() - t0) / 1000;
        trainable = e.trainable;
      }
      if (e.type === 'step') {
        stepMs.push(e.elapsedMs - elapsed);
        elapsed = e.elapsedMs;
        loss.push(e.loss);
      }
    },
  });
  try {
    await trainer.run();
  } finally {
    await trainer.dispose();
  }
  return {
    row: 'lora', model: `LoRA train step on TinyLlama-1.1B shapes (recipe lm, batch 1)`, parameters: summary.parameters,
    weightBytes: summary.parameters * 4, storedBytes: summary.weightBytes, importS, buildS: built, stepS: stepMs.map((m) => m / 1000), loss,
    peakRss: peakRss(), notes: [`${trainable} trainable LoRA parameters; build = fuse + autodiff + the train step's onnxruntime session`],
  };
}

// ---------------------------------------------------------------- main

const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
const fmt = (v: number | undefined, digits = 1) => (v === undefined ? '—' : v.toFixed(digits));

async function child(row: Row): Promise<void> {
  const r = row === 'decoder' ? await measureDecoder() : row === 'clip' ? await measureClip() : await measureLora();
  process.stdout.write(`RESULT ${JSON.stringify(r)}\n`);
}

function main(): void {
  const json = args.includes('--json');
  const log = (line: string) => (json ? process.stderr : process.stdout).write(`${line}\n`);
  const needs = { decoder: decoderDir, lora: decoderDir, clip: clipDir } as const;
  for (const dir of new Set(rows.map((r) => needs[r]))) {
    if (existsSync(join(dir, 'config.json'))) continue;
    const t = performance.now();
    if (dir === decoderDir) writeDecoder(dir);
    else writeClip(dir);
    log(`wrote ${dir} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
  const results: Result[] = [];
  for (const row of rows) {
    const passthrough = ['--dir', root, '--tokens', String(newTokens), '--steps', String(trainSteps)];
    const res = spawnSync(process.execPath, ['--import', 'tsx', import.meta.filename, '--child', row, ...passthrough], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 * 2 ** 20,
    });
    const line = res.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (res.status !== 0 || !line) {
      log(`row ${row}: the child exited with ${res.status ?? res.signal}\n${res.stdout}`);
      continue;
    }
    const r = JSON.parse(line.slice(7)) as Result;
    results.push(r);
    if (json) process.stdout.write(`${JSON.stringify(r)}\n`);
  }
  log(`load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} (2 shared cores)`);
  log('row      parameters  f32 weights  import s  load s  first token s  tokens/s  forward ms  build s  step s       peak RSS   RSS/weights');
  for (const r of results) {
    log(
      `${r.row.padEnd(8)} ${`${(r.parameters / 1e9).toFixed(3)} B`.padEnd(11)} ${gib(r.weightBytes).padEnd(12)} ${fmt(r.importS, 2).padEnd(9)} ` +
        `${fmt(r.loadS).padEnd(7)} ${fmt(r.firstTokenS, 2).padEnd(14)} ${fmt(r.tokensPerS, 2).padEnd(9)} ${fmt(r.forwardMs, 0).padEnd(11)} ` +
        `${fmt(r.buildS).padEnd(8)} ${(r.stepS ? r.stepS.map((s) => s.toFixed(1)).join(', ') : '—').padEnd(12)} ${gib(r.peakRss).padEnd(10)} ` +
        `${(r.peakRss / r.weightBytes).toFixed(2)}×`,
    );
  }
  for (const r of results) log(`${r.row}: ${r.model}; ${gib(r.storedBytes)} stored; ${r.notes.join('; ')}${r.loss ? `; loss ${r.loss.map((l) => l.toFixed(3)).join(' → ')}` : ''}`);
  if (!args.includes('--keep')) for (const dir of new Set(rows.map((r) => needs[r]))) rmSync(dir, { recursive: true, force: true });
}

const childRow = flag('child');
if (childRow) await child(childRow as Row);
else main();
