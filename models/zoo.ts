// The built-in model zoo: trains the tiny template models from seed on the built-in shapes data and writes their
// weights to models/zoo/ (one safetensors file per trained part, plus zoo.json with hashes, seeds, steps and the
// accuracies measured here), then points the templates in graphs/ at them.
//
//   npm run zoo                      everything (stages in order; each reads the weights of the stages before it)
//   npm run zoo -- --only a,b        only these stages (the others' weights must already be in models/zoo/, and
//                                    intermediates in models/zoo/.work/, which only a full run deletes)
//   npm run zoo -- --eval            only measure the templates as they are
//
// Stages: two vision encoders contrastively against a CLIP text tower (the CLIP ViT of CLIP, LLaVA and NExT-GPT; the
// EVA ViT the BLIP-2 family shares), each frozen afterwards as in the papers; the LLaMA and OPT decoders on captions
// alone (intermediates in models/zoo/.work/); then per template its projector and LLM together on single-shape
// conversations (a projector alone cannot steer a frozen text-only LLM: measured).

import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { z } from 'zod';
import { type GraphDocument, graphDocumentFromJson, parseGraphDocument } from '../electron/engine/document.js';
import { Executor } from '../electron/engine/executor.js';
import { SHAPE_COLORS, SHAPE_KINDS } from '../electron/engine/datasets/index.js';
import { hashBytes } from '../electron/engine/keys.js';
import { type TrainOptions, train } from '../electron/engine/trainer/trainer.js';
import { writeFileAtomic } from '../electron/onnx/atomic.js';
import { evaluateTemplate, type TemplateAccuracy } from './zoo-eval.js';

export const MODELS_DIR = import.meta.dirname;
export const ZOO_DIR = join(MODELS_DIR, 'zoo');
export const GRAPHS_DIR = resolve(MODELS_DIR, '..', 'graphs');
const WORK_DIR = join(ZOO_DIR, '.work');
const MANIFEST = join(ZOO_DIR, 'zoo.json');

/** The prompt every captioning stage trains with (and the accuracy check asks). */
export const DESCRIBE = 'Describe the image.';

// ---- the manifest ----------------------------------------------------------------------------------------------

const fileEntrySchema = z.strictObject({ sha256: z.string().regex(/^[0-9a-f]{64}$/), bytes: z.number().int().positive() });
const stageEntrySchema = z.strictObject({
  recipe: z.string(),
  seed: z.number().int(),
  steps: z.number().int().positive(),
  batchSize: z.number().int().positive(),
  learningRate: z.number().positive(),
  datasetSize: z.number().int().positive(),
  finalLoss: z.number(),
  seconds: z.number(),
  outputs: z.record(z.string(), z.string()),
});
const manifestSchema = z.strictObject({
  format: z.literal('composer.zoo'),
  version: z.literal(1),
  files: z.record(z.string(), fileEntrySchema),
  stages: z.record(z.string(), stageEntrySchema),
  accuracy: z.record(z.string(), z.record(z.string(), z.number())),
  totalSeconds: z.number().optional(),
});
export type ZooManifest = z.infer<typeof manifestSchema>;

export function readManifest(): ZooManifest {
  if (!existsSync(MANIFEST)) return { format: 'composer.zoo', version: 1, files: {}, stages: {}, accuracy: {} };
  const parsed = manifestSchema.safeParse(JSON.parse(readFileSync(MANIFEST, 'utf8')));
  if (!parsed.success) throw new Error(`${MANIFEST}: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

function writeManifest(m: ZooManifest): void {
  writeFileAtomic(MANIFEST, `${JSON.stringify(m, null, 2)}\n`);
}

/** `{path, sha256}` of a zoo file, relative to `fromDir`. */
function weightsRef(file: string, fromDir: string): { path: string; sha256: string } {
  const abs = join(ZOO_DIR, file);
  if (!existsSync(abs)) throw new Error(`zoo file '${file}' is missing: run the stage that writes it first`);
  return { path: relative(fromDir, abs), sha256: hashBytes(readFileSync(abs)) };
}

// ---- graphs the stages train ------------------------------------------------------------------------------------

type NodeJson = { id: string; type: string; params?: Record<string, unknown>; frozen?: boolean; weights?: { path: string; sha256: string } };
type EdgeJson = { from: { node: string; port: string }; to: { node: string; port: string } };
const edge = (from: string, to: string): EdgeJson => {
  const [fn, fp] = from.split('.');
  const [tn, tp] = to.split('.');
  return { from: { node: fn, port: fp }, to: { node: tn, port: tp } };
};
const doc = (name: string, nodes: NodeJson[], edges: EdgeJson[]): GraphDocument =>
  graphDocumentFromJson({ format: 'composer.graph', version: 1, name, seed: 0, nodes, edges }, name);

/** Image encoder against a CLIP text tower ("a photo of <caption>"): the contrastive pre-training graph. */
function contrastiveGraph(encoderType: string): GraphDocument {
  return doc(`zoo ${encoderType} contrastive`, [
    { id: 'image', type: 'io.image', params: { size: 64 } },
    { id: 'vit', type: encoderType, params: {} },
    { id: 'prompt', type: 'io.text', params: { text: '' } },
    { id: 'template', type: 'prompt.instruction', params: { template: 'a photo of {input}' } },
    { id: 'labels', type: 'text.tokenize', params: {} },
    { id: 'text_encoder', type: 'encoder.clip_text', params: {} },
  ], [
    edge('image.pixel_values', 'vit.pixel_values'),
    edge('prompt.text', 'template.text'),
    edge('template.text', 'labels.text'),
    edge('labels.input_ids', 'text_encoder.input_ids'),
    edge('labels.attention_mask', 'text_encoder.attention_mask'),
  ]);
}

/**
 * A template's text path alone (prompt chain → tokenizer → embed → decoder): the LLM learns to answer the template's
 * prompt with a caption before it ever sees an image.
 */
function textOnlyGraph(template: GraphDocument): GraphDocument {
  const keep = new Set<string>();
  const tokenizer = template.edges.find((e) => e.to.node === 'embed' && e.to.port === 'input_ids')!.from.node;
  const stack = [tokenizer];
  while (stack.length) {
    const id = stack.pop()!;
    if (keep.has(id)) continue;
    keep.add(id);
    for (const e of template.edges) if (e.to.node === id) stack.push(e.from.node);
  }
  keep.add('embed');
  keep.add('llm');
  const nodes = template.nodes.filter((n) => keep.has(n.id)).map((n) => structuredClone(n) as NodeJson);
  for (const n of nodes) if (n.type === 'io.text') n.params = { ...n.params, text: DESCRIBE };
  const edges = template.edges.filter((e) => keep.has(e.from.node) && keep.has(e.to.node)).map((e) => structuredClone(e));
  edges.push(edge(`${tokenizer}.attention_mask`, 'llm.attention_mask'));
  edges.push(edge('embed.inputs_embeds', 'llm.inputs_embeds'));
  const seen = new Set<string>();
  const unique = edges.filter((e) => {
    const k = `${e.to.node}.${e.to.port}`;
    return seen.has(k) ? false : (seen.add(k), true);
  });
  return doc(`zoo ${template.name} text`, nodes, unique);
}

/** A template as a stage starts from: without zoo weights (everything from seed, or from earlier stages). */
export function loadTemplate(file: string): GraphDocument {
  const g = parseGraphDocument(readFileSync(join(GRAPHS_DIR, file), 'utf8'), file);
  for (const n of g.nodes) delete n.weights;
  return g;
}

/** A template with zoo weights on the given nodes (paths relative to `fromDir`) and the describe prompt. */
function withWeights(g: GraphDocument, files: Record<string, string>, fromDir: string): GraphDocument {
  const out = structuredClone(g);
  for (const [id, file] of Object.entries(files)) {
    const node = out.nodes.find((n) => n.id === id);
    if (!node) throw new Error(`graph '${g.name}' has no node '${id}' for zoo file '${file}'`);
    node.weights = weightsRef(file, fromDir);
  }
  return out;
}

function withPrompt(g: GraphDocument, text: string): GraphDocument {
  const out = structuredClone(g);
  const p = out.nodes.find((n) => n.type === 'io.text');
  if (p) p.params = { ...p.params, text };
  return out;
}

function unfreeze(g: GraphDocument, ids: string[]): GraphDocument {
  const out = structuredClone(g);
  for (const n of out.nodes) if (ids.includes(n.id)) n.frozen = false;
  return out;
}

// ---- stages -----------------------------------------------------------------------------------------------------

interface Stage {
  name: string;
  /** The graph to train (weights of earlier stages already attached, relative to ZOO_DIR). */
  graph: () => GraphDocument;
  recipe: string;
  steps: number;
  batchSize: number;
  learningRate: number;
  datasetSize: number;
  shapes?: TrainOptions['shapes'];
  seed: number;
  /** Trained node → zoo file it becomes. */
  outputs: Record<string, string>;
}

const SINGLE = { minShapes: 1, maxShapes: 1 } as const;

/** Intermediate weights (the input of a later stage, used by no template) live here, removed at the end of a run. */
const WORK = (file: string): string => `.work/${file}`;

/** Contrastive pre-training data: single shapes, captions naming colour and shape plus sometimes size and position. */
const CONTRASTIVE = { ...SINGLE, captionStyle: 'varied' } as const;

export const STAGES: Stage[] = [
  {
    // Measured (100 held-out images, zero-shot): full captions only → colour 0.89, shape 0.33 (size and position tell
    // a batch apart, so shape is never needed); varied captions, 1200 steps → 1.00 / 0.85; 2000 steps on 12288
    // scenes → 0.99 / 0.91.
    name: 'clip-vit', recipe: 'clip', seed: 1, steps: 2000, batchSize: 32, learningRate: 1e-3, datasetSize: 12288, shapes: CONTRASTIVE,
    graph: () => contrastiveGraph('encoder.clip_vit'),
    outputs: { vit: 'clip_vit.safetensors', text_encoder: 'clip_text.safetensors' },
  },
  {
    // EVA-CLIP: the EVA ViT the BLIP-2 family (BLIP-2, InstructBLIP, MiniGPT-4) shares, frozen, as in their papers.
    name: 'eva-vit', recipe: 'clip', seed: 2, steps: 2000, batchSize: 32, learningRate: 1e-3, datasetSize: 12288, shapes: CONTRASTIVE,
    graph: () => contrastiveGraph('encoder.eva_vit'),
    outputs: { vit: 'eva_vit.safetensors', text_encoder: WORK('eva_text.safetensors') },
  },
  {
    // Intermediate: the LLaMA decoder learns the caption language before it sees images.
    name: 'llama-lm', recipe: 'lm', seed: 4, steps: 150, batchSize: 32, learningRate: 2e-3, datasetSize: 1024,
    graph: () => textOnlyGraph(loadTemplate('llava-1.5.graph.json')),
    outputs: { llm: WORK('llama_decoder.safetensors') },
  },
  {
    // Intermediate: the OPT decoder of BLIP-2 likewise.
    name: 'opt-lm', recipe: 'lm', seed: 6, steps: 150, batchSize: 32, learningRate: 2e-3, datasetSize: 1024,
    graph: () => textOnlyGraph(loadTemplate('blip2.graph.json')),
    outputs: { llm: WORK('opt_decoder.safetensors') },
  },
  {
    // The vision encoder stays frozen as in the paper. Measured: with the LLM frozen after text-only training, the
    // projector cannot steer it (the loss stays at the text-only floor), so the LLM trains with the projector on
    // image-grounded conversations.
    name: 'llava', recipe: 'instruction', seed: 5, steps: 3000, batchSize: 16, learningRate: 1e-3, datasetSize: 8192, shapes: SINGLE,
    graph: () => unfreeze(withWeights(loadTemplate('llava-1.5.graph.json'), { vit: 'clip_vit.safetensors', llm: WORK('llama_decoder.safetensors') }, ZOO_DIR), ['embed', 'llm']),
    outputs: { proj: 'llava_projector.safetensors', llm: 'llava_llama.safetensors' },
  },
  {
    // MiniGPT-4 on the shared EVA ViT: Q-Former, llama_proj and LLaMA train together.
    name: 'minigpt4', recipe: 'instruction', seed: 8, steps: 2000, batchSize: 16, learningRate: 1e-3, datasetSize: 8192, shapes: SINGLE,
    graph: () => unfreeze(withWeights(loadTemplate('minigpt4.graph.json'), { vit: 'eva_vit.safetensors', llm: WORK('llama_decoder.safetensors') }, ZOO_DIR), ['qformer', 'embed', 'llm']),
    outputs: { qformer: 'minigpt4_qformer.safetensors', proj: 'minigpt4_proj.safetensors', llm: 'minigpt4_llama.safetensors' },
  },
  {
    // BLIP-2 (OPT) on the shared EVA ViT: Q-Former and OPT train together.
    name: 'blip2', recipe: 'instruction', seed: 10, steps: 2000, batchSize: 16, learningRate: 1e-3, datasetSize: 8192, shapes: SINGLE,
    graph: () => unfreeze(withWeights(loadTemplate('blip2.graph.json'), { vit: 'eva_vit.safetensors', llm: WORK('opt_decoder.safetensors') }, ZOO_DIR), ['embed', 'llm']),
    outputs: { qformer: 'blip2_qformer.safetensors', llm: 'blip2_opt.safetensors' },
  },
  {
    // InstructBLIP (Vicuna) on the shared EVA ViT: the instruction-aware Q-Former starts from BLIP-2's (as in the
    // paper) and trains with LLaMA. Measured: from seed, 3000 steps name shape on 0.85 / 0.775 (held-out / variants).
    name: 'instructblip', recipe: 'instruction', seed: 12, steps: 3000, batchSize: 16, learningRate: 1e-3, datasetSize: 8192, shapes: SINGLE,
    graph: () => unfreeze(withWeights(loadTemplate('instructblip.graph.json'), {
      vit: 'eva_vit.safetensors', qformer: 'blip2_qformer.safetensors', llm: WORK('llama_decoder.safetensors'),
    }, ZOO_DIR), ['embed', 'llm']),
    outputs: { qformer: 'instructblip_qformer.safetensors', llm: 'instructblip_llama.safetensors' },
  },
];

/**
 * Which zoo files each template's nodes load (written into graphs/ by `linkTemplates`). Templates not listed here
 * (BLIP, Flamingo, mPLUG-Owl, NExT-GPT) are not trained by the zoo and run from their seeded weights. NExT-GPT's UNet
 * was tried (output projector + UNet, 400 and 1000 steps at batch 8, 0.5–0.7 s a step): ε-prediction sampled noise,
 * v-prediction a clean background without the shape, so no stage is kept yet.
 */
export const TEMPLATE_WEIGHTS: Record<string, Record<string, string>> = {
  'clip.graph.json': { vit: 'clip_vit.safetensors', text_encoder: 'clip_text.safetensors' },
  'llava-1.5.graph.json': { vit: 'clip_vit.safetensors', proj: 'llava_projector.safetensors', llm: 'llava_llama.safetensors' },
  'minigpt4.graph.json': {
    vit: 'eva_vit.safetensors', qformer: 'minigpt4_qformer.safetensors', proj: 'minigpt4_proj.safetensors', llm: 'minigpt4_llama.safetensors',
  },
  'blip2.graph.json': { vit: 'eva_vit.safetensors', qformer: 'blip2_qformer.safetensors', llm: 'blip2_opt.safetensors' },
  'instructblip.graph.json': { vit: 'eva_vit.safetensors', qformer: 'instructblip_qformer.safetensors', llm: 'instructblip_llama.safetensors' },
};

async function runStage(stage: Stage, manifest: ZooManifest): Promise<void> {
  const out = join(WORK_DIR, stage.name);
  rmSync(out, { recursive: true, force: true });
  const t0 = performance.now();
  let last = 0;
  const result = await train({
    graph: stage.graph(),
    baseDir: ZOO_DIR,
    recipe: stage.recipe,
    steps: stage.steps,
    batchSize: stage.batchSize,
    learningRate: stage.learningRate,
    dataset: 'shapes',
    datasetSize: stage.datasetSize,
    shapes: stage.shapes,
    seed: stage.seed,
    evalAtEnd: true,
    out,
    onEvent: (e) => {
      if (e.type === 'step' && (e.step % 25 === 0 || e.step === 1)) {
        console.log(`  [${stage.name}] step ${e.step}/${e.totalSteps} loss ${e.loss.toFixed(4)} (${e.samplesPerSec.toFixed(0)} samples/s)`);
      } else if (e.type === 'eval') console.log(`  [${stage.name}] eval ${JSON.stringify(e.metrics)}`);
      if (e.type === 'step') last = e.loss;
    },
  });
  const seconds = (performance.now() - t0) / 1000;
  for (const [node, file] of Object.entries(stage.outputs)) {
    const src = join(out, 'weights', `${node}.safetensors`);
    if (!existsSync(src)) throw new Error(`stage '${stage.name}': node '${node}' wrote no weights (did it train?)`);
    mkdirSync(dirname(join(ZOO_DIR, file)), { recursive: true });
    copyFileSync(src, join(ZOO_DIR, file));
    if (file.startsWith('.work/')) continue;
    const bytes = readFileSync(join(ZOO_DIR, file));
    manifest.files[file] = { sha256: hashBytes(bytes), bytes: bytes.length };
  }
  manifest.stages[stage.name] = {
    recipe: stage.recipe, seed: stage.seed, steps: result.steps, batchSize: stage.batchSize, learningRate: stage.learningRate,
    datasetSize: stage.datasetSize, finalLoss: last, seconds: Math.round(seconds), outputs: stage.outputs,
  };
  writeManifest(manifest);
  console.log(`stage ${stage.name}: ${result.steps} steps in ${seconds.toFixed(0)} s, final loss ${last.toFixed(4)}`);
}

/** The shapes classes as CLIP prompts: what the CLIP template classifies zero-shot. */
export const SHAPE_LABELS = SHAPE_COLORS.flatMap((c) => SHAPE_KINDS.map((k) => `a photo of a ${c} ${k}`));

/** Params the zoo sets on template nodes so the trained models are asked what they know. */
const TEMPLATE_PARAMS: Record<string, Record<string, Record<string, unknown>>> = {
  'clip.graph.json': { labels: { labels: SHAPE_LABELS } },
};

/** Points each template's trained nodes at the zoo files (node ids and everything else unchanged). */
export function linkTemplates(): void {
  for (const [file, weights] of Object.entries(TEMPLATE_WEIGHTS)) {
    if (!Object.values(weights).every((w) => existsSync(join(ZOO_DIR, w)))) continue;
    const path = join(GRAPHS_DIR, file);
    const raw = JSON.parse(readFileSync(path, 'utf8')) as { nodes: Array<{ id: string; weights?: unknown; params: Record<string, unknown> }> };
    for (const [id, w] of Object.entries(weights)) {
      const node = raw.nodes.find((n) => n.id === id);
      if (!node) throw new Error(`${file}: no node '${id}'`);
      node.weights = weightsRef(w, GRAPHS_DIR);
    }
    for (const [id, params] of Object.entries(TEMPLATE_PARAMS[file] ?? {})) {
      const node = raw.nodes.find((n) => n.id === id);
      if (!node) throw new Error(`${file}: no node '${id}'`);
      node.params = { ...node.params, ...params };
    }
    writeFileSync(path, `${JSON.stringify(raw, null, 2)}\n`);
  }
}

/** Drops what no stage or template uses any more: stale manifest entries and leftover safetensors in models/zoo/. */
function pruneZoo(m: ZooManifest): void {
  const used = new Set(Object.values(TEMPLATE_WEIGHTS).flatMap((w) => Object.values(w)));
  for (const file of readdirSync(ZOO_DIR)) {
    if (file.endsWith('.safetensors') && !used.has(file)) rmSync(join(ZOO_DIR, file));
  }
  for (const file of Object.keys(m.files)) if (!used.has(file)) delete m.files[file];
  for (const name of Object.keys(m.stages)) if (!STAGES.some((s) => s.name === name)) delete m.stages[name];
  for (const file of Object.keys(m.accuracy)) if (!(file in TEMPLATE_WEIGHTS)) delete m.accuracy[file];
}

async function main(argv: string[]): Promise<void> {
  const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1].split(',') : undefined;
  const evalOnly = argv.includes('--eval');
  mkdirSync(ZOO_DIR, { recursive: true });
  const manifest = readManifest();
  pruneZoo(manifest);
  writeManifest(manifest);
  const t0 = performance.now();
  if (!evalOnly) {
    for (const stage of STAGES) {
      if (only && !only.includes(stage.name)) continue;
      console.log(`stage ${stage.name} (${stage.recipe}, ${stage.steps} steps)`);
      await runStage(stage, manifest);
    }
    linkTemplates();
  }
  if (!only && !evalOnly) manifest.totalSeconds = Math.round((performance.now() - t0) / 1000);
  const executor = new Executor();
  try {
    for (const file of Object.keys(TEMPLATE_WEIGHTS)) {
      if (!Object.values(TEMPLATE_WEIGHTS[file]).every((w) => existsSync(join(ZOO_DIR, w)))) continue;
      if (only && !evalOnly && !STAGES.some((s) => only.includes(s.name) && Object.values(s.outputs).some((o) => Object.values(TEMPLATE_WEIGHTS[file]).includes(o)))) continue;
      const acc: TemplateAccuracy = await evaluateTemplate(executor, file, { images: 40, seed: 99 });
      manifest.accuracy[file] = acc;
      console.log(`accuracy ${file}: ${JSON.stringify(acc)}`);
      writeManifest(manifest);
    }
  } finally {
    await executor.dispose();
  }
  if (!only) rmSync(WORK_DIR, { recursive: true, force: true });
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  await main(process.argv.slice(2));
}
