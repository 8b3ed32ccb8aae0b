/**
 * Autoregressive generation over a decoder that takes `inputs_embeds` (our `llm.decoder` fragment or an imported
 * Optimum / Transformers.js decoder): greedy or sampled (temperature, top-k, top-p) with a seeded RNG, stop tokens,
 * a token budget, cancellation checked before every step and a callback per token.
 *
 * With the KV cache (default) the prompt runs once with zero-length past tensors, then each step feeds only the new
 * token's embedding, the grown mask, its position and the previous step's `present.*` as `past_key_values.*`.
 * Without it every step re-runs the whole sequence; both give the same tokens (generate.test.ts checks this).
 * Positions follow Transformers.js: cumsum(attention_mask) − 1, so left-padded batches line up.
 */
import type * as ort from 'onnxruntime-node';
import type { Model, Tensor } from '../onnx/ir.js';
import { createSession, runSession, type SessionOptions } from '../onnx/ort.js';
import { Rng, type Seed } from './rng.js';

export class GenerateError extends Error {
  override name = 'GenerateError';
}

/** What the loop needs to know about a decoder to make its cache tensors. */
export interface DecoderSpec {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  hiddenSize: number;
  /** Longest sequence the position table covers; generation stops before exceeding it. */
  maxPositions?: number;
  /**
   * What the decoder reads: embeddings (our llm.decoder, a VLM's decoder_model_merged) or token ids (a text-only
   * Transformers.js model.onnx, which embeds inside). Default 'inputs_embeds'.
   */
  input?: 'inputs_embeds' | 'input_ids';
}

/** One forward pass of a decoder: feeds by port name → outputs by port name. */
export interface DecoderRunner {
  spec: DecoderSpec;
  run(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>>;
}

/** Token ids [B,S] int64 → embeddings [B,S,D] float32. */
export type EmbedTokens = (inputIds: Tensor) => Tensor | Promise<Tensor>;

/** Anything with an `aborted` flag (an AbortSignal qualifies). */
export interface CancelSignal {
  readonly aborted: boolean;
}

export interface SamplingOptions {
  /** Softmax temperature; 0 means greedy. Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 = off). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1 = off). */
  topP?: number;
}

export type StopReason = 'stop_token' | 'max_new_tokens' | 'max_positions' | 'cancelled';

export interface TokenEvent {
  step: number;
  /** The token chosen for each row this step (null for rows that had already finished). */
  tokens: Array<number | null>;
  finished: boolean[];
}

export interface GenerateOptions {
  decoder: DecoderRunner;
  /** Embeds each new token (decoders that read inputs_embeds); not used by decoders that read input_ids. */
  embedTokens?: EmbedTokens;
  /** Prompt embeddings [B,N,D] (image features merged with the embedded prompt), for inputs_embeds decoders. */
  inputsEmbeds?: Tensor;
  /** Prompt token ids [B,N] int64, for decoders that read input_ids. */
  inputIds?: Tensor;
  /** Prompt mask [B,N] int64; default all ones. Batches of different lengths should be left-padded. */
  attentionMask?: Tensor;
  /** Default 32. */
  maxNewTokens?: number;
  /** Generation of a row ends when it produces one of these (the stop token is not part of `tokens`). */
  stopTokens?: number[];
  /** Fed for rows that have finished while others continue. Default 0. */
  padTokenId?: number;
  /** Absent: greedy. */
  sampling?: SamplingOptions;
  /** Seed of the sampling RNG (ignored when greedy). Default 0. */
  seed?: Seed;
  /** Default true. */
  useCache?: boolean;
  /** Only ids below this can be produced (a tokenizer smaller than the LM head). Default: all. */
  vocabLimit?: number;
  signal?: CancelSignal;
  onToken?: (event: TokenEvent) => void;
  /** Turns a row's tokens into text for the result. */
  decode?: (ids: number[]) => string;
}

export interface GenerateResult {
  /** New tokens per row, without the stop token. */
  tokens: number[][];
  text?: string[];
  /** Decoder forward passes run. */
  steps: number;
  /** Why the loop ended. */
  stoppedBy: StopReason;
  /** Why each row ended. */
  rowStoppedBy: StopReason[];
}

// ---------------------------------------------------------------------------------------------------------------
// Decoders from sessions and models

const PAST_KEY = /^past_key_values\.(\d+)\.key$/;

function dimOf(meta: ort.InferenceSession.ValueMetadata | undefined, axis: number): number | undefined {
  if (!meta || !meta.isTensor) return undefined;
  const d = meta.shape[axis];
  return typeof d === 'number' && d > 0 ? d : undefined;
}

/**
 * Wraps an ORT session of a decoder. Cache sizes come from the session's input metadata unless given; inputs the
 * model does not have (e.g. `position_ids` of older exports) are not fed, and a legacy merged decoder's
 * `use_cache_branch` is set from whether the past is empty.
 */
export function decoderFromSession(session: ort.InferenceSession, spec: Partial<DecoderSpec> = {}, label = 'decoder'): DecoderRunner {
  const inputs = new Set(session.inputNames);
  const meta = new Map(session.inputMetadata.map((m) => [m.name, m]));
  const input = spec.input ?? (inputs.has('inputs_embeds') || !inputs.has('input_ids') ? 'inputs_embeds' : 'input_ids');
  for (const required of [input, 'attention_mask']) {
    if (!inputs.has(required)) throw new GenerateError(`${label}: the model has no '${required}' input (inputs: ${[...inputs].join(', ')})`);
  }
  const layers = [...inputs].map((n) => PAST_KEY.exec(n)).filter((m) => m !== null).length;
  const full: DecoderSpec = {
    numLayers: spec.numLayers ?? layers,
    numKvHeads: spec.numKvHeads ?? dimOf(meta.get('past_key_values.0.key'), 1) ?? 0,
    headDim: spec.headDim ?? dimOf(meta.get('past_key_values.0.key'), 3) ?? 0,
    hiddenSize: spec.hiddenSize ?? (input === 'input_ids' ? 1 : (dimOf(meta.get('inputs_embeds'), 2) ?? 0)),
    maxPositions: spec.maxPositions,
    input,
  };
  for (const [k, v] of Object.entries(full)) {
    if (k !== 'maxPositions' && k !== 'input' && !(typeof v === 'number' && v > 0)) {
      throw new GenerateError(`${label}: cannot tell '${k}' from the model's inputs; pass it in the decoder spec`);
    }
  }
  const hasUseCacheBranch = inputs.has('use_cache_branch');
  return {
    spec: full,
    async run(feeds) {
      const fed: Record<string, Tensor> = {};
      for (const [k, v] of Object.entries(feeds)) if (inputs.has(k)) fed[k] = v;
      if (hasUseCacheBranch) {
        const past = feeds['past_key_values.0.key'];
        fed.use_cache_branch = { dtype: 'bool', dims: [1], data: Uint8Array.of(past && past.dims[2] > 0 ? 1 : 0) };
      }
      try {
        return await runSession(session, fed);
      } catch (e) {
        throw new GenerateError(`${label}: forward pass failed: ${(e as Error).message}`);
      }
    },
  };
}

/** Opens a session for a decoder model; call `release()` when done. */
export async function openDecoder(
  model: Model,
  spec: Partial<DecoderSpec> = {},
  opts: SessionOptions = {},
): Promise<DecoderRunner & { release(): Promise<void> }> {
  const session = await createSession(model, opts);
  return { ...decoderFromSession(session, spec, model.graph.name), release: () => session.release() };
}

/** Host-side embedding lookup in a [V,D] table (the decoder's `embed_tokens.weight`). */
export function embedFromTable(table: Tensor): EmbedTokens {
  if (table.dtype !== 'float32' || table.dims.length !== 2) {
    throw new GenerateError(`embedding table must be float32 [V,D], got ${table.dtype} [${table.dims}]`);
  }
  const [V, D] = table.dims;
  const rows = table.data as Float32Array;
  return (ids) => {
    const idData = ids.data as BigInt64Array;
    const out = new Float32Array(idData.length * D);
    for (let i = 0; i < idData.length; i++) {
      const id = Number(idData[i]);
      if (!(id >= 0 && id < V)) throw new GenerateError(`token id ${id} is outside the embedding table (V = ${V})`);
      out.set(rows.subarray(id * D, (id + 1) * D), i * D);
    }
    return { dtype: 'float32', dims: [...ids.dims, D], data: out };
  };
}

/** Embedding lookup through an `llm.embed_tokens` session (input_ids → inputs_embeds). */
export function embedFromSession(session: ort.InferenceSession): EmbedTokens {
  return async (ids) => {
    const out = await runSession(session, { input_ids: ids }, ['inputs_embeds']);
    return out.inputs_embeds;
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Token choice

/** Index of the largest of the first `n` values (first one on ties). */
export function argmax(values: Float32Array, n = values.length): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (values[i] > values[best]) best = i;
  return best;
}

/**
 * Samples a token from logits with temperature, then top-k, then top-p (the Transformers order). With topK = 1 it
 * always returns the argmax.
 */
export function sampleToken(logits: Float32Array, opts: SamplingOptions, rng: Rng, n = logits.length): number {
  const temperature = opts.temperature ?? 1;
  if (temperature === 0) return argmax(logits, n);
  // Candidates sorted by logit, highest first (index order on ties, so top-k = 1 is the argmax).
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
  const k = opts.topK && opts.topK > 0 ? Math.min(opts.topK, n) : n;
  const kept = order.slice(0, k);
  const top = logits[kept[0]];
  const weights = kept.map((i) => Math.exp((logits[i] - top) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  const topP = opts.topP ?? 1;
  let count = kept.length;
  if (topP < 1) {
    let cumulative = 0;
    for (let j = 0; j < kept.length; j++) {
      cumulative += weights[j] / total;
      if (cumulative >= topP) {
        count = j + 1;
        break;
      }
    }
  }
  const mass = weights.slice(0, count).reduce((a, b) => a + b, 0);
  let r = rng.uniform() * mass;
  for (let j = 0; j < count; j++) {
    r -= weights[j];
    if (r < 0) return kept[j];
  }
  return kept[count - 1];
}

function validateSampling(s: SamplingOptions): void {
  const t = s.temperature ?? 1;
  if (!(t >= 0) || !Number.isFinite(t)) throw new GenerateError(`temperature must be ≥ 0, got ${s.temperature}`);
  if (s.topK !== undefined && !(Number.isInteger(s.topK) && s.topK >= 0)) {
    throw new GenerateError(`topK must be a non-negative integer, got ${s.topK}`);
  }
  if (s.topP !== undefined && !(s.topP > 0 && s.topP <= 1)) throw new GenerateError(`topP must be in (0, 1], got ${s.topP}`);
}

// ---------------------------------------------------------------------------------------------------------------
// The loop

function zeroPast(spec: DecoderSpec, batch: number): Record<string, Tensor> {
  const past: Record<string, Tensor> = {};
  for (let i = 0; i < spec.numLayers; i++) {
    for (const part of ['key', 'value']) {
      past[`past_key_values.${i}.${part}`] = {
        dtype: 'float32',
        dims: [batch, spec.numKvHeads, 0, spec.headDim],
        data: new Float32Array(0),
      };
    }
  }
  return past;
}

/** Concatenates two float32 [B,S,D] (or int64 [B,S]) tensors along S. */
function concatSeq(a: Tensor, b: Tensor): Tensor {
  const [B, S1] = a.dims;
  const D = a.dims.length === 3 ? a.dims[2] : 1;
  const S2 = b.dims[1];
  if (a.dtype === 'int64') {
    const out = new BigInt64Array(B * (S1 + S2));
    const ad = a.data as BigInt64Array;
    const bd = b.data as BigInt64Array;
    for (let r = 0; r < B; r++) {
      out.set(ad.subarray(r * S1, (r + 1) * S1), r * (S1 + S2));
      out.set(bd.subarray(r * S2, (r + 1) * S2), r * (S1 + S2) + S1);
    }
    return { dtype: 'int64', dims: [B, S1 + S2], data: out };
  }
  const out = new Float32Array(B * (S1 + S2) * D);
  const ad = a.data as Float32Array;
  const bd = b.data as Float32Array;
  for (let r = 0; r < B; r++) {
    out.set(ad.subarray(r * S1 * D, (r + 1) * S1 * D), r * (S1 + S2) * D);
    out.set(bd.subarray(r * S2 * D, (r + 1) * S2 * D), r * (S1 + S2) * D + S1 * D);
  }
  return { dtype: 'float32', dims: [B, S1 + S2, D], data: out };
}

function maskTensor(rows: number[][]): Tensor {
  const B = rows.length;
  const T = rows[0].length;
  const data = new BigInt64Array(B * T);
  rows.forEach((row, b) => row.forEach((v, t) => (data[b * T + t] = BigInt(v))));
  return { dtype: 'int64', dims: [B, T], data };
}

/** Positions of the last `count` slots: cumsum(mask) − 1, and 1 where the mask is 0 (Transformers.js). */
function positionIds(rows: number[][], count: number): Tensor {
  const B = rows.length;
  const data = new BigInt64Array(B * count);
  rows.forEach((row, b) => {
    let seen = 0;
    const T = row.length;
    for (let t = 0; t < T; t++) {
      seen += row[t];
      if (t >= T - count) data[b * count + t - (T - count)] = BigInt(row[t] === 0 ? 1 : seen - 1);
    }
  });
  return { dtype: 'int64', dims: [B, count], data };
}

export async function generate(opts: GenerateOptions): Promise<GenerateResult> {
  const { decoder, embedTokens } = opts;
  const spec = decoder.spec;
  const byIds = spec.input === 'input_ids';
  const inputName = byIds ? 'input_ids' : 'inputs_embeds';
  const prompt = byIds ? opts.inputIds : opts.inputsEmbeds;
  if (!prompt) throw new GenerateError(`the decoder reads '${inputName}' but the prompt was not given as ${inputName}`);
  if (byIds ? prompt.dtype !== 'int64' || prompt.dims.length !== 2 : prompt.dtype !== 'float32' || prompt.dims.length !== 3) {
    throw new GenerateError(`${inputName} must be ${byIds ? 'int64 [B,N]' : 'float32 [B,N,D]'}, got ${prompt.dtype} [${prompt.dims}]`);
  }
  const [B, N] = prompt.dims;
  const D = byIds ? 1 : prompt.dims[2];
  if (!byIds && D !== spec.hiddenSize) throw new GenerateError(`inputs_embeds width ${D} does not match the decoder width ${spec.hiddenSize}`);
  if (!byIds && !embedTokens) throw new GenerateError('a decoder that reads inputs_embeds needs embedTokens to embed each new token');
  if (N === 0) throw new GenerateError(`the prompt is empty: ${inputName} has no positions`);
  const maxNewTokens = opts.maxNewTokens ?? 32;
  if (!(Number.isInteger(maxNewTokens) && maxNewTokens >= 0)) {
    throw new GenerateError(`maxNewTokens must be a non-negative integer, got ${opts.maxNewTokens}`);
  }
  if (opts.sampling) validateSampling(opts.sampling);
  const stopTokens = new Set(opts.stopTokens ?? []);
  const padTokenId = opts.padTokenId ?? 0;
  const useCache = opts.useCache ?? true;
  const rng = new Rng(opts.seed ?? 0);

  const maskRows: number[][] = [];
  if (opts.attentionMask) {
    const m = opts.attentionMask;
    if (m.dims.length !== 2 || m.dims[0] !== B || m.dims[1] !== N) {
      throw new GenerateError(`attention_mask must be [${B},${N}] to match ${inputName}, got [${m.dims}]`);
    }
    const md = m.data as BigInt64Array | Int32Array;
    for (let b = 0; b < B; b++) {
      const row = Array.from({ length: N }, (_, t) => Number(md[b * N + t]));
      if (!row.some((v) => v !== 0)) throw new GenerateError(`attention_mask row ${b} has no token to attend to`);
      maskRows.push(row);
    }
  } else {
    for (let b = 0; b < B; b++) maskRows.push(new Array<number>(N).fill(1));
  }

  const tokens: number[][] = Array.from({ length: B }, () => []);
  const rowStoppedBy: Array<StopReason | null> = new Array(B).fill(null);
  let past = zeroPast(spec, B);
  let sequence = prompt; // the whole sequence so far (no-cache mode)
  let next = prompt; // what this step feeds (cache mode)
  let steps = 0;
  let stoppedBy: StopReason = 'max_new_tokens';

  for (let step = 0; step < maxNewTokens; step++) {
    if (opts.signal?.aborted) {
      stoppedBy = 'cancelled';
      break;
    }
    const longest = Math.max(...maskRows.map((r) => r.reduce((a, v) => a + v, 0)));
    if (spec.maxPositions !== undefined && longest > spec.maxPositions) {
      if (step === 0) {
        throw new GenerateError(`the prompt needs ${longest} positions but the decoder has only ${spec.maxPositions}`);
      }
      stoppedBy = 'max_positions';
      break;
    }
    const inputs = useCache ? next : sequence;
    const S = inputs.dims[1];
    const feeds: Record<string, Tensor> = {
      [inputName]: inputs,
      attention_mask: maskTensor(maskRows),
      position_ids: positionIds(maskRows, S),
      ...(useCache ? past : zeroPast(spec, B)),
    };
    const out = await decoder.run(feeds);
    steps++;
    const logits = out.logits;
    if (!logits || logits.dims.length !== 3 || logits.dims[0] !== B || logits.dims[1] !== S) {
      throw new GenerateError(`decoder returned logits of shape [${logits?.dims ?? 'none'}], expected [${B},${S},V]`);
    }
    const V = logits.dims[2];
    const limit = Math.min(opts.vocabLimit ?? V, V);
    const ld = logits.data as Float32Array;
    const chosen: Array<number | null> = [];
    for (let b = 0; b < B; b++) {
      if (rowStoppedBy[b] !== null) {
        chosen.push(null);
        continue;
      }
      const row = ld.subarray((b * S + S - 1) * V, (b * S + S) * V);
      const id = opts.sampling ? sampleToken(row, opts.sampling, rng, limit) : argmax(row, limit);
      chosen.push(id);
      if (stopTokens.has(id)) rowStoppedBy[b] = 'stop_token';
      else tokens[b].push(id);
    }
    opts.onToken?.({ step, tokens: chosen, finished: rowStoppedBy.map((r) => r !== null) });
    if (rowStoppedBy.every((r) => r !== null)) {
      stoppedBy = 'stop_token';
      break;
    }
    if (step === maxNewTokens - 1) break;

    const ids: Tensor = {
      dtype: 'int64',
      dims: [B, 1],
      data: BigInt64Array.from(chosen, (id) => BigInt(id ?? padTokenId)),
    };
    const embedded = byIds ? ids : await embedTokens!(ids);
    if (!byIds && (embedded.dims.length !== 3 || embedded.dims[0] !== B || embedded.dims[1] !== 1 || embedded.dims[2] !== D)) {
      throw new GenerateError(`embedTokens returned shape [${embedded.dims}], expected [${B},1,${D}]`);
    }
    for (const row of maskRows) row.push(1);
    if (useCache) {
      const present: Record<string, Tensor> = {};
      for (let i = 0; i < spec.numLayers; i++) {
        for (const part of ['key', 'value']) {
          const t = out[`present.${i}.${part}`];
          if (!t) throw new GenerateError(`decoder did not return 'present.${i}.${part}' (needed for the KV cache)`);
          present[`past_key_values.${i}.${part}`] = t;
        }
      }
      past = present;
      next = embedded;
    } else {
      sequence = concatSeq(sequence, embedded);
    }
  }

  const finalReasons = rowStoppedBy.map((r) => r ?? stoppedBy);
  const decode = opts.decode;
  return {
    tokens,
    text: decode ? tokens.map((t) => decode(t)) : undefined,
    steps,
    stoppedBy,
    rowStoppedBy: finalReasons,
  };
}
