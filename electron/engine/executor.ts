// The interactive executor (DESIGN.md §6): pull-based over the graph document, one ORT session per ONNX node,
// outputs cached by content key (type, version, params, weights, adapters, seed and the keys of the inputs), so an
// identical re-run computes nothing and a projector swap recomputes only the projector and what follows it.

import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { type Tensor, tensorToNumbers } from '../onnx/ir.js';
import { type ExecutionProvider, createSession, detectExecutionProviders, runSession } from '../onnx/ort.js';
import { parseSafetensors, readSafetensorsLazily } from '../onnx/safetensors.js';
import { type Catalog, defaultCatalog, portsOf } from '../nodes/catalog.js';
import { GENERATION_PARAMS, DecoderParams, type MergeParamsInput, checkMergeInputs, resolveDecoderConfig, headDim, WORD_EMBEDDING } from '../nodes/llms.js';
import type { NodeTypeDef, OnnxFragment, PortSpec } from '../nodes/types.js';
import { applyAdapters } from '../nodes/adapters/index.js';
import { OutputCache, type CachedValue } from './cache.js';
import { type ComposeOptions, type ComposedModel, type FusedPart, composeFragments } from './compose.js';
import { type DocNode, type GraphDocument, type NodeWeights, weightOwnerOf } from './document.js';
import { loadHfNodeWeights } from '../formats/hf/weights.js';
import { embedFromTable, generate } from './generate.js';
import { generateImported } from './imported-generation.js';
import { fragmentOpsets, isGeneratingDecoder } from '../nodes/imported.js';
import { hostSteps as ioHostSteps } from './host-steps/io.js';
import { diffusionHostSteps } from './host-steps/diffusion.js';
import type { GraphHostStep, GraphHostStepContext } from './host-steps/graph.js';
import { headHostSteps } from './host-steps/heads.js';
import { textHostSteps, tokenizerFor } from './host-steps/text.js';
import { hashBytes, hashKey, nodeSeed } from './keys.js';
import { type Diagnostic, hasErrors, validateDocument } from './validate.js';
import { type NodeShapes, resolveNodes, resolveShapes } from './widths.js';

export type Value = CachedValue;

export type RunEvent =
  | { type: 'started'; node: string; nodeType: string }
  | { type: 'progress'; node: string; step: number; total: number; detail?: string }
  | { type: 'computed'; node: string; ms: number }
  | { type: 'cached'; node: string }
  | { type: 'error'; node: string; message: string };

export interface RunInput {
  path?: string;
  bytes?: Uint8Array;
  text?: string;
}

export interface RunOptions {
  /** Folder that relative paths in the document resolve against (the graph file's folder). */
  baseDir: string;
  /** Node ids whose outputs are wanted; default: every node no other node reads from. */
  targets?: string[];
  /** Run-time data for input nodes (a dropped image, a typed prompt), by node id. */
  inputs?: Record<string, RunInput>;
  /**
   * Given outputs of nodes, by node id then port (`vlmc run --feed`): such a node does not run and its consumers
   * read these tensors (e.g. another implementation's input_ids, to compare outputs on the very same inputs).
   */
  feeds?: Record<string, Record<string, Tensor>>;
  signal?: AbortSignal;
  onEvent?: (e: RunEvent) => void;
}

export interface RunResult {
  /** Outputs of every node that ran or came from the cache, by node id then port. */
  outputs: Record<string, Record<string, Value>>;
  computed: string[];
  cached: string[];
  /** Milliseconds per computed node. */
  timings: Record<string, number>;
  totalMs: number;
}

export class RunError extends Error {
  override name = 'RunError';
  constructor(
    message: string,
    readonly nodeId?: string,
    readonly diagnostics: Diagnostic[] = [],
  ) {
    super(message);
  }
}

export class RunCancelled extends Error {
  override name = 'RunCancelled';
}

export interface ExecutorOptions {
  catalog?: Catalog;
  /** Output cache budget in bytes (default 1 GiB). */
  cacheBytes?: number;
  /** Preferred execution providers, best first (the CPU is the fallback); 'auto' = the best that works here. */
  executionProviders?: ExecutionProvider[] | 'auto';
  /** How many built node sessions to keep. */
  maxSessions?: number;
  /** onnxruntime intra-op threads per session (default: onnxruntime's, one per core); benchmarks pin it. */
  intraOpThreads?: number;
}

interface BuiltFragment {
  fragment: OnnxFragment;
  /** Weights the node's adapters added (what trains when the node itself is frozen), and their auxiliary losses. */
  adapters: { trainable: string[]; auxLosses: Array<{ output: string; coefficient: number }> };
  /**
   * onnxruntime's session of the fragment, created when a run first needs it: fusing (training, export) and
   * inspecting need only the fragment, and a real-size node's session holds all its weights.
   */
  opened?: Promise<ort.InferenceSession>;
}

interface BuiltNode extends BuiltFragment {
  session: ort.InferenceSession;
}

/** Weights files larger than this are read lazily (see RunPlan.loadWeights); smaller ones whole. */
export const LAZY_WEIGHTS_FILE_BYTES = 64 * 2 ** 20;

/** In a node's weights file, adapter tensors are stored as `adapters/<name>`; the rest are the node's own. */
export const ADAPTER_WEIGHT_PREFIX = 'adapters/';

const HOST_STEPS: Record<string, GraphHostStep> = { ...ioHostSteps, ...textHostSteps, ...headHostSteps, ...diffusionHostSteps };

export class Executor {
  readonly catalog: Catalog;
  readonly cache: OutputCache;
  private readonly built = new Map<string, Promise<BuiltFragment>>();
  private readonly maxSessions: number;
  private providers: ExecutionProvider[];
  private readonly autoProviders: boolean;
  private readonly intraOpThreads?: number;

  constructor(opts: ExecutorOptions = {}) {
    this.catalog = opts.catalog ?? defaultCatalog;
    this.cache = new OutputCache(opts.cacheBytes);
    this.maxSessions = opts.maxSessions ?? 48;
    this.intraOpThreads = opts.intraOpThreads;
    this.autoProviders = opts.executionProviders === 'auto';
    this.providers = opts.executionProviders === 'auto' || !opts.executionProviders ? ['cpu'] : opts.executionProviders;
  }

  /** The providers sessions are created with; with 'auto', probed once (see detectExecutionProviders). */
  async resolveExecutionProviders(): Promise<ExecutionProvider[]> {
    if (this.autoProviders) this.providers = await detectExecutionProviders();
    return [...this.providers];
  }

  get executionProviders(): ExecutionProvider[] {
    return [...this.providers];
  }

  async run(doc: GraphDocument, opts: RunOptions): Promise<RunResult> {
    const started = performance.now();
    const diagnostics = validateDocument(doc, this.catalog);
    if (hasErrors(diagnostics)) {
      const first = diagnostics.find((d) => d.severity === 'error')!;
      const where = first.nodeId ? `node '${first.nodeId}'${first.port ? ` port '${first.port}'` : ''}: ` : '';
      throw new RunError(`the graph is not valid: ${where}${first.message}`, first.nodeId, diagnostics);
    }
    const plan = new RunPlan(doc, this.catalog, opts);
    const result: RunResult = { outputs: {}, computed: [], cached: [], timings: {}, totalMs: 0 };
    const keys = new Map<string, string>();
    for (const id of plan.order) {
      if (opts.signal?.aborted) throw new RunCancelled('run cancelled');
      const node = plan.node(id);
      const fed = opts.feeds?.[id];
      if (fed) {
        keys.set(id, hashKey(Object.entries(fed).map(([port, t]) => [port, t.dtype, t.dims, hashBytes(tensorBytes(t))])));
        result.outputs[id] = { ...fed };
        opts.onEvent?.({ type: 'cached', node: id });
        continue;
      }
      const key = this.contentKey(plan, node, keys, opts);
      keys.set(id, key);
      const hit = this.cache.get(key);
      if (hit) {
        result.outputs[id] = hit;
        result.cached.push(id);
        opts.onEvent?.({ type: 'cached', node: id });
        continue;
      }
      opts.onEvent?.({ type: 'started', node: id, nodeType: node.type });
      const t0 = performance.now();
      try {
        const inputs = plan.inputValues(id, result.outputs);
        const outputs = await this.execute(plan, node, inputs, opts);
        this.cache.set(key, outputs);
        result.outputs[id] = outputs;
      } catch (e) {
        if (e instanceof RunCancelled || opts.signal?.aborted) throw new RunCancelled('run cancelled');
        const message = e instanceof Error ? e.message : String(e);
        opts.onEvent?.({ type: 'error', node: id, message });
        if (e instanceof RunError && e.nodeId) throw e;
        throw new RunError(`node '${id}' (${node.type}): ${message}`, id);
      }
      const ms = performance.now() - t0;
      result.timings[id] = ms;
      result.computed.push(id);
      opts.onEvent?.({ type: 'computed', node: id, ms });
    }
    result.totalMs = performance.now() - started;
    return result;
  }

  /** Hash of everything that determines a node's outputs. */
  private contentKey(plan: RunPlan, node: DocNode, keys: Map<string, string>, opts: RunOptions): string {
    const inputs: Record<string, string> = {};
    for (const e of plan.incoming(node.id)) inputs[e.to.port] = `${keys.get(e.from.node)}:${e.from.port}`;
    const runInput = opts.inputs?.[node.id];
    return hashKey({
      build: plan.buildIdentity(node.id),
      generation: plan.generationParams(node.id),
      inputs,
      wanted: plan.wantedPorts(node.id),
      runInput: runInput
        ? { path: runInput.path, text: runInput.text, bytes: runInput.bytes ? hashKey(Array.from(runInput.bytes.subarray(0, 4096))) + runInput.bytes.length : undefined }
        : undefined,
    });
  }

  private async execute(plan: RunPlan, node: DocNode, inputs: Record<string, Value>, opts: RunOptions): Promise<Record<string, Value>> {
    const def = plan.def(node.id);
    if (def.host) {
      const step = HOST_STEPS[def.host];
      if (!step) throw new RunError(`node '${node.id}' (${node.type}): host step '${def.host}' is not available`, node.id);
      const ctx: GraphHostStepContext = {
        nodeId: node.id,
        baseDir: opts.baseDir,
        runInput: opts.inputs?.[node.id],
        sourceOf: (port) => plan.incoming(node.id).find((e) => e.to.port === port)?.from,
        runNode: (id, feeds, outputs) => this.runUpstream(plan, node.id, id, feeds, outputs),
        signal: opts.signal,
        progress: (step, total, detail) => opts.onEvent?.({ type: 'progress', node: node.id, step, total, detail }),
      };
      return step(plan.params(node.id), inputs, ctx);
    }
    const built = await this.build(plan, node.id);
    const wanted = plan.wantedPorts(node.id);
    const generating = isGeneratingDecoder(node) && (wanted.includes('text') || wanted.includes('generated_ids'));
    const feeds = this.feedsFor(plan, node.id, built, inputs);
    if (node.type === 'llm.merge_image_text') checkMergeInputs(plan.params(node.id) as MergeParamsInput, feeds, `node '${node.id}'`);
    const out: Record<string, Value> = {};
    const graphOutputs = built.fragment.graph.outputs.map((o) => o.name);
    const direct = wanted.filter((p) => graphOutputs.includes(p));
    if (direct.length) {
      const res = await runSession(built.session, feeds, direct);
      Object.assign(out, res);
    }
    if (generating && node.type !== 'llm.decoder') {
      Object.assign(out, await generateImported({
        nodeId: node.id,
        params: plan.params(node.id),
        session: built.session,
        graph: built.fragment.graph,
        feeds,
        baseDir: opts.baseDir,
        embedder: () => this.importedEmbedder(plan, node.id),
        signal: opts.signal,
        onToken: (step, total) => opts.onEvent?.({ type: 'progress', node: node.id, step, total, detail: 'token' }),
      }));
    } else if (generating) Object.assign(out, await this.generateText(plan, node.id, built, feeds, opts));
    return out;
  }

  /** Runs an upstream ONNX node's session on a host step's feeds (a sampler calling its UNet once per step). */
  private async runUpstream(plan: RunPlan, caller: string, id: string, feeds: Record<string, Tensor>, outputs: string[]): Promise<Record<string, Tensor>> {
    if (!plan.ancestors(caller).includes(id)) throw new RunError(`node '${caller}': can only run nodes upstream of it, not '${id}'`, caller);
    const built = await this.build(plan, id);
    return runSession(built.session, this.feedsFor(plan, id, built, feeds), outputs);
  }

  /** Feeds for a fragment: edge values, plus the defaults a decoder expects (positions, empty past, full mask). */
  private feedsFor(plan: RunPlan, id: string, built: BuiltNode, inputs: Record<string, Value>): Record<string, Tensor> {
    const feeds: Record<string, Tensor> = {};
    for (const inp of built.fragment.graph.inputs) {
      const v = inputs[inp.name];
      if (v !== undefined) {
        if (typeof v === 'string') throw new RunError(`node '${id}': port '${inp.name}' expects a tensor but received text`, id);
        feeds[inp.name] = v;
      }
    }
    // The sequence that sizes the defaults: embeddings, or the token ids of a decoder that embeds inside.
    const embeds = feeds.inputs_embeds ?? feeds.input_ids;
    for (const inp of built.fragment.graph.inputs) {
      if (feeds[inp.name]) continue;
      const name = inp.name;
      if (name === 'use_cache_branch' && embeds) {
        feeds[name] = { dtype: 'bool', dims: [1], data: Uint8Array.of(0) }; // a merged decoder with an empty past
        continue;
      }
      if (name === 'attention_mask' && embeds) {
        const [B, S] = embeds.dims;
        feeds[name] = { dtype: 'int64', dims: [B, S], data: new BigInt64Array(B * S).fill(1n) };
      } else if (name === 'position_ids' && embeds) {
        feeds[name] = positionIds(feeds.attention_mask, embeds.dims[0], embeds.dims[1]);
      } else if (name.startsWith('past_key_values.') && embeds) {
        const shape = inp.shape ?? [];
        const kvH = typeof shape[1] === 'number' ? shape[1] : 1;
        const hd = typeof shape[3] === 'number' ? shape[3] : 1;
        feeds[name] = { dtype: 'float32', dims: [embeds.dims[0], kvH, 0, hd], data: new Float32Array(0) };
      } else {
        throw new RunError(`node '${id}': input port '${name}' is not connected`, id);
      }
    }
    return feeds;
  }

  private async generateText(
    plan: RunPlan,
    id: string,
    built: BuiltNode,
    feeds: Record<string, Tensor>,
    opts: RunOptions,
  ): Promise<Record<string, Value>> {
    const params = DecoderParams.parse(plan.params(id));
    const cfg = resolveDecoderConfig(params, id);
    const table = built.fragment.graph.initializers.get(WORD_EMBEDDING) ?? (await this.sharedEmbedding(plan, id));
    const tok = tokenizerFor(params.tokenizer, opts.baseDir);
    const eos = tok.specialIds.eos;
    const session = built.session;
    const res = await generate({
      decoder: {
        spec: { numLayers: cfg.numLayers, numKvHeads: cfg.numKvHeads, headDim: headDim(cfg), hiddenSize: cfg.hiddenSize, maxPositions: cfg.maxPositions },
        run: (f) => runSession(session, f),
      },
      embedTokens: embedFromTable(table),
      inputsEmbeds: feeds.inputs_embeds,
      attentionMask: feeds.attention_mask,
      maxNewTokens: params.max_new_tokens,
      stopTokens: params.eos_token_ids ?? (eos === undefined ? [] : [eos]),
      sampling: params.temperature > 0 ? { temperature: params.temperature, topK: params.top_k, topP: params.top_p } : undefined,
      seed: params.sample_seed,
      useCache: params.use_cache,
      // The built-in tokenizer cannot decode ids past its 316 tokens (a real-size preset's vocabulary is larger);
      // a model's own tokenizer.json decodes what transformers would generate, so its argmax spans every logit.
      vocabLimit: params.tokenizer === 'builtin' ? tok.vocabSize : undefined,
      signal: opts.signal,
      decode: (ids) => tok.decode(ids),
      onToken: (e) => opts.onEvent?.({ type: 'progress', node: id, step: e.step + 1, total: params.max_new_tokens, detail: 'token' }),
    });
    if (res.stoppedBy === 'cancelled') throw new RunCancelled('run cancelled');
    const rows = res.tokens;
    const width = Math.max(0, ...rows.map((r) => r.length));
    const ids = new BigInt64Array(rows.length * width);
    rows.forEach((r, b) => r.forEach((t, j) => (ids[b * width + j] = BigInt(t))));
    return { text: (res.text ?? []).join('\n'), generated_ids: { dtype: 'int64', dims: [rows.length, width], data: ids } };
  }

  /**
   * The token embedding of an imported inputs_embeds decoder (a VLM's decoder_model_merged): the session of the
   * upstream node that maps input_ids → inputs_embeds (an imported embed_tokens.onnx or an Embed tokens node).
   */
  private async importedEmbedder(plan: RunPlan, decoderId: string): Promise<(ids: Tensor) => Promise<Tensor>> {
    for (const a of plan.ancestors(decoderId)) {
      const def = plan.def(a);
      if (!def.build) continue;
      const { inputs, outputs } = portsOf(def, plan.params(a));
      if (!inputs.some((p) => p.name === 'input_ids') || !outputs.some((p) => p.name === 'inputs_embeds')) continue;
      if (inputs.length !== 1) continue;
      const built = await this.build(plan, a);
      return async (ids) => (await runSession(built.session, { input_ids: ids }, ['inputs_embeds'])).inputs_embeds;
    }
    throw new RunError(`node '${decoderId}': generation needs a node upstream that embeds input_ids → inputs_embeds (the folder's embed_tokens.onnx)`, decoderId);
  }

  /** A LLaMA-style decoder has no embedding inside: take it from the Embed tokens node that shares its weights. */
  private async sharedEmbedding(plan: RunPlan, decoderId: string): Promise<Tensor> {
    const embedId = plan.ancestors(decoderId).find((a) => plan.node(a).type === 'llm.embed_tokens');
    if (!embedId) throw new RunError(`node '${decoderId}': generation needs an Embed tokens node feeding this decoder`, decoderId);
    const built = await this.buildFragment(plan, embedId);
    const t = built.fragment.graph.initializers.get(WORD_EMBEDDING);
    if (!t) throw new RunError(`node '${embedId}': has no '${WORD_EMBEDDING}'`, embedId);
    return t;
  }

  /** Builds (or reuses) a node's fragment and its session. */
  private async build(plan: RunPlan, id: string): Promise<BuiltNode> {
    const built = await this.buildFragment(plan, id);
    built.opened ??= this.resolveExecutionProviders().then((executionProviders) =>
      createSession({
        irVersion: 8,
        producerName: 'vlm-composer',
        producerVersion: '0.1.0',
        opsets: fragmentOpsets(built.fragment.graph, built.fragment.opset),
        graph: built.fragment.graph,
        metadata: {},
      }, { executionProviders, intraOpThreads: this.intraOpThreads }));
    built.opened.catch(() => (built.opened = undefined));
    return { ...built, session: await built.opened };
  }

  /** Builds (or reuses) a node's fragment, without a session; keyed by everything that shapes the model. */
  private buildFragment(plan: RunPlan, id: string): Promise<BuiltFragment> {
    const key = hashKey(plan.buildIdentity(id));
    const existing = this.built.get(key);
    if (existing) {
      this.built.delete(key);
      this.built.set(key, existing);
      return existing;
    }
    const promise = (async () => {
      const def = plan.def(id);
      if (!def.build) throw new RunError(`node '${id}' (${def.info.type}) has no ONNX builder`, id);
      const owner = plan.weightOwner(id);
      const seed = nodeSeed(plan.doc.seed ?? 0, owner);
      const loaded = plan.loadWeights(owner, id);
      const own = loaded && new Map([...loaded].filter(([k]) => !k.startsWith(ADAPTER_WEIGHT_PREFIX)));
      let fragment = def.build(plan.params(id), { nodeId: id, seed, inputShapes: plan.shapes(id).inputs, weights: own, freshWeights: plan.node(id).freshWeights });
      // Adapters are rewrites of the built fragment (node.adapters, in order), with their stored weights if any.
      const adapters: BuiltNode['adapters'] = { trainable: [], auxLosses: [] };
      const specs = plan.node(id).adapters;
      if (specs.length > 0) {
        const stored = new Map([...(loaded ?? [])].filter(([k]) => k.startsWith(ADAPTER_WEIGHT_PREFIX)).map(([k, t]) => [k.slice(ADAPTER_WEIGHT_PREFIX.length), t]));
        const applied = applyAdapters(fragment, specs, seed, { what: `node '${id}'`, weights: stored });
        fragment = applied.fragment;
        adapters.trainable = applied.trainable;
        adapters.auxLosses = applied.auxLosses;
      }
      return { fragment, adapters };
    })();
    promise.catch(() => this.built.delete(key));
    this.built.set(key, promise);
    while (this.built.size > this.maxSessions) {
      const [oldest, p] = this.built.entries().next().value as [string, Promise<BuiltFragment>];
      this.built.delete(oldest);
      void p.then((b) => b.opened?.then((session) => session.release())).catch(() => undefined);
    }
    return promise;
  }

  /** Builds a node's fragment (no session) — used by inspect, compare and export. */
  async fragmentOf(doc: GraphDocument, baseDir: string, id: string): Promise<OnnxFragment> {
    const plan = new RunPlan(doc, this.catalog, { baseDir, targets: [id] });
    return (await this.buildFragment(plan, id)).fragment;
  }

  /** The weights a node's adapters add (the trainer trains them) and their auxiliary loss outputs. */
  async adaptersOf(doc: GraphDocument, baseDir: string, id: string): Promise<BuiltNode['adapters']> {
    const plan = new RunPlan(doc, this.catalog, { baseDir, targets: [id] });
    return (await this.buildFragment(plan, id)).adapters;
  }

  /** Fused mode: the fragments of `nodeIds` (ONNX nodes) joined into one model (see compose.ts). */
  async fuse(doc: GraphDocument, baseDir: string, nodeIds: string[], opts: ComposeOptions = {}): Promise<ComposedModel> {
    const plan = new RunPlan(doc, this.catalog, { baseDir, targets: nodeIds });
    const parts: FusedPart[] = [];
    for (const id of plan.order) {
      if (!nodeIds.includes(id)) continue;
      if (!plan.def(id).build) throw new RunError(`node '${id}' (${plan.node(id).type}) is a host step and cannot be fused`, id);
      parts.push({ id, fragment: (await this.buildFragment(plan, id)).fragment });
    }
    return composeFragments(parts, doc.edges, { graphName: doc.name, ...opts });
  }

  async dispose(): Promise<void> {
    const all = [...this.built.values()];
    this.built.clear();
    this.cache.clear();
    await Promise.all(all.map((p) => p.then((b) => b.opened?.then((session) => session.release())).catch(() => undefined)));
  }
}

/** cumsum(mask) − 1 with padded positions set to 1 (as HF), shaped [B, S] for the last S positions. */
function positionIds(mask: Tensor | undefined, B: number, S: number): Tensor {
  const out = new BigInt64Array(B * S);
  if (!mask) {
    for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) out[b * S + s] = BigInt(s);
    return { dtype: 'int64', dims: [B, S], data: out };
  }
  const T = mask.dims[1];
  const m = tensorToNumbers(mask);
  for (let b = 0; b < B; b++) {
    let c = 0;
    for (let t = 0; t < T; t++) {
      const on = m[b * T + t] !== 0;
      if (on) c++;
      const pos = on ? c - 1 : 1;
      const s = t - (T - S);
      if (s >= 0) out[b * S + s] = BigInt(pos);
    }
  }
  return { dtype: 'int64', dims: [B, S], data: out };
}

/** The resolved view of one run: nodes, edges, order, params, shapes and which ports are wanted. */
export class RunPlan {
  private readonly nodes = new Map<string, DocNode>();
  private readonly resolved: ReturnType<typeof resolveNodes>;
  private readonly shapeMap: Map<string, NodeShapes>;
  readonly order: string[];
  private readonly wanted = new Map<string, Set<string>>();
  private readonly weightCache = new Map<string, Map<string, Tensor> | undefined>();

  constructor(
    readonly doc: GraphDocument,
    readonly catalog: Catalog,
    private readonly opts: Pick<RunOptions, 'baseDir' | 'targets' | 'onEvent'>,
  ) {
    for (const n of doc.nodes) this.nodes.set(n.id, n);
    this.resolved = resolveNodes(doc, catalog);
    this.shapeMap = resolveShapes(doc, catalog);
    const consumers = new Set(doc.edges.map((e) => e.from.node));
    const targets = opts.targets ?? doc.nodes.map((n) => n.id).filter((id) => !consumers.has(id));
    for (const t of targets) if (!this.nodes.has(t)) throw new RunError(`there is no node '${t}' in the graph`, t);
    // Pull-based: only ancestors of the targets run.
    const needed = new Set<string>();
    const stack = [...targets];
    while (stack.length) {
      const id = stack.pop()!;
      if (needed.has(id)) continue;
      needed.add(id);
      for (const e of this.incoming(id)) stack.push(e.from.node);
    }
    // Ports wanted: those read by a needed node, plus every output of a target.
    for (const e of doc.edges) {
      if (needed.has(e.to.node)) this.want(e.from.node, e.from.port);
    }
    for (const t of targets) for (const p of this.outputPorts(t)) if (!this.isGeneratedPort(t, p.name) || this.hasGenerator(t)) this.want(t, p.name);
    this.order = topoOrder(doc, needed);
  }

  private want(node: string, port: string): void {
    let s = this.wanted.get(node);
    if (!s) this.wanted.set(node, (s = new Set()));
    s.add(port);
  }

  /** A target decoder generates text only when asked to through its text port or when it is a sink. */
  private isGeneratedPort(id: string, port: string): boolean {
    return isGeneratingDecoder(this.node(id)) && (port === 'text' || port === 'generated_ids');
  }
  private hasGenerator(id: string): boolean {
    return isGeneratingDecoder(this.node(id));
  }

  wantedPorts(id: string): string[] {
    return [...(this.wanted.get(id) ?? [])].sort();
  }

  node(id: string): DocNode {
    const n = this.nodes.get(id);
    if (!n) throw new RunError(`there is no node '${id}' in the graph`, id);
    return n;
  }

  def(id: string): NodeTypeDef {
    const r = this.resolved.get(id);
    if (!r) throw new RunError(`node '${id}': unknown type '${this.node(id).type}'`, id);
    return r.def;
  }

  params(id: string): unknown {
    return this.resolved.get(id)?.params;
  }

  shapes(id: string): NodeShapes {
    return this.shapeMap.get(id) ?? { inputs: {}, outputs: {}, expected: {} };
  }

  outputPorts(id: string): PortSpec[] {
    return portsOf(this.def(id), this.params(id)).outputs.filter((p) => !p.optional);
  }

  incoming(id: string) {
    return this.doc.edges.filter((e) => e.to.node === id);
  }

  ancestors(id: string): string[] {
    const seen = new Set<string>();
    const stack = [id];
    while (stack.length) {
      const cur = stack.pop()!;
      for (const e of this.incoming(cur)) {
        if (!seen.has(e.from.node)) {
          seen.add(e.from.node);
          stack.push(e.from.node);
        }
      }
    }
    return [...seen];
  }

  /** Whose seed and weights file a node uses (an Embed tokens node shares its decoder's). */
  weightOwner(id: string): string {
    return weightOwnerOf(this.doc, id);
  }

  /** The node whose weights file `id` reads: its own when it has one, else its weight owner's. */
  weightSource(id: string): string {
    return this.node(id).weights ? id : this.weightOwner(id);
  }

  /**
   * Weights from the node's own weights file, else the owner's (safetensors), restricted to what `forNode` builds.
   * The file's sha256 must match the document's: a changed or replaced file is an error naming it.
   */
  loadWeights(owner: string, forNode: string): Map<string, Tensor> | undefined {
    const source = this.node(forNode).weights ? forNode : owner;
    const spec = this.node(source).weights;
    if (!spec) return undefined;
    const path = isAbsolute(spec.path) ? spec.path : resolve(this.opts.baseDir, spec.path);
    if (spec.hf) {
      // A Hugging Face folder: the architecture file maps this node's part (for its params) onto the shards.
      const key = `${path}#${spec.hf.part}#${hashKey(this.node(source).params)}`;
      let mapped = this.weightCache.get(key);
      if (!mapped) {
        try {
          mapped = loadHfNodeWeights(path, spec.hf, this.node(source).params as Record<string, unknown>, this.weightsProgress(forNode));
        } catch (e) {
          throw new RunError(`node '${source}': cannot load weights from '${spec.path}': ${(e as Error).message}`, source);
        }
        this.weightCache.set(key, mapped);
      }
      return source === forNode ? mapped : new Map([...mapped].filter(([k]) => k === WORD_EMBEDDING));
    }
    let all = this.weightCache.get(path);
    if (!this.weightCache.has(path)) {
      try {
        // A large file (a real preset's weights) is hashed in chunks and its float tensors are file-backed
        // (onnx/lazy.ts): read when the session is serialised, never held beside onnxruntime's copy.
        const large = statSync(path).size > LAZY_WEIGHTS_FILE_BYTES;
        const bytes = large ? undefined : readFileSync(path);
        const lazy = large ? readSafetensorsLazily(path, spec.path) : undefined;
        const actual = lazy ? lazy.sha256 : hashBytes(bytes!);
        if (actual !== spec.sha256) {
          throw new Error(`the file's sha256 is ${actual} but the graph expects ${spec.sha256} (the file was changed or replaced)`);
        }
        all = lazy ? lazy.tensors : parseSafetensors(bytes!, spec.path).tensors;
      } catch (e) {
        throw new RunError(`node '${source}': cannot load weights '${spec.path}': ${(e as Error).message}`, source);
      }
      this.weightCache.set(path, all);
    }
    if (!all || source === forNode) return all;
    // A node sharing another node's weights takes only the tensors it has (e.g. embed_tokens.weight).
    return new Map([...all].filter(([k]) => k === WORD_EMBEDDING));
  }

  /** Progress of reading a node's weights from a model folder, as `progress` events (at most one per 100 ms). */
  private weightsProgress(node: string): ((read: number, total: number) => void) | undefined {
    const onEvent = this.opts.onEvent;
    if (!onEvent) return undefined;
    let last = 0;
    return (read, total) => {
      const now = performance.now();
      if (read < total && now - last < 100) return;
      last = now;
      onEvent({ type: 'progress', node, step: read, total, detail: 'loading weights' });
    };
  }

  /** Everything that determines the built model of a node (not its inputs' values). */
  buildIdentity(id: string): unknown {
    const node = this.node(id);
    const def = this.def(id);
    const params = { ...(node.params as Record<string, unknown>) };
    if (node.type === 'llm.decoder') for (const g of GENERATION_PARAMS) delete params[g];
    if (isGeneratingDecoder(node) && node.type !== 'llm.decoder') delete params.generation;
    const owner = this.weightOwner(id);
    return {
      type: node.type,
      typeVersion: node.typeVersion,
      params,
      weights: weightsIdentity(this.node(this.weightSource(id)).weights),
      adapters: node.adapters,
      freshWeights: node.freshWeights,
      seed: def.build ? nodeSeed(this.doc.seed ?? 0, owner) : undefined,
      shapes: def.build ? this.shapes(id).inputs : undefined,
    };
  }

  generationParams(id: string): unknown {
    if (isGeneratingDecoder(this.node(id)) && this.node(id).type !== 'llm.decoder') return (this.node(id).params as Record<string, unknown>).generation;
    if (this.node(id).type !== 'llm.decoder') return undefined;
    const p = this.node(id).params as Record<string, unknown>;
    return Object.fromEntries(GENERATION_PARAMS.map((g) => [g, p[g]]));
  }

  inputValues(id: string, outputs: Record<string, Record<string, Value>>): Record<string, Value> {
    const values: Record<string, Value> = {};
    for (const e of this.incoming(id)) {
      const v = outputs[e.from.node]?.[e.from.port];
      if (v === undefined) {
        throw new RunError(`node '${id}': input '${e.to.port}' gets nothing from '${e.from.node}.${e.from.port}'`, id);
      }
      values[e.to.port] = v;
    }
    return values;
  }
}

function tensorBytes(t: Tensor): Uint8Array {
  const d = t.data as ArrayBufferView;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/** What identifies a node's weights in cache keys: the file's sha256, or the folder's fingerprint and part. */
function weightsIdentity(w: NodeWeights | undefined): string | undefined {
  if (!w) return undefined;
  if (w.hf) return `${w.hf.fingerprint}:${w.hf.architecture}:${w.hf.part}`;
  return w.sha256 ?? w.path;
}

function topoOrder(doc: GraphDocument, subset: Set<string>): string[] {
  const order: string[] = [];
  const state = new Map<string, number>();
  const visit = (id: string) => {
    if (state.get(id) === 2) return;
    if (state.get(id) === 1) throw new RunError(`the graph has a cycle through node '${id}'`, id);
    state.set(id, 1);
    for (const e of doc.edges) if (e.to.node === id && subset.has(e.from.node)) visit(e.from.node);
    state.set(id, 2);
    order.push(id);
  };
  for (const n of doc.nodes) if (subset.has(n.id)) visit(n.id);
  return order;
}
