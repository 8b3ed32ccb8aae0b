// Exact match through generation: the current trainables are written as a trained graph folder (the same one
// `--out` writes), and each held-out sample runs through the executor as a user would run it — its image to every
// io.image node, its question to the prompt node — with greedy decoding; the decoded answer is compared with the
// target after VQA normalisation (metrics.ts exactMatch).

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Tensor } from '../../onnx/ir.js';
import { encodePng } from '../image.js';
import { type GraphDocument, parseGraphDocument } from '../document.js';
import type { Executor, RunInput } from '../executor.js';
import { loadSampleImage } from '../datasets/index.js';
import type { Sample } from '../datasets/types.js';
import { ancestorsOf } from './plan.js';
import type { BuiltTraining } from './model.js';
import { OUT_GRAPH, writeTrainedGraph } from './export.js';
import { exactMatch } from './metrics.js';
import { TrainError } from './plan.js';

export interface GenerationEvalOptions {
  executor: Executor;
  /** The document as the user gave it, and the training copy (recipe freezing, added adapters). */
  graph: GraphDocument;
  doc: GraphDocument;
  baseDir: string;
  built: BuiltTraining;
  params: Map<string, Tensor>;
  /** Samples with the user text (question) and the target answer the trainer prepared. */
  samples: Array<{ sample: Sample; prompt?: string; target?: string }>;
  /** Cap on generated tokens (answers are short). */
  maxNewTokens?: number;
}

export interface GenerationEvalResult {
  exactMatch: number;
  count: number;
  /** Predicted and target answers (for reports). */
  answers: Array<{ id: string; predicted: string; target: string }>;
}

/** Greedy answers of the graph with the current trainables to each sample's prompt (its question, or the graph's own). */
export async function generateAnswers(o: GenerationEvalOptions): Promise<GenerationEvalResult['answers']> {
  const decoder = o.doc.nodes.find((n) => n.type === 'llm.decoder');
  if (!decoder) throw new TrainError('exact-match evaluation needs an llm.decoder node');
  // The io.text node upstream of the decoder takes the question (as SampleBuilder feeds it in training).
  const upstream = ancestorsOf(o.doc, [decoder.id]);
  const promptNode = o.doc.nodes.find((n) => n.type === 'io.text' && upstream.has(n.id));
  const imageNodes = o.doc.nodes.filter((n) => n.type === 'io.image' && upstream.has(n.id));
  const dir = mkdtempSync(join(tmpdir(), 'vlmc-eval-'));
  try {
    await writeTrainedGraph({ out: dir, graph: o.graph, doc: o.doc, baseDir: o.baseDir, built: o.built, params: o.params });
    const trained = parseGraphDocument(readFileSync(join(dir, OUT_GRAPH), 'utf8'), join(dir, OUT_GRAPH));
    const dec = trained.nodes.find((n) => n.id === decoder.id)!;
    const params = dec.params as Record<string, unknown>;
    const cap = o.maxNewTokens ?? 16;
    params.max_new_tokens = Math.min(typeof params.max_new_tokens === 'number' ? params.max_new_tokens : cap, cap);
    params.temperature = 0;
    const answers: GenerationEvalResult['answers'] = [];
    for (const s of o.samples) {
      if (s.target === undefined) throw new TrainError(`sample '${s.sample.id}' has no target answer for exact match`);
      const inputs: Record<string, RunInput> = {};
      if (imageNodes.length > 0) {
        const bytes = await encodePng(await loadSampleImage(s.sample));
        for (const n of imageNodes) inputs[n.id] = { bytes };
      }
      if (promptNode && s.prompt !== undefined) inputs[promptNode.id] = { text: s.prompt };
      const run = await o.executor.run(trained, { baseDir: dir, targets: [decoder.id], inputs });
      const text = run.outputs[decoder.id]?.text;
      if (typeof text !== 'string') throw new TrainError(`decoder '${decoder.id}' produced no text during exact-match evaluation`);
      answers.push({ id: s.sample.id, predicted: text, target: s.target });
    }
    return answers;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function generationExactMatch(o: GenerationEvalOptions): Promise<GenerationEvalResult> {
  const answers = await generateAnswers(o);
  const hits = answers.filter((a) => exactMatch(a.predicted, a.target)).length;
  return { exactMatch: answers.length > 0 ? hits / answers.length : 0, count: answers.length, answers };
}
