// vlmc run GRAPH|BUNDLE_DIR --image PATH --prompt TEXT [--node-input ID=VALUE ...] [--feed ID=FILE ...]
//          [--max-new-tokens N] [--save-outputs DIR] [--out DIR] [--json]
//
// Inputs (the same rule as the app's Run panel, engine/run.ts mapRunInputs): --image goes to every io.image node;
// --prompt goes to the first io.text node in document order (the templates name it 'prompt'). --node-input gives
// one node its own run input: a file path for io.image / io.video / io.audio, the text for io.text (@FILE reads
// the text from a file). Outputs: the text reaching each io.text_output node, and a PNG per io.image_output node
// written to --out (default: the current folder); engine/run-io.ts holds both rules. With --json, one JSON object per
// line: the node events (engine/messages.ts, the words of the app's run.event), then one {"type":"result"} line (with
// each decoder's generated token ids).
// --feed ID=FILE.safetensors gives a node's outputs (tensors named after its ports) instead of running it;
// --save-outputs DIR writes every node's output tensors as DIR/<node>.safetensors: together they compare Composer with
// another implementation on the very same inputs.

import { GenerationTimer } from '../engine/generation-speed.js';
import { isGeneratingDecoder } from '../nodes/imported.js';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { readSafetensors, writeSafetensors } from '../onnx/safetensors.js';
import type { Tensor } from '../onnx/ir.js';
import type { GraphDocument } from '../engine/document.js';
import { Executor, RunCancelled, RunError, type RunEvent, type RunInput, type RunResult, type Value } from '../engine/executor.js';
import { nodeEvent } from '../engine/messages.js';
import { collectOutputs, mapRunInputs, writePngs } from '../engine/run-io.js';
import { executionProviderPolicy } from '../engine/providers.js';
import { validateDocument } from '../engine/validate.js';
import { UsageError, parseArgs, takeRepeated, validateFlags } from './args.js';
import { loadGraph, reportDiagnostics } from './graph-file.js';

const flagsSchema = z
  .object({
    image: z.string().min(1).optional(),
    prompt: z.string().optional(),
    out: z.string().min(1).optional(),
    json: z.boolean().default(false),
    'max-new-tokens': z.coerce.number().int().positive().max(4096).optional(),
    'save-outputs': z.string().min(1).optional(),
  })
  .strict();

export const runUsage =
  'vlmc run GRAPH|BUNDLE_DIR [--image PATH] [--prompt TEXT] [--node-input ID=VALUE ...] [--feed ID=FILE ...] [--max-new-tokens N] [--save-outputs DIR] [--out DIR] [--json]';

/** Node types that take a file path as their run input. */
const PATH_INPUTS = new Set(['io.image', 'io.video', 'io.audio']);

export class RunInputFileError extends Error {
  override name = 'RunInputFileError';
}

/** --feed ID=FILE.safetensors → that node's outputs, by port (tensor names must be the node's output ports). */
function nodeFeed(doc: GraphDocument, spec: string): [string, Record<string, Tensor>] {
  const eq = spec.indexOf('=');
  if (eq <= 0) throw new UsageError(`--feed '${spec}': expected ID=FILE.safetensors`);
  const id = spec.slice(0, eq);
  if (!doc.nodes.some((n) => n.id === id)) throw new UsageError(`--feed: there is no node '${id}' in the graph (nodes: ${doc.nodes.map((n) => n.id).join(', ')})`);
  const file = checkFile(spec.slice(eq + 1), `--feed ${id}`);
  const ports = new Set(doc.edges.filter((e) => e.from.node === id).map((e) => e.from.port));
  const tensors = readSafetensors(file).tensors;
  for (const name of tensors.keys()) {
    if (!ports.has(name)) throw new UsageError(`--feed ${id}: '${file}' holds tensor '${name}', but node '${id}' has no connected output port of that name (${[...ports].join(', ')})`);
  }
  return [id, Object.fromEntries(tensors)];
}

/** Every node's tensor outputs as DIR/<node>.safetensors (text outputs go into the file's metadata). */
function saveOutputs(result: RunResult, dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  for (const [id, ports] of Object.entries(result.outputs)) {
    const tensors = new Map<string, Tensor>();
    const metadata: Record<string, string> = { 'composer.node': id };
    for (const [port, v] of Object.entries(ports)) {
      if (typeof v === 'string') metadata[`text.${port}`] = v;
      else if (!Array.isArray(v)) tensors.set(port, v as Tensor);
    }
    if (tensors.size === 0 && Object.keys(metadata).length === 1) continue;
    const path = resolve(dir, `${id}.safetensors`);
    writeSafetensors(path, tensors, metadata);
    written.push(path);
  }
  return written;
}

/** Generated token ids per decoder (rows of the `generated_ids` output). */
function generatedTokens(doc: GraphDocument, result: RunResult): Record<string, number[][]> {
  const out: Record<string, number[][]> = {};
  for (const n of doc.nodes) {
    const ids = result.outputs[n.id]?.generated_ids;
    if (!isGeneratingDecoder(n) || !ids || typeof ids === 'string' || Array.isArray(ids)) continue;
    const t = ids as Tensor;
    const [rows, width] = [t.dims[0] ?? 0, t.dims[1] ?? 0];
    const data = t.data as BigInt64Array;
    out[n.id] = Array.from({ length: rows }, (_, r) => Array.from(data.subarray(r * width, (r + 1) * width), Number));
  }
  return out;
}

function checkFile(path: string, what: string): string {
  const full = resolve(path);
  if (!existsSync(full)) throw new RunInputFileError(`${what}: no such file: ${path}`);
  return full;
}

/** --node-input ID=VALUE → a run input for that node (checked against the node's type). */
function nodeInput(doc: GraphDocument, spec: string): [string, RunInput] {
  const eq = spec.indexOf('=');
  if (eq <= 0) throw new UsageError(`--node-input '${spec}': expected ID=VALUE`);
  const id = spec.slice(0, eq);
  const value = spec.slice(eq + 1);
  const node = doc.nodes.find((n) => n.id === id);
  if (!node) throw new UsageError(`--node-input: there is no node '${id}' in the graph (nodes: ${doc.nodes.map((n) => n.id).join(', ')})`);
  if (PATH_INPUTS.has(node.type)) return [id, { path: checkFile(value, `--node-input ${id}`) }];
  if (node.type === 'io.text') {
    const text = value.startsWith('@') ? readFileSync(checkFile(value.slice(1), `--node-input ${id}`), 'utf8') : value;
    return [id, { text }];
  }
  throw new UsageError(`--node-input: node '${id}' is a ${node.type}, which takes no run input (io.image, io.video, io.audio and io.text do)`);
}

/** The graph with every decoder's max_new_tokens set (`--max-new-tokens`). */
function withMaxNewTokens(doc: GraphDocument, n: number): GraphDocument {
  const decoders = doc.nodes.filter(isGeneratingDecoder);
  if (decoders.length === 0) throw new UsageError(`--max-new-tokens: '${doc.name}' has no decoder (llm.decoder or an imported one that generates)`);
  const set = (d: GraphDocument['nodes'][number]) =>
    d.type === 'llm.decoder'
      ? { ...d, params: { ...d.params, max_new_tokens: n } }
      : { ...d, params: { ...d.params, generation: { ...((d.params as { generation: object }).generation), max_new_tokens: n } } };
  return { ...doc, nodes: doc.nodes.map((d) => (isGeneratingDecoder(d) ? set(d) : d)) };
}

type Summary = string | string[] | { dtype: string; shape: number[]; values?: number[] };

/** Text in full; tensors by dtype and shape (and their values when there are at most 16). */
function summarise(v: Value): Summary {
  if (typeof v === 'string') return v;
  const out: { dtype: string; shape: number[]; values?: number[] } = { dtype: v.dtype, shape: [...v.dims] };
  if (v.data.length <= 16) out.values = Array.from(v.data as ArrayLike<number | bigint>, (x) => Number(x));
  return out;
}

interface OutputValue {
  node: string;
  text?: string;
  paths?: string[];
}

/** What reaches the output nodes (engine/run-io.ts): text, and images written as PNG files into `outDir`. */
async function writeOutputs(doc: GraphDocument, result: RunResult, outDir: string): Promise<OutputValue[]> {
  return (await collectOutputs(doc, result)).map(({ node, text, pngs }) =>
    pngs ? { node, paths: writePngs(pngs, (i) => resolve(outDir, i === 0 ? `${node}.png` : `${node}-${i}.png`)) } : { node, text },
  );
}

export async function runCommand(argv: string[], out: (line: string) => void): Promise<number> {
  const withoutInputs = takeRepeated(argv, 'node-input');
  const withoutFeeds = takeRepeated(withoutInputs.rest, 'feed');
  const nodeInputs = withoutInputs.values;
  const { positionals, flags } = parseArgs(withoutFeeds.rest, ['json']);
  const opts = validateFlags(flagsSchema, flags);
  if (positionals.length !== 1) throw new UsageError(`usage: ${runUsage}`);
  const loaded = loadGraph(positionals[0]);
  const { baseDir } = loaded;
  const doc = opts['max-new-tokens'] === undefined ? loaded.doc : withMaxNewTokens(loaded.doc, opts['max-new-tokens']);

  if (reportDiagnostics(validateDocument(doc).filter((d) => d.severity === 'error'), opts.json, out)) {
    if (!opts.json) console.error(`vlmc run: '${doc.name}' is not valid; nothing was run`);
    return 1;
  }
  const image = opts.image === undefined ? undefined : checkFile(opts.image, '--image');
  const inputs = mapRunInputs(doc, {
    image: image ? { name: opts.image ?? image, path: image } : undefined,
    prompt: opts.prompt,
  });
  for (const spec of nodeInputs) {
    const [id, value] = nodeInput(doc, spec);
    inputs[id] = value;
  }
  const feeds = Object.fromEntries(withoutFeeds.values.map((spec) => nodeFeed(doc, spec)));

  // The app's execution-provider policy: COMPOSER_EP, else the best provider that works here (CPU fallback).
  const executor = new Executor({ executionProviders: executionProviderPolicy() });
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  const timer = new GenerationTimer();
  const onEvent = (e: RunEvent) => {
    const event = nodeEvent(e);
    timer.onEvent(event);
    if (opts.json) out(JSON.stringify(event));
  };
  try {
    const result = await executor.run(doc, { baseDir, inputs, feeds, signal: controller.signal, onEvent });
    const outputs = await writeOutputs(doc, result, resolve(opts.out ?? '.'));
    const saved = opts['save-outputs'] ? saveOutputs(result, resolve(opts['save-outputs'])) : [];
    if (saved.length && !opts.json) console.error(`vlmc run: wrote ${saved.length} output file(s) to ${resolve(opts['save-outputs'] ?? '.')}`);
    if (opts.json) {
      const summary: Record<string, Record<string, Summary>> = {};
      for (const [id, ports] of Object.entries(result.outputs)) {
        summary[id] = Object.fromEntries(Object.entries(ports).map(([p, v]) => [p, summarise(v)]));
      }
      for (const o of outputs) summary[o.node] = { ...summary[o.node], ...(o.text !== undefined ? { text: o.text } : {}), ...(o.paths ? { path: o.paths[0], paths: o.paths } : {}) };
      out(
        JSON.stringify({
          type: 'result',
          outputs: summary,
          generated: generatedTokens(doc, result),
          // Per decoder: tokens/s after the first token (session build and prefill excluded).
          generation: timer.report(),
          computed: result.computed,
          cached: result.cached,
          ms: Math.round(result.totalMs),
          executionProvider: executor.executionProviders[0],
          ...(saved.length ? { savedOutputs: saved } : {}),
        }),
      );
    } else {
      const lines = outputs.flatMap((o) => (o.paths ? o.paths : [o.text ?? '']).map((v) => ({ node: o.node, v })));
      for (const { node, v } of lines) out(outputs.length > 1 ? `${node}: ${v}` : v);
      if (lines.length === 0) console.error(`vlmc run: '${doc.name}' ran but has no output node (io.text_output / io.image_output) and no text sink`);
    }
    return 0;
  } catch (e) {
    if (e instanceof RunError) {
      if (opts.json) for (const d of e.diagnostics) out(JSON.stringify({ type: 'diagnostic', ...d }));
      console.error(`vlmc run: ${e.message}`);
      return 1;
    }
    if (e instanceof RunCancelled) {
      console.error('vlmc run: cancelled');
      return 130;
    }
    throw e;
  } finally {
    process.removeListener('SIGINT', onSigint);
    await executor.dispose();
  }
}
