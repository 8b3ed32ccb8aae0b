// vlmc run GRAPH|BUNDLE_DIR --image PATH --prompt TEXT [--node-input ID=VALUE ...] [--out DIR] [--json]
//
// Inputs (the same rule as the app's Run panel, engine/run.ts mapRunInputs): --image goes to every io.image node;
// --prompt goes to the first io.text node in document order (the templates name it 'prompt'). --node-input gives
// one node its own run input: a file path for io.image / io.video / io.audio, the text for io.text (@FILE reads
// the text from a file). Outputs: the text reaching each io.text_output node, and a PNG per io.image_output node
// written to --out (default: the current folder). With --json, one JSON object per line: the executor's node
// events, then one {"type":"result"} line.

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../onnx/atomic.js';
import type { Tensor } from '../onnx/ir.js';
import type { GraphDocument } from '../engine/document.js';
import { Executor, RunCancelled, RunError, type RunEvent, type RunInput, type RunResult, type Value } from '../engine/executor.js';
import { imagesToPng } from '../engine/host-steps/io.js';
import { mapRunInputs } from '../engine/run.js';
import { validateDocument } from '../engine/validate.js';
import { imageOutputParams } from '../nodes/io.js';
import { UsageError, parseArgs, validateFlags } from './args.js';
import { loadGraph, reportDiagnostics } from './graph-file.js';

const flagsSchema = z
  .object({
    image: z.string().min(1).optional(),
    prompt: z.string().optional(),
    out: z.string().min(1).optional(),
    json: z.boolean().default(false),
  })
  .strict();

export const runUsage = 'vlmc run GRAPH|BUNDLE_DIR [--image PATH] [--prompt TEXT] [--node-input ID=VALUE ...] [--out DIR] [--json]';

/** Node types that take a file path as their run input. */
const PATH_INPUTS = new Set(['io.image', 'io.video', 'io.audio']);

export class RunInputFileError extends Error {
  override name = 'RunInputFileError';
}

/** Takes every `--node-input X` / `--node-input=X` out of argv (the flag may repeat). */
function extractNodeInputs(argv: string[]): { rest: string[]; nodeInputs: string[] } {
  const rest: string[] = [];
  const nodeInputs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--node-input') {
      const v = argv[i + 1];
      if (v === undefined || v.startsWith('--')) throw new UsageError('option --node-input needs a value ID=VALUE');
      nodeInputs.push(v);
      i++;
    } else if (a.startsWith('--node-input=')) nodeInputs.push(a.slice('--node-input='.length));
    else rest.push(a);
  }
  return { rest, nodeInputs };
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

function valueInto(doc: GraphDocument, result: RunResult, nodeId: string, port: string): Value | undefined {
  const edge = doc.edges.find((e) => e.to.node === nodeId && e.to.port === port);
  return edge ? result.outputs[edge.from.node]?.[edge.from.port] : undefined;
}

/** What reaches the output nodes: text, and images written as PNG files into `outDir`. */
async function collectOutputs(doc: GraphDocument, result: RunResult, outDir: string): Promise<OutputValue[]> {
  const ran = new Set([...result.computed, ...result.cached]);
  const found: OutputValue[] = [];
  for (const node of doc.nodes) {
    if (!ran.has(node.id)) continue;
    if (node.type === 'io.text_output') {
      const v = valueInto(doc, result, node.id, 'text');
      if (typeof v === 'string') found.push({ node: node.id, text: v });
    } else if (node.type === 'io.image_output') {
      const v = valueInto(doc, result, node.id, 'image');
      if (v === undefined || typeof v === 'string') continue;
      const { range } = imageOutputParams.parse(node.params);
      const pngs = await imagesToPng(v as Tensor, range, `node '${node.id}' input 'image'`);
      mkdirSync(outDir, { recursive: true });
      const paths = pngs.map((png, i) => {
        const path = resolve(outDir, i === 0 ? `${node.id}.png` : `${node.id}-${i}.png`);
        writeFileAtomic(path, png);
        return path;
      });
      found.push({ node: node.id, paths });
    }
  }
  if (found.length === 0) {
    // No output node: the text of the sinks (e.g. a decoder that is the last node).
    const fed = new Set(doc.edges.map((e) => e.from.node));
    for (const id of ran) {
      if (fed.has(id)) continue;
      for (const v of Object.values(result.outputs[id] ?? {})) if (typeof v === 'string') found.push({ node: id, text: v });
    }
  }
  return found;
}

export async function runCommand(argv: string[], out: (line: string) => void): Promise<number> {
  const { rest, nodeInputs } = extractNodeInputs(argv);
  const { positionals, flags } = parseArgs(rest, ['json']);
  const opts = validateFlags(flagsSchema, flags);
  if (positionals.length !== 1) throw new UsageError(`usage: ${runUsage}`);
  const { doc, baseDir } = loadGraph(positionals[0]);

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

  // The best execution provider that works on this machine (CUDA/DML/CoreML where present, else the CPU).
  const executor = new Executor({ executionProviders: 'auto' });
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  const onEvent = opts.json ? (e: RunEvent) => out(JSON.stringify(e)) : undefined;
  try {
    const result = await executor.run(doc, { baseDir, inputs, signal: controller.signal, onEvent });
    const outputs = await collectOutputs(doc, result, resolve(opts.out ?? '.'));
    if (opts.json) {
      const summary: Record<string, Record<string, Summary>> = {};
      for (const [id, ports] of Object.entries(result.outputs)) {
        summary[id] = Object.fromEntries(Object.entries(ports).map(([p, v]) => [p, summarise(v)]));
      }
      for (const o of outputs) summary[o.node] = { ...summary[o.node], ...(o.text !== undefined ? { text: o.text } : {}), ...(o.paths ? { path: o.paths[0], paths: o.paths } : {}) };
      out(JSON.stringify({ type: 'result', outputs: summary, computed: result.computed, cached: result.cached, ms: Math.round(result.totalMs), executionProvider: executor.executionProviders[0] }));
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
