// Evaluation sets: the samples a graph is scored on, grouped the way the metrics need them — one item per image with
// all its reference captions (COCO has five), one per question with all its human answers (VQAv2 has ten), one per
// image with its texts for retrieval, one per image with its class for zero-shot. Sources: the built-in shapes data,
// every file format the trainer reads (captions JSONL/CSV, COCO captions, LLaVA conversations) and VQAv2's
// questions + annotations JSON.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import {
  DatasetError, type Sample, SHAPE_COLORS, SHAPE_KINDS, createShapesDataset, jsonPath, loadDataset, referenceCaptionsFor, resolveImagePath, splitSamples,
} from '../datasets/index.js';
import type { ShapeSample } from '../datasets/shapes.js';
import { hashString } from '../rng.js';
import type { VqaReferences } from './metrics/vqa.js';

export const EVAL_TASKS = ['caption', 'vqa', 'retrieval', 'zero-shot', 'generation'] as const;
export type EvalTask = (typeof EVAL_TASKS)[number];
export type EvalSplit = 'train' | 'eval' | 'all';

export class EvalError extends Error {
  override name = 'EvalError';
}

/** What one item of an evaluation set holds; `sample` gives the pixels (loadSampleImage). */
export interface EvalItem {
  id: string;
  sample: Sample;
  /** Caption and retrieval: the reference captions (retrieval: the texts that describe this image). */
  references?: string[];
  /** VQA: the question and the human answers. */
  question?: string;
  answers?: string[];
  /** Zero-shot: the index of the image's class in EvalSet.labels. */
  label?: number;
  /** Generation: the request and the colour/shape it asks for (shapes). */
  request?: string;
  /** Shapes: what the picture shows (for the colour/shape accuracy of a caption or a drawing). */
  shapes?: Array<{ color: string; shape: string }>;
}

export interface EvalSet {
  name: string;
  task: EvalTask;
  items: EvalItem[];
  /** Zero-shot: the class names (prompts). */
  labels?: string[];
  /** VQA: how the human answers are compared (see metrics/vqa.ts). */
  vqaReferences?: VqaReferences;
}

export interface EvalSetOptions {
  task: EvalTask;
  split?: EvalSplit;
  /** At most this many items (images; questions for VQA). */
  limit?: number;
  seed?: number;
  /** VQAv2: the questions file (when `dataset` is the annotations file). */
  questions?: string;
  /** VQAv2: the folder of the images (default: the annotations file's folder). */
  images?: string;
}

/** Single-shape scenes, as the zoo's models were trained and measured (models/zoo-eval.ts). */
export const SHAPES_SCENES = { minShapes: 1, maxShapes: 1 } as const;
const DEFAULT_LIMIT = 100;

/** The class prompts of zero-shot on shapes: every colour × shape (the CLIP template's labels). */
export function shapeClassLabels(): string[] {
  return SHAPE_COLORS.flatMap((c) => SHAPE_KINDS.map((k) => `a photo of a ${c} ${k}`));
}

export function loadEvalSet(dataset: string, o: EvalSetOptions): EvalSet {
  const limit = o.limit ?? (dataset === 'shapes' ? DEFAULT_LIMIT : Infinity);
  if (!(limit > 0)) throw new EvalError(`limit must be positive, got ${o.limit}`);
  const set = dataset === 'shapes' ? shapesSet(o, Number.isFinite(limit) ? limit : DEFAULT_LIMIT) : fileSet(dataset, o);
  if (set.items.length === 0) throw new EvalError(`dataset '${dataset}' has no samples for the ${o.task} task${o.split ? ` in split '${o.split}'` : ''}`);
  return { ...set, items: set.items.slice(0, limit) };
}

// ---- shapes ----------------------------------------------------------------------------------------------------

function shapesSet(o: EvalSetOptions, count: number): EvalSet {
  const split = o.split ?? 'eval';
  if (split === 'all') throw new EvalError("the shapes data has a 'train' and an 'eval' split, not 'all'");
  const ds = createShapesDataset({ ...SHAPES_SCENES, seed: o.seed ?? 0, split, numSamples: count });
  const samples = [...ds] as ShapeSample[];
  const shapesOf = (s: ShapeSample) => s.description.map((d) => ({ color: d.color, shape: d.shape }));
  const name = `shapes (${split})`;
  switch (o.task) {
    case 'caption':
      return { name, task: o.task, items: samples.map((s) => ({ id: s.id, sample: s, references: referenceCaptionsFor(s.description), shapes: shapesOf(s) })) };
    case 'retrieval':
      return { name, task: o.task, items: samples.map((s) => ({ id: s.id, sample: s, references: [s.caption], shapes: shapesOf(s) })) };
    case 'vqa':
      // One question per image (fixed by its id, as the trainer picks them); its answer stands for ten agreeing humans.
      return {
        name, task: o.task, vqaReferences: 'normalise',
        items: samples.map((s) => {
          const qa = s.qa[hashString(s.id) % s.qa.length];
          return { id: s.id, sample: s, question: qa.question, answers: Array(10).fill(qa.answer), shapes: shapesOf(s) };
        }),
      };
    case 'zero-shot': {
      const labels = shapeClassLabels();
      return {
        name, task: o.task, labels,
        items: samples.map((s) => ({ id: s.id, sample: s, label: labels.indexOf(`a photo of a ${s.description[0].color} ${s.description[0].shape}`), shapes: shapesOf(s) })),
      };
    }
    case 'generation': {
      // Every colour × shape request, as many rounds as `count` asks (each round another noise seed).
      const items: EvalItem[] = [];
      for (let round = 0; items.length < count; round++) {
        for (const c of SHAPE_COLORS) {
          for (const k of SHAPE_KINDS) {
            if (items.length >= count) break;
            const request = `Show me a picture of a ${c} ${k}.`;
            items.push({ id: `draw-${c}-${k}-${round + 1}`, sample: { id: `draw-${c}-${k}-${round + 1}`, caption: `a ${c} ${k}` }, request, shapes: [{ color: c, shape: k }] });
          }
        }
      }
      return { name: 'shapes (colour × shape requests)', task: o.task, items };
    }
  }
}

/**
 * The reference captions of a sample: a shapes scene's phrasings, or every caption in `pool` of the same image
 * (COCO files hold one sample per caption).
 */
export function referencesOf(sample: Sample, pool: readonly Sample[]): string[] {
  const description = (sample as Partial<ShapeSample>).description;
  if (description) return referenceCaptionsFor(description);
  const same = sample.imagePath === undefined ? [sample] : pool.filter((s) => s.imagePath === sample.imagePath);
  const refs = same.map((s) => s.caption).filter((c): c is string => c !== undefined);
  return refs.length ? refs : sample.caption ? [sample.caption] : [];
}

/** The first sample of each image, in order. */
export function onePerImage<S extends Sample>(samples: readonly S[]): S[] {
  const seen = new Set<string>();
  return samples.filter((s) => {
    const key = s.imagePath ?? s.id;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

// ---- files ------------------------------------------------------------------------------------------------------

function fileSet(file: string, o: EvalSetOptions): EvalSet {
  const path = resolve(file);
  if (!existsSync(path)) throw new EvalError(`dataset file '${file}' does not exist`);
  const vqa = readVqaFiles(path, o);
  if (vqa) {
    if (o.task !== 'vqa') throw new EvalError(`${file} is a VQAv2 annotations file: evaluate it with --task vqa`);
    return { ...vqa, items: pickSplit(vqa.items, o) };
  }
  const loaded = loadDataset(path);
  const samples = pickSplit(loaded.samples.map((s) => ({ id: s.id, sample: s })), o).map((x) => x.sample);
  const name = `${file}${o.split && o.split !== 'all' ? ` (${o.split})` : ''}`;
  if (o.task === 'vqa') {
    // LLaVA conversations and trainer-style samples with question/answer pairs: the first pair, one human answer.
    const items: EvalItem[] = [];
    for (const s of samples) {
      const conv = s.conversations;
      const q = s.qa?.[0] ?? (conv && conv.length >= 2 ? { question: conv[0].value.replace('<image>', '').trim(), answer: conv[1].value } : undefined);
      if (q) items.push({ id: s.id, sample: s, question: q.question, answers: Array(10).fill(q.answer) });
    }
    if (items.length === 0) throw new EvalError(`${file}: no question/answer pairs (give a VQAv2 annotations file, or LLaVA conversations)`);
    return { name, task: 'vqa', items, vqaReferences: 'normalise' };
  }
  const groups = groupByImage(samples, file);
  if (o.task === 'caption' || o.task === 'retrieval') {
    return { name, task: o.task, items: groups.map((g) => ({ id: g.sample.id, sample: g.sample, references: g.captions })) };
  }
  if (o.task === 'zero-shot') {
    // A captions file whose caption is the class name: the classes are its distinct captions.
    const labels = [...new Set(groups.map((g) => g.captions[0]))].sort();
    return { name, task: o.task, labels, items: groups.map((g) => ({ id: g.sample.id, sample: g.sample, label: labels.indexOf(g.captions[0]) })) };
  }
  throw new EvalError(`the ${o.task} task evaluates on the built-in shapes requests only (--dataset shapes)`);
}

/** The trainer's split of a file (splitSamples with its 10% held out) when asked for; everything by default. */
function pickSplit<T extends { sample: Sample }>(items: T[], o: EvalSetOptions): T[] {
  const split = o.split ?? 'all';
  if (split === 'all' || items.length < 2) return items;
  const tagged = items.map((it) => ({ ...it.sample, __item: it }));
  const parts = splitSamples(tagged, { evalFraction: 0.1, seed: o.seed ?? 0 });
  return (split === 'eval' ? parts.eval : parts.train).map((s) => s.__item);
}

/** Captions of one image together (COCO files hold one sample per caption), in file order. */
function groupByImage(samples: Sample[], file: string): Array<{ sample: Sample; captions: string[] }> {
  const groups = new Map<string, { sample: Sample; captions: string[] }>();
  for (const s of samples) {
    const caption = s.caption ?? s.conversations?.find((t) => t.from === 'gpt')?.value;
    if (!caption) continue;
    if (!s.imagePath) throw new DatasetError(`${file}: sample '${s.id}' has no image`);
    const g = groups.get(s.imagePath);
    if (g) g.captions.push(caption);
    else groups.set(s.imagePath, { sample: s, captions: [caption] });
  }
  return [...groups.values()];
}

// ---- VQAv2 -------------------------------------------------------------------------------------------------------

const VqaQuestionsSchema = z.object({
  data_subtype: z.string().optional(),
  questions: z.array(z.object({
    question_id: z.union([z.number().int(), z.string().min(1)]),
    image_id: z.union([z.number().int(), z.string().min(1)]),
    question: z.string().min(1, 'question is empty'),
    /** Not in VQAv2: an explicit image path (relative to the images folder). */
    image: z.string().min(1).optional(),
  })),
});
const VqaAnnotationsSchema = z.object({
  annotations: z.array(z.object({
    question_id: z.union([z.number().int(), z.string().min(1)]),
    image_id: z.union([z.number().int(), z.string().min(1)]).optional(),
    answers: z.array(z.object({ answer: z.string() })).min(2, 'needs at least 2 human answers'),
  }).loose()),
});

function parseJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new DatasetError(`${file}: ${(e as Error).message}`);
  }
}

function check<S extends z.ZodTypeAny>(schema: S, value: unknown, file: string, prefix: PropertyKey[] = []): z.infer<S> {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new DatasetError(`${file}: ${jsonPath([...prefix, ...(issue?.path ?? [])])}: ${issue?.message ?? 'invalid'}`);
  }
  return r.data;
}

/**
 * VQAv2 files: an annotations JSON (`{annotations: [{question_id, answers: [{answer}…]}]}`) with its questions JSON
 * (`--questions`), or one JSON holding both objects as `questions` and `annotations`. Images are found as VQAv2 names
 * them (`COCO_<data_subtype>_<image_id, 12 digits>.jpg`, or .png), as `<image_id>.jpg|.png`, or by a question's own
 * `image` field, in `--images` (default: the file's folder). Undefined when the file is not VQAv2-shaped.
 */
function readVqaFiles(file: string, o: EvalSetOptions): EvalSet | undefined {
  if (!file.toLowerCase().endsWith('.json')) return undefined;
  const json = parseJson(file) as Record<string, unknown>;
  if (!json || typeof json !== 'object' || Array.isArray(json) || !('annotations' in json)) return undefined;
  const anns = json.annotations as unknown;
  const combined = !Array.isArray(anns) && typeof anns === 'object' && anns !== null && 'annotations' in anns;
  const first = Array.isArray(anns) ? (anns[0] as Record<string, unknown> | undefined) : undefined;
  if (!combined && !(first && 'question_id' in first)) return undefined; // COCO captions also have "annotations"
  let annotations: z.infer<typeof VqaAnnotationsSchema>;
  let questions: z.infer<typeof VqaQuestionsSchema>;
  let questionsFile = file;
  if (combined) {
    annotations = check(VqaAnnotationsSchema, anns, file, ['annotations']);
    questions = check(VqaQuestionsSchema, json.questions, file, ['questions']);
  } else {
    annotations = check(VqaAnnotationsSchema, json, file);
    if (!o.questions) throw new EvalError(`${file} is a VQAv2 annotations file: give its questions file with --questions FILE`);
    questionsFile = resolve(o.questions);
    questions = check(VqaQuestionsSchema, parseJson(questionsFile), questionsFile);
  }
  const imageDir = resolve(o.images ?? dirname(file));
  const byQuestion = new Map(annotations.annotations.map((a, i) => [String(a.question_id), { a, i }]));
  const items: EvalItem[] = questions.questions.map((q, i) => {
    const ann = byQuestion.get(String(q.question_id));
    const where = `${questionsFile}: ${jsonPath(['questions', i])}`;
    if (!ann) throw new DatasetError(`${where}: question ${String(q.question_id)} has no annotation in ${file}`);
    const imagePath = vqaImage(imageDir, q, questions.data_subtype, where);
    return {
      id: String(q.question_id),
      sample: { id: String(q.question_id), imagePath },
      question: q.question,
      answers: ann.a.answers.map((x) => x.answer),
    };
  });
  return { name: file, task: 'vqa', items, vqaReferences: 'official' };
}

function vqaImage(dir: string, q: { image_id: number | string; image?: string }, subtype: string | undefined, where: string): string {
  if (q.image) return resolveImagePath(dir, q.image, `${where}.image`);
  const id = String(q.image_id);
  const names = [
    ...(subtype && /^\d+$/.test(id) ? [`COCO_${subtype}_${id.padStart(12, '0')}`] : []),
    id,
  ].flatMap((n) => [`${n}.jpg`, `${n}.png`]);
  for (const n of names) if (existsSync(join(dir, n))) return resolveImagePath(dir, n, where);
  throw new DatasetError(`${where}: no image for image_id ${id} in '${dir}' (looked for ${names.join(', ')}; pass --images DIR)`);
}
