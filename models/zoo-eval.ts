// Accuracy of the zoo templates, measured with the real executor on held-out single-shape images and on the same
// scenes drawn by other software, at other sizes, blurred and as JPEG (datasets/shapes.ts shapeVariants).
// A caption is correct when the first colour word and the first shape word it names are the image's.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type GraphDocument, parseGraphDocument } from '../electron/engine/document.js';
import { type Executor } from '../electron/engine/executor.js';
import { mapRunInputs } from '../electron/engine/run.js';
import { SHAPE_COLORS, SHAPE_KINDS, createShapesDataset, shapeSamplePng, shapeVariants } from '../electron/engine/datasets/index.js';
import { decodeImage } from '../electron/engine/image.js';
import { judge, readDrawing } from '../electron/engine/eval/metrics/shapes.js';
import { drawRequest as drawWith } from '../electron/engine/eval/runner.js';
import { type LoadedEvalImage, evalSetGroups, readEvalSet } from './eval-set.js';

// The readers moved into the engine (eval metrics); re-exported for the zoo's tests and the e2e specs.
export { judge, readDrawing, type Judged } from '../electron/engine/eval/metrics/shapes.js';

const GRAPHS = join(import.meta.dirname, '..', 'graphs');

export const DESCRIBE_PROMPT = 'Describe the image.';

export interface TemplateAccuracy {
  [metric: string]: number;
}

export interface EvalImage {
  name: string;
  /** 'original' or the variant kind (e.g. 'svg-32', 'jpeg-q50'). */
  kind: string;
  bytes: Uint8Array;
  color: string;
  shape: string;
}

/**
 * `images` held-out single-shape scenes; each as rendered (the training renderer) and in every robustness variant
 * (re-rendered and drawn by librsvg at 32, 96 and 224 px, blurred, JPEG, resized: 9 per scene).
 */
export async function evalImages(images: number, seed: number, split: 'train' | 'eval' = 'eval'): Promise<{ original: EvalImage[]; variants: EvalImage[] }> {
  const ds = createShapesDataset({ seed, split, minShapes: 1, maxShapes: 1, numSamples: images });
  const original: EvalImage[] = [];
  const variants: EvalImage[] = [];
  for (let i = 0; i < images; i++) {
    const s = ds.get(i);
    const { color, shape } = s.description[0];
    original.push({ name: s.id, kind: 'original', bytes: await shapeSamplePng(s), color, shape });
    for (const v of await shapeVariants(s)) variants.push({ name: `${s.id}/${v.name}`, kind: v.name, bytes: v.bytes, color, shape });
  }
  return { original, variants };
}

/** The text that reaches the graph's io.text_output node for one image and prompt. */
async function answer(executor: Executor, file: string, doc: GraphDocument, baseDir: string, bytes: Uint8Array, prompt: string | undefined): Promise<string> {
  return answerWith(executor, file, doc, baseDir, mapRunInputs(doc, { image: { name: 'image.png', bytes }, prompt }));
}

async function answerWith(executor: Executor, file: string, doc: GraphDocument, baseDir: string, inputs: ReturnType<typeof mapRunInputs>): Promise<string> {
  const out = doc.nodes.find((n) => n.type === 'io.text_output');
  if (!out) throw new Error(`${file}: no io.text_output node`);
  const res = await executor.run(doc, { baseDir, inputs, targets: [out.id] });
  const edge = doc.edges.find((e) => e.to.node === out.id)!;
  const text = res.outputs[edge.from.node]?.[edge.from.port];
  if (typeof text !== 'string') throw new Error(`${file}: output '${out.id}' got no text`);
  return text;
}

/** The text-to-image request the drawing check asks for each colour and shape. */
export const drawRequest = (color: string, shape: string): string => `Show me a picture of a ${color} ${shape}.`;

/**
 * Text-to-image templates (NExT-GPT, text-to-image): each colour × shape request drawn with `seeds` noise seeds and
 * judged by its pixels (readDrawing): colour, shape and both right.
 */
async function evaluateDrawing(
  executor: Executor,
  file: string,
  doc: GraphDocument,
  o: { seeds: number; baseDir?: string; log?: (line: string) => void; save?: (name: string, png: Uint8Array) => void },
): Promise<TemplateAccuracy> {
  let n = 0, color = 0, shape = 0, both = 0;
  for (const c of SHAPE_COLORS) {
    for (const k of SHAPE_KINDS) {
      for (let seed = 1; seed <= o.seeds; seed++) {
        const { png } = await drawWith(executor, doc, { baseDir: o.baseDir ?? GRAPHS, request: drawRequest(c, k), seed });
        o.save?.(`${c}-${k}-${seed}.png`, png);
        const seen = readDrawing(await decodeImage(png));
        n++;
        color += seen.color === c ? 1 : 0;
        shape += seen.shape === k ? 1 : 0;
        both += seen.color === c && seen.shape === k ? 1 : 0;
        o.log?.(`${c} ${k} seed ${seed}: drew a ${seen.color ?? 'blank'} ${seen.shape ?? ''}`);
      }
    }
  }
  return { drawn: both / n, drawn_color: color / n, drawn_shape: shape / n };
}

/**
 * Captioning templates: share of images whose answer to "Describe the image." names colour and shape right.
 * The CLIP template (zero-shot head): colour and shape accuracy of the chosen label.
 */
export async function evaluateTemplate(
  executor: Executor,
  file: string,
  o: {
    images: number;
    seed: number;
    split?: 'train' | 'eval';
    log?: (line: string) => void;
    /** Run this document instead of graphs/<file> (e.g. the template with its zoo weights removed). */
    doc?: GraphDocument;
    /** Folder the document's weight paths resolve against (default graphs/). */
    baseDir?: string;
    /** Drawing templates: receives each drawing (to look at). */
    save?: (name: string, png: Uint8Array) => void;
  },
): Promise<TemplateAccuracy> {
  const doc = o.doc ?? parseGraphDocument(readFileSync(join(GRAPHS, file), 'utf8'), file);
  if (doc.nodes.some((n) => n.type === 'diffusion.sampler')) {
    // Drawing templates: `images` drawings in all, spread over the 18 colour × shape requests.
    const seeds = Math.max(1, Math.round(o.images / (SHAPE_COLORS.length * SHAPE_KINDS.length)));
    return evaluateDrawing(executor, file, doc, { seeds, baseDir: o.baseDir, log: o.log, save: o.save });
  }
  const { original, variants } = await evalImages(o.images, o.seed, o.split);
  const zeroShot = file.startsWith('clip');
  const byKind = new Map<string, { right: number; n: number }>();
  const score = async (set: EvalImage[]) => {
    let both = 0, color = 0, shape = 0;
    for (const img of set) {
      const text = await answer(executor, file, doc, o.baseDir ?? GRAPHS, img.bytes, zeroShot ? undefined : DESCRIBE_PROMPT);
      const j = judge(text, img.color, img.shape);
      color += j.color ? 1 : 0;
      shape += j.shape ? 1 : 0;
      both += j.color && j.shape ? 1 : 0;
      const k = byKind.get(img.kind) ?? { right: 0, n: 0 };
      byKind.set(img.kind, { right: k.right + (j.color && j.shape ? 1 : 0), n: k.n + 1 });
      o.log?.(`${img.name} (${img.color} ${img.shape}): ${text}`);
    }
    const n = set.length;
    return { both: both / n, color: color / n, shape: shape / n };
  };
  const a = await score(original);
  const b = await score(variants);
  const kinds: TemplateAccuracy = {};
  for (const [kind, k] of byKind) if (kind !== 'original') kinds[`variant_${kind}`] = k.right / k.n;
  return {
    heldout: a.both, heldout_color: a.color, heldout_shape: a.shape,
    variants: b.both, variants_color: b.color, variants_shape: b.shape,
    ...kinds,
  };
}

/** Templates the held-out Chromium set applies to: the ones that read an image and answer in text. */
export const isCaptioningOrZeroShot = (doc: GraphDocument): boolean =>
  !doc.nodes.some((n) => n.type === 'diffusion.sampler') && doc.nodes.some((n) => n.type === 'io.text_output');

/**
 * The held-out set drawn in Chromium (models/eval-chromium/, a renderer training never uses): colour, shape and both
 * right over all of it (`chromium`, `chromium_color`, `chromium_shape`), and both right per group of pictures
 * (`chromium_<group>`: shape kind, renderer, filled/outlined, aliased, background, blurred/jpeg/clean; eval-set.ts).
 * Captioning templates answer "Describe the image."; CLIP picks one of its labels zero-shot.
 */
export async function evaluateEvalSet(
  executor: Executor,
  file: string,
  o: { doc?: GraphDocument; baseDir?: string; images?: readonly LoadedEvalImage[]; log?: (line: string) => void } = {},
): Promise<TemplateAccuracy> {
  const doc = o.doc ?? parseGraphDocument(readFileSync(join(GRAPHS, file), 'utf8'), file);
  if (!isCaptioningOrZeroShot(doc)) throw new Error(`${file}: the held-out set is for templates that answer in text`);
  const images = o.images ?? readEvalSet().images;
  const zeroShot = file.startsWith('clip');
  let both = 0, color = 0, shape = 0;
  const groups = new Map<string, { right: number; n: number }>();
  for (const img of images) {
    const name = img.file.endsWith('.jpg') ? 'image.jpg' : 'image.png';
    const inputs = mapRunInputs(doc, { image: { name, bytes: img.bytes }, prompt: zeroShot ? undefined : DESCRIBE_PROMPT });
    const text = await answerWith(executor, file, doc, o.baseDir ?? GRAPHS, inputs);
    const j = judge(text, img.color, img.shape);
    const ok = j.color && j.shape;
    color += j.color ? 1 : 0;
    shape += j.shape ? 1 : 0;
    both += ok ? 1 : 0;
    for (const g of evalSetGroups(img)) {
      const k = groups.get(g) ?? { right: 0, n: 0 };
      groups.set(g, { right: k.right + (ok ? 1 : 0), n: k.n + 1 });
    }
    o.log?.(`${img.file} (${img.color} ${img.shape}): ${text}`);
  }
  const n = images.length;
  const out: TemplateAccuracy = { chromium: both / n, chromium_color: color / n, chromium_shape: shape / n };
  for (const [g, k] of [...groups].sort(([a], [b]) => a.localeCompare(b))) out[`chromium_${g}`] = k.right / k.n;
  return out;
}
