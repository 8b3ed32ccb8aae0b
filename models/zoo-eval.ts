// Accuracy of the zoo templates, measured with the real executor on held-out single-shape images and on the same
// scenes drawn by other software, at other sizes, blurred and as JPEG (datasets/shapes.ts shapeVariants).
// A caption is correct when the first colour word and the first shape word it names are the image's.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type GraphDocument, parseGraphDocument } from '../electron/engine/document.js';
import { type Executor } from '../electron/engine/executor.js';
import { mapRunInputs } from '../electron/engine/run.js';
import { SHAPE_COLORS, SHAPE_KINDS, createShapesDataset, shapeSamplePng, shapeVariants } from '../electron/engine/datasets/index.js';

const GRAPHS = join(import.meta.dirname, '..', 'graphs');

export const DESCRIBE_PROMPT = 'Describe the image.';

export interface TemplateAccuracy {
  [metric: string]: number;
}

/** The first of `words` the text names (plurals count), or undefined. */
function firstOf(text: string, words: readonly string[]): string | undefined {
  const tokens = text.toLowerCase().match(/[a-z]+/g) ?? [];
  for (const t of tokens) {
    const w = words.find((x) => t === x || t === `${x}s`);
    if (w) return w;
  }
  return undefined;
}

export interface Judged {
  color: boolean;
  shape: boolean;
}

export function judge(text: string, color: string, shape: string): Judged {
  return { color: firstOf(text, SHAPE_COLORS) === color, shape: firstOf(text, SHAPE_KINDS) === shape };
}

export interface EvalImage {
  name: string;
  bytes: Uint8Array;
  color: string;
  shape: string;
}

/**
 * `images` held-out single-shape scenes; each as rendered (the training renderer) and as one robustness variant,
 * cycling through the variant kinds so every kind is measured.
 */
export async function evalImages(images: number, seed: number, split: 'train' | 'eval' = 'eval'): Promise<{ original: EvalImage[]; variants: EvalImage[] }> {
  const ds = createShapesDataset({ seed, split, minShapes: 1, maxShapes: 1, numSamples: images });
  const original: EvalImage[] = [];
  const variants: EvalImage[] = [];
  for (let i = 0; i < images; i++) {
    const s = ds.get(i);
    const { color, shape } = s.description[0];
    original.push({ name: s.id, bytes: await shapeSamplePng(s), color, shape });
    const all = await shapeVariants(s);
    const v = all[i % all.length];
    variants.push({ name: `${s.id}/${v.name}`, bytes: v.bytes, color, shape });
  }
  return { original, variants };
}

/** The text that reaches the graph's io.text_output node for one image and prompt. */
async function answer(executor: Executor, file: string, doc: GraphDocument, baseDir: string, bytes: Uint8Array, prompt: string | undefined): Promise<string> {
  const inputs = mapRunInputs(doc, { image: { name: 'image.png', bytes }, prompt });
  const out = doc.nodes.find((n) => n.type === 'io.text_output');
  if (!out) throw new Error(`${file}: no io.text_output node`);
  const res = await executor.run(doc, { baseDir, inputs, targets: [out.id] });
  const edge = doc.edges.find((e) => e.to.node === out.id)!;
  const text = res.outputs[edge.from.node]?.[edge.from.port];
  if (typeof text !== 'string') throw new Error(`${file}: output '${out.id}' got no text`);
  return text;
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
  },
): Promise<TemplateAccuracy> {
  const doc = o.doc ?? parseGraphDocument(readFileSync(join(GRAPHS, file), 'utf8'), file);
  const { original, variants } = await evalImages(o.images, o.seed, o.split);
  const zeroShot = file.startsWith('clip');
  const score = async (set: EvalImage[]) => {
    let both = 0, color = 0, shape = 0;
    for (const img of set) {
      const text = await answer(executor, file, doc, o.baseDir ?? GRAPHS, img.bytes, zeroShot ? undefined : DESCRIBE_PROMPT);
      const j = judge(text, img.color, img.shape);
      color += j.color ? 1 : 0;
      shape += j.shape ? 1 : 0;
      both += j.color && j.shape ? 1 : 0;
      o.log?.(`${img.name} (${img.color} ${img.shape}): ${text}`);
    }
    const n = set.length;
    return { both: both / n, color: color / n, shape: shape / n };
  };
  const a = await score(original);
  const b = await score(variants);
  return {
    heldout: a.both, heldout_color: a.color, heldout_shape: a.shape,
    variants: b.both, variants_color: b.color, variants_shape: b.shape,
  };
}
