// Generation through an imported decoder (`model.onnx_import` with generation params): a Transformers.js / Optimum
// `model.onnx` (input_ids → logits) or `decoder_model_merged.onnx` (inputs_embeds or input_ids, `use_cache_branch`),
// with the KV cache over its `past_key_values.{i}.key|value → present.{i}.key|value` ports. The same loop as our own
// decoder (generate.ts): greedy, temperature, top-k, top-p, stop tokens, cancellation between tokens.

import type * as ort from 'onnxruntime-node';
import type { Graph, Tensor } from '../onnx/ir.js';
import { importedGeneration } from '../nodes/imported.js';
import { type CancelSignal, type DecoderSpec, GenerateError, decoderFromSession, generate } from './generate.js';
import { tokenizerFor } from './host-steps/text.js';

const PAST = /^past_key_values\.(\d+)\.(key|value)$/;

/**
 * The cache layout an imported decoder's file declares, checked so a decoder that cannot generate is an error naming
 * the file and the port: `logits` out, `attention_mask` and `input_ids` or `inputs_embeds` in, and for every layer
 * `past_key_values.{i}.key|value` in (rank 4, known head count and head size) with `present.{i}.key|value` out.
 */
export function importedDecoderSpec(graph: Graph, file: string): DecoderSpec {
  const inputs = new Map(graph.inputs.map((v) => [v.name, v]));
  const outputs = new Set(graph.outputs.map((v) => v.name));
  const list = (names: Iterable<string>) => [...names].join(', ');
  if (!outputs.has('logits')) throw new GenerateError(`${file}: the decoder has no 'logits' output (outputs: ${list(outputs)})`);
  const input = inputs.has('inputs_embeds') ? 'inputs_embeds' : inputs.has('input_ids') ? 'input_ids' : undefined;
  if (!input) throw new GenerateError(`${file}: the decoder has neither an 'input_ids' nor an 'inputs_embeds' input (inputs: ${list(inputs.keys())})`);
  if (!inputs.has('attention_mask')) throw new GenerateError(`${file}: the decoder has no 'attention_mask' input (inputs: ${list(inputs.keys())})`);
  const layers = new Set<number>();
  for (const name of inputs.keys()) {
    const m = PAST.exec(name);
    if (m) layers.add(Number(m[1]));
  }
  if (layers.size === 0) {
    throw new GenerateError(`${file}: the decoder has no 'past_key_values.{i}.key' inputs, so it cannot generate with the KV cache (inputs: ${list(inputs.keys())})`);
  }
  const numLayers = layers.size;
  let numKvHeads = 0;
  let headDim = 0;
  for (let i = 0; i < numLayers; i++) {
    for (const part of ['key', 'value']) {
      const name = `past_key_values.${i}.${part}`;
      const v = inputs.get(name);
      if (!v) throw new GenerateError(`${file}: input '${name}' is missing (layers ${[...layers].sort((a, b) => a - b).join(', ')} have past inputs)`);
      if (!outputs.has(`present.${i}.${part}`)) throw new GenerateError(`${file}: input '${name}' has no matching output 'present.${i}.${part}'`);
      const shape = v.shape;
      if (!shape || shape.length !== 4 || typeof shape[1] !== 'number' || typeof shape[3] !== 'number') {
        throw new GenerateError(`${file}: input '${name}' must be [batch, kv_heads, past_length, head_dim] with known kv_heads and head_dim, got [${shape?.map((d) => d ?? '?').join(', ') ?? 'unknown'}]`);
      }
      if (v.dtype !== 'float32') throw new GenerateError(`${file}: input '${name}' is ${v.dtype}; Composer's KV cache is float32`);
      if (numKvHeads === 0) [numKvHeads, headDim] = [shape[1], shape[3]];
    }
  }
  let hiddenSize = 1;
  if (input === 'inputs_embeds') {
    const d = inputs.get('inputs_embeds')!.shape?.[2];
    if (typeof d !== 'number') throw new GenerateError(`${file}: input 'inputs_embeds' must be [batch, sequence, hidden] with a known hidden size`);
    hiddenSize = d;
  }
  return { numLayers, numKvHeads, headDim, hiddenSize, input };
}

export interface ImportedGenerationContext {
  nodeId: string;
  params: unknown;
  session: ort.InferenceSession;
  graph: Graph;
  feeds: Record<string, Tensor>;
  baseDir: string;
  /** Embeds new tokens for an inputs_embeds decoder (resolved only when needed). */
  embedder: () => Promise<(ids: Tensor) => Promise<Tensor>>;
  signal?: CancelSignal;
  onToken?: (step: number, total: number) => void;
}

/** Runs the KV-cache loop over an imported decoder's session. */
export async function generateImported(ctx: ImportedGenerationContext): Promise<{ text: string; generated_ids: Tensor }> {
  const gen = importedGeneration(ctx.params);
  if (!gen) throw new GenerateError(`node '${ctx.nodeId}': has no generation params`);
  const file = String((ctx.params as { path?: unknown }).path ?? ctx.nodeId);
  const spec = importedDecoderSpec(ctx.graph, file);
  if (gen.max_positions !== null) spec.maxPositions = gen.max_positions;
  const tok = tokenizerFor(gen.tokenizer, ctx.baseDir);
  const eos = tok.specialIds.eos;
  const prompt = ctx.feeds[spec.input ?? 'inputs_embeds'];
  if (!prompt) throw new GenerateError(`node '${ctx.nodeId}': input '${spec.input}' is not connected`);
  const res = await generate({
    decoder: decoderFromSession(ctx.session, spec, `node '${ctx.nodeId}' (${file})`),
    embedTokens: spec.input === 'inputs_embeds' ? await ctx.embedder() : undefined,
    inputsEmbeds: spec.input === 'inputs_embeds' ? prompt : undefined,
    inputIds: spec.input === 'input_ids' ? prompt : undefined,
    attentionMask: ctx.feeds.attention_mask,
    maxNewTokens: gen.max_new_tokens,
    stopTokens: gen.eos_token_ids ?? (eos === undefined ? [] : [eos]),
    sampling: gen.temperature > 0 ? { temperature: gen.temperature, topK: gen.top_k, topP: gen.top_p } : undefined,
    seed: gen.sample_seed,
    useCache: gen.use_cache,
    signal: ctx.signal,
    decode: (ids) => tok.decode(ids),
    onToken: (e) => ctx.onToken?.(e.step + 1, gen.max_new_tokens),
  });
  if (res.stoppedBy === 'cancelled') throw new GenerateError('run cancelled');
  const rows = res.tokens;
  const width = Math.max(0, ...rows.map((r) => r.length));
  const ids = new BigInt64Array(rows.length * width);
  rows.forEach((r, b) => r.forEach((t, j) => (ids[b * width + j] = BigInt(t))));
  return { text: (res.text ?? []).join('\n'), generated_ids: { dtype: 'int64', dims: [rows.length, width], data: ids } };
}
