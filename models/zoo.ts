// The built-in model zoo: trains the tiny template models from seed on the built-in shapes data and writes their
// weights to models/zoo/ (one safetensors file per trained part, plus zoo.json with hashes, seeds, steps and the
// accuracies measured here), then points the templates in graphs/ at them.
//
//   npm run zoo                      everything (stages in order; each reads the weights of the stages before it)
//   npm run zoo -- --only a,b        only these stages (the others' weights must already be in models/zoo/, and
//                                    intermediates in models/zoo/.work/, which only a full run deletes)
//   npm run zoo -- --eval            only measure the templates as they are
//   npm run zoo -- --eval --chromium only measure them on the held-out Chromium set (models/eval-chromium/)
//   npm run zoo -- --jobs N          stages side by side (default 2: one ORT training uses about one core here)
//
// Stages: two vision encoders contrastively against a CLIP text tower (the CLIP ViT of CLIP, LLaVA and NExT-GPT; the
// EVA ViT the BLIP-2 family shares), each frozen afterwards as in the papers; the LLaMA and OPT decoders on captions
// alone (intermediates in models/zoo/.work/); then per template its projector and LLM together on single-shape
// conversations (a projector alone cannot steer a frozen text-only LLM: measured); last the generator: a UNet on the
// CLIP text tower's states (text-to-image), and NExT-GPT's output projector aligned to that text tower.

import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { z } from 'zod';
import { type GraphDocument, graphDocumentFromJson, parseGraphDocument } from '../electron/engine/document.js';
import { Executor } from '../electron/engine/executor.js';
import { SHAPE_COLORS, SHAPE_KINDS } from '../electron/engine/datasets/index.js';
import { hashBytes } from '../electron/engine/keys.js';
import { type TrainOptions, train } from '../electron/engine/trainer/trainer.js';
import { writeFileAtomic } from '../electron/onnx/atomic.js';
import { evaluateEvalSet, evaluateTemplate, isCaptioningOrZeroShot, type TemplateAccuracy } from './zoo-eval.js';

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
  /** Per template: the held-out set drawn in Chromium (models/eval-chromium/; zoo-eval.ts evaluateEvalSet). */
  chromiumEval: z.record(z.string(), z.record(z.string(), z.number())).optional(),
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

/** Asks node `id` to start the named weights (or '*': all its file lacks) from the seed despite its weights file. */
function withFreshWeights(g: GraphDocument, id: string, fresh: string[]): GraphDocument {
  const out = structuredClone(g);
  const node = out.nodes.find((n) => n.id === id);
  if (!node) throw new Error(`graph '${g.name}' has no node '${id}'`);
  node.freshWeights = fresh;
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
  /** Stages whose outputs this one reads: it starts when they are done (independent stages run side by side). */
  after: string[];
  /** The graph to train (weights of earlier stages already attached, relative to ZOO_DIR). */
  graph: () => GraphDocument;
  recipe: string;
  steps: number;
  batchSize: number;
  learningRate: number;
  datasetSize: number;
  shapes?: TrainOptions['shapes'];
  seed: number;
  /** nextgpt-align: the text-to-image graph the output projector learns to imitate (weights relative to ZOO_DIR). */
  teacher?: () => GraphDocument;
  /** Trained node → zoo file it becomes. */
  outputs: Record<string, string>;
}

const SINGLE = { minShapes: 1, maxShapes: 1 } as const;

/** Intermediate weights (the input of a later stage, used by no template) live here, removed at the end of a run. */
const WORK = (file: string): string => `.work/${file}`;

/**
 * What the generator learns to draw: one large shape in the centre, drawn twice as large (at the UNet's 32×32 a large
 * shape would be 8 px across, too few to tell a triangle from a circle).
 */
const DRAWN = { ...SINGLE, captionStyle: 'varied', sizes: ['large'], positions: ['center'], zoom: 2 } satisfies TrainOptions['shapes'];

/** The LLaMA decoder after its text-only stage: its untied word embedding is a file of its own (the Embed tokens node's). */
const LLAMA_LM = { embed: WORK('llama_embed.safetensors'), llm: WORK('llama_decoder.safetensors') };

/**
 * Projector-stage data: single shapes, 30% of the pictures degraded like the encoders' (see CONTRASTIVE). Measured on
 * LLaVA (40 held-out scenes / their 360 re-drawn variants): 0.93 / 0.87 clean, 0.95 / 0.94 degraded; with half the
 * pictures degraded harder and encoders trained on clean pictures only, InstructBLIP fell from 0.93 to 0.75.
 */
const DEGRADED = { ...SINGLE, augment: 0.3 } as const;

/**
 * Contrastive pre-training data: single shapes, captions naming colour and shape plus sometimes size and position,
 * 30% of the pictures degraded (other side, blur, JPEG). Measured (CLIP zero-shot shape, 40 held-out scenes, each
 * also in all 9 re-drawn variants): clean training 0.90 held-out / 0.82 variants (0.68 at 32 px, 0.75 resized);
 * degraded 0.97 / 0.91; blur alone 0.80 / 0.70; half of them degraded with harsher ranges 0.55 / 0.63.
 */
const CONTRASTIVE = { ...SINGLE, captionStyle: 'varied', augment: 0.3 } as const;

export const STAGES: Stage[] = [
  {
    // Measured (100 held-out images, zero-shot): full captions only → colour 0.89, shape 0.33 (size and position tell
    // a batch apart, so shape is never needed); varied captions, 1200 steps → 1.00 / 0.85; 2000 steps on 12288
    // scenes → 0.99 / 0.91.
    name: 'clip-vit', recipe: 'clip', after: [], seed: 1, steps: 2000, batchSize: 32, learningRate: 1e-3, datasetSize: 12288, shapes: CONTRASTIVE,
    graph: () => contrastiveGraph('encoder.clip_vit'),
    outputs: { vit: 'clip_vit.safetensors', text_encoder: 'clip_text.safetensors' },
  },
  {
    // EVA-CLIP: the EVA ViT the BLIP-2 family (BLIP-2, InstructBLIP, MiniGPT-4) shares, frozen, as in their papers.
    // Measured through BLIP-2 (40 held-out scenes / their 360 re-drawn variants): 2000 steps 0.95 / 0.875, 3000 steps
    // 0.97 / 0.93 (32-px re-renders 0.75 → 0.79, resized 0.80 → 0.93); half the pictures degraded 0.90 / 0.83.
    name: 'eva-vit', recipe: 'clip', after: [], seed: 2, steps: 3000, batchSize: 32, learningRate: 1e-3, datasetSize: 12288, shapes: CONTRASTIVE,
    graph: () => contrastiveGraph('encoder.eva_vit'),
    outputs: { vit: 'eva_vit.safetensors', text_encoder: WORK('eva_text.safetensors') },
  },
  {
    // Intermediate: the LLaMA decoder learns the caption language before it sees images.
    name: 'llama-lm', recipe: 'lm', after: [], seed: 4, steps: 150, batchSize: 32, learningRate: 2e-3, datasetSize: 1024,
    graph: () => textOnlyGraph(loadTemplate('llava-1.5.graph.json')),
    outputs: { embed: WORK('llama_embed.safetensors'), llm: WORK('llama_decoder.safetensors') },
  },
  {
    // Intermediate: the OPT decoder of BLIP-2 likewise.
    name: 'opt-lm', recipe: 'lm', after: [], seed: 6, steps: 150, batchSize: 32, learningRate: 2e-3, datasetSize: 1024,
    graph: () => textOnlyGraph(loadTemplate('blip2.graph.json')),
    outputs: { llm: WORK('opt_decoder.safetensors') },
  },
  {
    // The vision encoder stays frozen as in the paper. Measured: with the LLM frozen after text-only training, the
    // projector cannot steer it (the loss stays at the text-only floor), so the LLM trains with the projector on
    // image-grounded conversations. Steps 800 / 3000 / 4000: held-out 0.80 / 0.95 / 0.875 (4000 overfits: loss 0.0004).
    name: 'llava', recipe: 'instruction', after: ['clip-vit', 'llama-lm'], seed: 5, steps: 3000, batchSize: 16, learningRate: 1e-3, datasetSize: 8192, shapes: DEGRADED,
    graph: () => unfreeze(withWeights(loadTemplate('llava-1.5.graph.json'), { vit: 'clip_vit.safetensors', ...LLAMA_LM }, ZOO_DIR), ['embed', 'llm']),
    outputs: { proj: 'llava_projector.safetensors', embed: 'llava_embed.safetensors', llm: 'llava_llama.safetensors' },
  },
  {
    // BLIP-2 (OPT) on the shared EVA ViT: Q-Former and OPT train together. Measured (40 held-out scenes / their 360
    // re-drawn variants): clean pictures 2000 / 4000 steps 0.88 / 0.85 and 0.90 / 0.88; degraded 0.95 / 0.875 and
    // 0.88 / 0.875.
    name: 'blip2', recipe: 'instruction', after: ['eva-vit', 'opt-lm'], seed: 10, steps: 2000, batchSize: 16, learningRate: 1e-3, datasetSize: 8192, shapes: DEGRADED,
    graph: () => unfreeze(withWeights(loadTemplate('blip2.graph.json'), { vit: 'eva_vit.safetensors', llm: WORK('opt_decoder.safetensors') }, ZOO_DIR), ['embed', 'llm']),
    outputs: { qformer: 'blip2_qformer.safetensors', llm: 'blip2_opt.safetensors' },
  },
  {
    // MiniGPT-4 as in its paper: BLIP-2's Q-Former (its 96-wide output, OPT's width, feeds MiniGPT-4's own linear
    // projection), here trained on with llama_proj and LLaMA. Measured (40 held-out scenes / their 360 re-drawn
    // variants): Q-Former from seed 0.88 / 0.77; from BLIP-2's, frozen 0.95 / 0.88, trained 0.97 / 0.89, trained on
    // degraded pictures 0.97 / 0.91.
    name: 'minigpt4', recipe: 'instruction', after: ['eva-vit', 'llama-lm', 'blip2'], seed: 8, steps: 2000, batchSize: 16, learningRate: 1e-3, datasetSize: 8192, shapes: DEGRADED,
    graph: () => unfreeze(withWeights(loadTemplate('minigpt4.graph.json'), { vit: 'eva_vit.safetensors', qformer: 'blip2_qformer.safetensors', ...LLAMA_LM }, ZOO_DIR), ['qformer', 'embed', 'llm']),
    outputs: { qformer: 'minigpt4_qformer.safetensors', proj: 'minigpt4_proj.safetensors', embed: 'minigpt4_embed.safetensors', llm: 'minigpt4_llama.safetensors' },
  },
  {
    // InstructBLIP (Vicuna) on the shared EVA ViT: the instruction-aware Q-Former starts from BLIP-2's (as in the
    // paper) and trains with LLaMA. Measured (before the encoders saw degraded pictures): from seed, 3000 steps name
    // shape on 0.85 / 0.775 (held-out / variants); from BLIP-2's, 0.90 / 0.85 at 3000 steps.
    name: 'instructblip', recipe: 'instruction', after: ['eva-vit', 'llama-lm', 'blip2'], seed: 12, steps: 4000, batchSize: 16, learningRate: 1e-3, datasetSize: 8192, shapes: DEGRADED,
    // BLIP-2's Q-Former has no instruction branch (word/position embeddings, text FFNs): those start from the seed.
    graph: () => withFreshWeights(unfreeze(withWeights(loadTemplate('instructblip.graph.json'), {
      vit: 'eva_vit.safetensors', qformer: 'blip2_qformer.safetensors', ...LLAMA_LM,
    }, ZOO_DIR), ['embed', 'llm']), 'qformer', ['*']),
    outputs: { qformer: 'instructblip_qformer.safetensors', embed: 'instructblip_embed.safetensors', llm: 'instructblip_llama.safetensors' },
  },
  {
    // The generator, as Stable Diffusion is trained: the UNet learns to draw each request's image from the frozen CLIP
    // text tower's states (16 tokens, padded). Measured (18 requests): 2000 steps draw the asked colour on all and the
    // asked shape on most; with the conditioning only in cross-attention (no pooled text-time embedding) colour
    // drifted (red → purple, green → blue) after 800 steps.
    name: 'text-to-image', recipe: 'text-to-image', after: ['clip-vit'], seed: 14, steps: 2000, batchSize: 8, learningRate: 2e-3, datasetSize: 2048, shapes: DRAWN,
    graph: () => withWeights(loadTemplate('text-to-image.graph.json'), { text_encoder: 'clip_text.safetensors' }, ZOO_DIR),
    outputs: { unet: 'diffusion_unet.safetensors' },
  },
  {
    // NExT-GPT's decoding-side alignment: the output projector (and the LLM, which learns to carry the request to the
    // signal tokens) learn to reproduce the CLIP text tower's states for the same request, so the UNet above draws
    // what the LLM is asked for. Measured: through the diffusion loss alone (output projector, + LLM, + UNet, 600 steps
    // each) every request drew the same shape; with the LLM frozen the alignment MSE stays 16× higher.
    name: 'nextgpt', recipe: 'nextgpt-align', after: ['clip-vit', 'minigpt4'], seed: 15, steps: 3000, batchSize: 8, learningRate: 1e-3, datasetSize: 2048, shapes: DRAWN,
    graph: () => unfreeze(withWeights(loadTemplate('nextgpt.graph.json'), { vit: 'clip_vit.safetensors', embed: 'minigpt4_embed.safetensors', llm: 'minigpt4_llama.safetensors' }, ZOO_DIR), ['embed', 'llm']),
    teacher: () => withWeights(loadTemplate('text-to-image.graph.json'), { text_encoder: 'clip_text.safetensors' }, ZOO_DIR),
    outputs: { outproj: 'nextgpt_outproj.safetensors', embed: 'nextgpt_embed.safetensors', llm: 'nextgpt_llama.safetensors' },
  },
];

/**
 * Which zoo files each template's nodes load (written into graphs/ by `linkTemplates`). Templates not listed here
 * (BLIP, Flamingo, mPLUG-Owl) are not trained by the zoo and run from their seeded weights. NExT-GPT's input side
 * (its linear projector) is not trained: the zoo teaches it to draw, not to read images.
 */
export const TEMPLATE_WEIGHTS: Record<string, Record<string, string>> = {
  'clip.graph.json': { vit: 'clip_vit.safetensors', text_encoder: 'clip_text.safetensors' },
  'llava-1.5.graph.json': { vit: 'clip_vit.safetensors', proj: 'llava_projector.safetensors', embed: 'llava_embed.safetensors', llm: 'llava_llama.safetensors' },
  'minigpt4.graph.json': {
    vit: 'eva_vit.safetensors', qformer: 'minigpt4_qformer.safetensors', proj: 'minigpt4_proj.safetensors', embed: 'minigpt4_embed.safetensors',
    llm: 'minigpt4_llama.safetensors',
  },
  'blip2.graph.json': { vit: 'eva_vit.safetensors', qformer: 'blip2_qformer.safetensors', llm: 'blip2_opt.safetensors' },
  'instructblip.graph.json': {
    vit: 'eva_vit.safetensors', qformer: 'instructblip_qformer.safetensors', embed: 'instructblip_embed.safetensors', llm: 'instructblip_llama.safetensors',
  },
  'text-to-image.graph.json': { text_encoder: 'clip_text.safetensors', unet: 'diffusion_unet.safetensors' },
  'nextgpt.graph.json': {
    vit: 'clip_vit.safetensors', embed: 'nextgpt_embed.safetensors', llm: 'nextgpt_llama.safetensors', outproj: 'nextgpt_outproj.safetensors',
    unet: 'diffusion_unet.safetensors',
  },
};

interface StageResult {
  steps: number;
  finalLoss: number;
  seconds: number;
}

/** Trains one stage into models/zoo/.work/<stage>/ (weights, graph, checkpoints). */
async function trainStage(stage: Stage): Promise<StageResult> {
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
    teacher: stage.teacher && { graph: stage.teacher(), baseDir: ZOO_DIR },
    evalAtEnd: true,
    out,
    onEvent: (e) => {
      if (e.type === 'step' && (e.step % 100 === 0 || e.step === 1)) {
        console.log(`  [${stage.name}] step ${e.step}/${e.totalSteps} loss ${e.loss.toFixed(4)} (${e.samplesPerSec.toFixed(0)} samples/s)`);
      } else if (e.type === 'eval') console.log(`  [${stage.name}] eval ${JSON.stringify(e.metrics)}`);
      if (e.type === 'step') last = e.loss;
    },
  });
  return { steps: result.steps, finalLoss: last, seconds: (performance.now() - t0) / 1000 };
}

/** Copies a trained stage's outputs into models/zoo/ and records them (hashes, settings, loss, time) in the manifest. */
function recordStage(stage: Stage, result: StageResult, manifest: ZooManifest): void {
  const out = join(WORK_DIR, stage.name);
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
    datasetSize: stage.datasetSize, finalLoss: result.finalLoss, seconds: Math.round(result.seconds), outputs: stage.outputs,
  };
  writeManifest(manifest);
  console.log(`stage ${stage.name}: ${result.steps} steps in ${result.seconds.toFixed(0)} s, final loss ${result.finalLoss.toFixed(4)}`);
}

const RESULT_PREFIX = 'ZOO_STAGE_RESULT ';

/** One stage in a child process (ORT training uses about one core here, so two stages side by side use both). */
function trainStageInChild(stage: Stage): Promise<StageResult> {
  return new Promise((resolveResult, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, import.meta.filename, '--stage', stage.name], { stdio: ['ignore', 'pipe', 'inherit'] });
    let result: StageResult | undefined;
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (line.startsWith(RESULT_PREFIX)) result = JSON.parse(line.slice(RESULT_PREFIX.length)) as StageResult;
        else console.log(line);
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0 && result) resolveResult(result);
      else reject(new Error(`stage '${stage.name}' failed (exit code ${code}); its log is above`));
    });
  });
}

/** Runs the stages, up to `jobs` at a time, each once the stages it reads from are done. */
async function runStages(stages: Stage[], jobs: number, manifest: ZooManifest): Promise<void> {
  const waiting = new Set(stages.map((s) => s.name));
  const done = new Set(STAGES.filter((s) => !waiting.has(s.name)).map((s) => s.name));
  const running = new Map<string, Promise<string>>();
  while (waiting.size || running.size) {
    for (const stage of stages) {
      if (running.size >= jobs) break;
      if (!waiting.has(stage.name) || !stage.after.every((d) => done.has(d))) continue;
      waiting.delete(stage.name);
      console.log(`stage ${stage.name} (${stage.recipe}, ${stage.steps} steps)`);
      running.set(stage.name, trainStageInChild(stage).then((r) => (recordStage(stage, r, manifest), stage.name)));
    }
    if (!running.size) throw new Error(`stages ${[...waiting].join(', ')} wait for stages that are neither run nor done`);
    const finished = await Promise.race(running.values());
    running.delete(finished);
    done.add(finished);
  }
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
  for (const file of Object.keys(m.chromiumEval ?? {})) if (!(file in TEMPLATE_WEIGHTS)) delete m.chromiumEval![file];
}

async function main(argv: string[]): Promise<void> {
  if (argv.includes('--stage')) {
    // Child of runStages: train one stage, report its result on stdout.
    const name = argv[argv.indexOf('--stage') + 1];
    const stage = STAGES.find((s) => s.name === name);
    if (!stage) throw new Error(`--stage: no stage '${name}' (one of ${STAGES.map((s) => s.name).join(', ')})`);
    console.log(RESULT_PREFIX + JSON.stringify(await trainStage(stage)));
    return;
  }
  const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1].split(',') : undefined;
  const jobs = argv.includes('--jobs') ? Number(argv[argv.indexOf('--jobs') + 1]) : 2;
  if (!Number.isInteger(jobs) || jobs < 1) throw new Error('--jobs: a positive integer');
  const evalOnly = argv.includes('--eval');
  const chromiumOnly = argv.includes('--chromium');
  if (chromiumOnly && !evalOnly) throw new Error('--chromium: only with --eval');
  mkdirSync(ZOO_DIR, { recursive: true });
  const manifest = readManifest();
  pruneZoo(manifest);
  writeManifest(manifest);
  const t0 = performance.now();
  if (!evalOnly) {
    await runStages(STAGES.filter((s) => !only || only.includes(s.name)), jobs, manifest);
    linkTemplates();
  }
  if (!only && !evalOnly) manifest.totalSeconds = Math.round((performance.now() - t0) / 1000);
  const executor = new Executor();
  try {
    for (const file of Object.keys(TEMPLATE_WEIGHTS)) {
      if (!Object.values(TEMPLATE_WEIGHTS[file]).every((w) => existsSync(join(ZOO_DIR, w)))) continue;
      if (only && !evalOnly && !STAGES.some((s) => only.includes(s.name) && Object.values(s.outputs).some((o) => Object.values(TEMPLATE_WEIGHTS[file]).includes(o)))) continue;
      if (!chromiumOnly) {
        const acc: TemplateAccuracy = await evaluateTemplate(executor, file, { images: 40, seed: 99 });
        manifest.accuracy[file] = acc;
        console.log(`accuracy ${file}: ${JSON.stringify(acc)}`);
      }
      if (isCaptioningOrZeroShot(parseGraphDocument(readFileSync(join(GRAPHS_DIR, file), 'utf8'), file))) {
        const held: TemplateAccuracy = await evaluateEvalSet(executor, file);
        manifest.chromiumEval = { ...manifest.chromiumEval, [file]: held };
        console.log(`chromium set ${file}: ${JSON.stringify(held)}`);
      }
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
