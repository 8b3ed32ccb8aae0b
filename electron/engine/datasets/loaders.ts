/**
 * Dataset files → `Sample[]`. Formats:
 * - captions JSONL: one `{"image": "rel/path.png", "caption": "…", "id"?: …}` per line;
 * - captions CSV: a header with `image` and `caption` columns (and optionally `id`), RFC 4180 quoting;
 * - COCO captions JSON: `{images: [{id, file_name}], annotations: [{image_id, caption}]}` (one sample per caption);
 * - LLaVA JSON: `[{id, image?, conversations: [{from, value}]}]`.
 *
 * Every record is zod-validated; errors name the file and the line (JSONL, CSV) or the JSON path (JSON). Image paths
 * are relative to the dataset file's folder (or `imageDir`) and may not leave it, through `..` or through symlinks.
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, extname, isAbsolute, relative, resolve, sep } from 'node:path';
import { z } from 'zod';
import { decodeImage, degradeImage, type RgbImage } from '../image.js';
import { hashString } from '../rng.js';
import { DatasetError, IMAGE_PLACEHOLDER, TurnSchema, type Sample } from './types.js';

export type DatasetFormat = 'jsonl' | 'csv' | 'coco' | 'llava';

export interface LoadOptions {
  /** Default: from the extension (.jsonl, .csv) or, for .json, from the top-level shape. */
  format?: DatasetFormat;
  /** Folder the image paths are relative to and confined in; default the dataset file's folder. */
  imageDir?: string;
  /** Check that every image file exists (default true). */
  checkImages?: boolean;
}

export interface LoadedDataset {
  file: string;
  format: DatasetFormat;
  imageDir: string;
  samples: Sample[];
}

// ---- helpers -------------------------------------------------------------------------------------------------------

type PathPart = PropertyKey;

/** `$.annotations[3].caption` */
export function jsonPath(path: readonly PathPart[]): string {
  let s = '$';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : `.${String(p)}`;
  return s;
}

function issueText(error: z.ZodError, prefix: readonly PathPart[] = []): { path: PathPart[]; message: string } {
  const issue = error.issues[0];
  return { path: [...prefix, ...(issue?.path ?? [])], message: issue?.message ?? 'invalid value' };
}

function readText(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new DatasetError(`cannot read dataset '${file}': ${(e as Error).message}`);
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Line and column (1-based) of a character offset. */
function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1, last = -1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) { line++; last = i; }
  return { line, column: offset - last };
}

function parseJsonFile(file: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    const m = /position (\d+)/.exec(msg);
    if (m) {
      const { line, column } = lineColumn(text, Number(m[1]));
      throw new DatasetError(`${file}:${line}:${column}: invalid JSON: ${msg}`);
    }
    throw new DatasetError(`${file}: invalid JSON: ${msg}`);
  }
}

/**
 * Resolve an image path from a dataset record, confined to `root`. `where` (file:line or file: $.path) names the
 * record in errors.
 */
export function resolveImagePath(root: string, location: string, where: string, mustExist = true): string {
  if (location.trim() === '') throw new DatasetError(`${where}: empty image path`);
  if (isAbsolute(location) || /^[a-zA-Z]:[\\/]/.test(location) || location.startsWith('\\\\')) {
    throw new DatasetError(`${where}: image path '${location}' is absolute; it must be relative to '${root}'`);
  }
  const base = resolve(root);
  const full = resolve(base, location);
  const escapes = (from: string, to: string): boolean => {
    const rel = relative(from, to);
    return rel === '' || rel.startsWith('..') || isAbsolute(rel) || rel.split(sep).includes('..');
  };
  if (escapes(base, full)) throw new DatasetError(`${where}: image path '${location}' leaves the dataset folder '${root}'`);
  if (mustExist) {
    if (!existsSync(full)) throw new DatasetError(`${where}: image '${location}' not found (looked for '${full}')`);
    // A symlink inside the folder may still point outside it.
    if (escapes(realpathSync(base), realpathSync(full))) {
      throw new DatasetError(`${where}: image path '${location}' resolves (through a link) outside the dataset folder '${root}'`);
    }
  }
  return full;
}

const IdSchema = z.union([z.string().min(1), z.number().int()]).transform((v) => String(v));

// ---- captions JSONL ------------------------------------------------------------------------------------------------

const CaptionRecordSchema = z.object({
  id: IdSchema.optional(),
  image: z.string().min(1, 'image path is empty'),
  caption: z.string().trim().min(1, 'caption is empty'),
});

export function loadCaptionsJsonl(file: string, options: LoadOptions = {}): LoadedDataset {
  const imageDir = options.imageDir ?? dirname(resolve(file));
  const lines = readText(file).split(/\r?\n/);
  const samples: Sample[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${file}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new DatasetError(`${where}: invalid JSON: ${(e as Error).message}`);
    }
    const parsed = CaptionRecordSchema.safeParse(value);
    if (!parsed.success) {
      const { path, message } = issueText(parsed.error);
      throw new DatasetError(`${where}: ${path.length ? `field '${path.join('.')}': ` : ''}${message}`);
    }
    const r = parsed.data;
    samples.push({
      id: r.id ?? `line-${i + 1}`,
      imagePath: resolveImagePath(imageDir, r.image, where, options.checkImages ?? true),
      caption: r.caption,
    });
  });
  if (samples.length === 0) throw new DatasetError(`${file}: no records`);
  return { file, format: 'jsonl', imageDir, samples };
}

// ---- captions CSV --------------------------------------------------------------------------------------------------

interface CsvRow {
  line: number;
  fields: string[];
}

/** RFC 4180 CSV: quoted fields may hold commas, newlines and doubled quotes. Rows remember their first line. */
export function parseCsv(text: string, file: string): CsvRow[] {
  const rows: CsvRow[] = [];
  let fields: string[] = [];
  let field = '';
  let quoted = false; // the current field was a (closed) quoted field
  let line = 1;
  let rowLine = 1;
  let i = 0;
  const endRow = (): void => {
    if (fields.length > 0 || quoted || field !== '') {
      fields.push(field);
      if (!(fields.length === 1 && !quoted && field.trim() === '')) rows.push({ line: rowLine, fields });
    }
    fields = [];
    field = '';
    quoted = false;
  };
  while (i < text.length) {
    const ch = text[i];
    if (ch === '"') {
      if (field !== '' || quoted) throw new DatasetError(`${file}:${line}: stray '"' inside an unquoted field`);
      const openLine = line;
      i++;
      for (;;) {
        if (i >= text.length) throw new DatasetError(`${file}:${openLine}: quoted field is never closed`);
        const c = text[i];
        if (c === '"') {
          if (text[i + 1] === '"') { field += '"'; i += 2; continue; }
          i++;
          break;
        }
        if (c === '\n') line++;
        field += c;
        i++;
      }
      quoted = true;
      const next = text[i];
      if (next !== undefined && next !== ',' && next !== '\n' && next !== '\r') {
        throw new DatasetError(`${file}:${line}: unexpected character after a closing quote`);
      }
      continue;
    }
    if (ch === ',') {
      fields.push(field); // a trailing comma still makes an (empty) last field, pushed by endRow
      field = '';
      quoted = false;
      i++;
      continue;
    }
    if (ch === '\r' || ch === '\n') {
      endRow();
      if (ch === '\r' && text[i + 1] === '\n') i++;
      i++;
      line++;
      rowLine = line;
      continue;
    }
    field += ch;
    i++;
  }
  endRow();
  return rows;
}

export function loadCaptionsCsv(file: string, options: LoadOptions = {}): LoadedDataset {
  const imageDir = options.imageDir ?? dirname(resolve(file));
  const rows = parseCsv(readText(file), file);
  const header = rows.shift();
  if (!header) throw new DatasetError(`${file}: empty CSV file (expected a header with 'image' and 'caption')`);
  const names = header.fields.map((h) => h.trim().toLowerCase());
  const col = (name: string): number => names.indexOf(name);
  for (const required of ['image', 'caption']) {
    if (col(required) < 0) throw new DatasetError(`${file}:${header.line}: header has no '${required}' column (found: ${header.fields.join(', ')})`);
  }
  const dup = names.find((n, i) => n !== '' && names.indexOf(n) !== i);
  if (dup) throw new DatasetError(`${file}:${header.line}: column '${dup}' appears twice in the header`);
  const samples: Sample[] = [];
  for (const row of rows) {
    const where = `${file}:${row.line}`;
    if (row.fields.length !== names.length) {
      throw new DatasetError(`${where}: ${row.fields.length} fields, but the header has ${names.length}`);
    }
    const record: Record<string, string> = {};
    names.forEach((n, i) => { if (n === 'image' || n === 'caption' || n === 'id') record[n] = row.fields[i]; });
    if (record.id === '') delete record.id;
    const parsed = CaptionRecordSchema.safeParse(record);
    if (!parsed.success) {
      const { path, message } = issueText(parsed.error);
      throw new DatasetError(`${where}: column '${path.join('.')}': ${message}`);
    }
    const r = parsed.data;
    samples.push({
      id: r.id ?? `line-${row.line}`,
      imagePath: resolveImagePath(imageDir, r.image, where, options.checkImages ?? true),
      caption: r.caption,
    });
  }
  if (samples.length === 0) throw new DatasetError(`${file}: no records after the header`);
  return { file, format: 'csv', imageDir, samples };
}

// ---- COCO captions ------------------------------------------------------------------------------------------------

const CocoSchema = z.object({
  images: z.array(z.object({ id: z.union([z.number().int(), z.string().min(1)]), file_name: z.string().min(1) })),
  annotations: z.array(z.object({
    id: z.union([z.number().int(), z.string()]).optional(),
    image_id: z.union([z.number().int(), z.string().min(1)]),
    caption: z.string().trim().min(1, 'caption is empty'),
  })),
});

export function loadCocoCaptions(file: string, options: LoadOptions = {}): LoadedDataset {
  const imageDir = options.imageDir ?? dirname(resolve(file));
  const parsed = CocoSchema.safeParse(parseJsonFile(file, readText(file)));
  if (!parsed.success) {
    const { path, message } = issueText(parsed.error);
    throw new DatasetError(`${file}: ${jsonPath(path)}: ${message}`);
  }
  const { images, annotations } = parsed.data;
  const byId = new Map<string, string>();
  images.forEach((img, i) => {
    const key = String(img.id);
    if (byId.has(key)) throw new DatasetError(`${file}: ${jsonPath(['images', i, 'id'])}: duplicate image id ${key}`);
    byId.set(key, resolveImagePath(imageDir, img.file_name, `${file}: ${jsonPath(['images', i, 'file_name'])}`, options.checkImages ?? true));
  });
  const samples: Sample[] = annotations.map((a, i) => {
    const imagePath = byId.get(String(a.image_id));
    if (!imagePath) throw new DatasetError(`${file}: ${jsonPath(['annotations', i, 'image_id'])}: no image with id ${String(a.image_id)}`);
    return { id: a.id !== undefined ? String(a.id) : `ann-${i}`, imagePath, caption: a.caption };
  });
  if (samples.length === 0) throw new DatasetError(`${file}: ${jsonPath(['annotations'])}: no annotations`);
  return { file, format: 'coco', imageDir, samples };
}

// ---- LLaVA conversations ---------------------------------------------------------------------------------------------

const LlavaSchema = z.array(z.object({
  id: IdSchema,
  image: z.string().min(1, 'image path is empty').optional(),
  conversations: z.array(TurnSchema).min(1, 'conversation is empty'),
}));

function countPlaceholders(text: string): number {
  return text.split(IMAGE_PLACEHOLDER).length - 1;
}

export function loadLlava(file: string, options: LoadOptions = {}): LoadedDataset {
  const imageDir = options.imageDir ?? dirname(resolve(file));
  const parsed = LlavaSchema.safeParse(parseJsonFile(file, readText(file)));
  if (!parsed.success) {
    const { path, message } = issueText(parsed.error);
    throw new DatasetError(`${file}: ${jsonPath(path)}: ${message}`);
  }
  const samples: Sample[] = parsed.data.map((rec, i) => {
    const at = (...p: PathPart[]): string => `${file}: ${jsonPath([i, ...p])}`;
    if (!rec.conversations.some((t) => t.from === 'gpt')) throw new DatasetError(`${at('conversations')}: no 'gpt' turn to learn from`);
    let placeholders = 0;
    rec.conversations.forEach((t, j) => {
      const n = countPlaceholders(t.value);
      if (n > 0 && t.from !== 'human') throw new DatasetError(`${at('conversations', j, 'value')}: '${IMAGE_PLACEHOLDER}' may only appear in a human turn`);
      placeholders += n;
    });
    if (rec.image !== undefined && placeholders !== 1) {
      throw new DatasetError(`${at('conversations')}: a sample with an image needs exactly one '${IMAGE_PLACEHOLDER}', found ${placeholders}`);
    }
    if (rec.image === undefined && placeholders !== 0) {
      throw new DatasetError(`${at('conversations')}: '${IMAGE_PLACEHOLDER}' used but the sample has no 'image'`);
    }
    const sample: Sample = { id: rec.id, conversations: rec.conversations };
    if (rec.image !== undefined) sample.imagePath = resolveImagePath(imageDir, rec.image, at('image'), options.checkImages ?? true);
    return sample;
  });
  if (samples.length === 0) throw new DatasetError(`${file}: $: no samples`);
  return { file, format: 'llava', imageDir, samples };
}

// ---- dispatch ----------------------------------------------------------------------------------------------------------

/** Guess the format from the extension, and for .json from the top-level shape (array → LLaVA, object → COCO). */
export function detectFormat(file: string): DatasetFormat {
  const ext = extname(file).toLowerCase();
  if (ext === '.jsonl') return 'jsonl';
  if (ext === '.csv') return 'csv';
  if (ext === '.json') {
    const head = readText(file).trimStart()[0];
    if (head === '[') return 'llava';
    if (head === '{') return 'coco';
    throw new DatasetError(`${file}: expected a JSON array (LLaVA) or object (COCO captions)`);
  }
  throw new DatasetError(`${file}: unknown dataset extension '${ext}' (expected .jsonl, .csv or .json)`);
}

export function loadDataset(file: string, options: LoadOptions = {}): LoadedDataset {
  const format = options.format ?? detectFormat(file);
  switch (format) {
    case 'jsonl': return loadCaptionsJsonl(file, options);
    case 'csv': return loadCaptionsCsv(file, options);
    case 'coco': return loadCocoCaptions(file, options);
    case 'llava': return loadLlava(file, options);
  }
}

// ---- split -------------------------------------------------------------------------------------------------------------

export interface SplitOptions {
  /** Fraction of groups held out for eval (0..1). */
  evalFraction: number;
  seed?: number | string;
}

/**
 * Deterministic, disjoint train/eval split. Samples that share an image (COCO has several captions per image) stay
 * on the same side. Groups are ranked by a hash of (seed, image) and the first ⌈fraction · groups⌉ go to eval, so
 * the split does not depend on the file's order. Each side keeps the input order.
 */
export function splitSamples<S extends Sample>(samples: readonly S[], options: SplitOptions): { train: S[]; eval: S[] } {
  const { evalFraction } = options;
  if (!(evalFraction >= 0 && evalFraction < 1)) throw new DatasetError(`split: evalFraction must be in [0, 1), got ${evalFraction}`);
  const seed = String(options.seed ?? 0);
  const groupOf = (s: S): string => (s.imagePath !== undefined ? `img:${s.imagePath}` : `id:${s.id}`);
  const groups = [...new Set(samples.map(groupOf))];
  const ranked = groups
    .map((g) => ({ g, h: hashString(`${seed}|${g}`) }))
    .sort((a, b) => a.h - b.h || (a.g < b.g ? -1 : a.g > b.g ? 1 : 0));
  const nEval = evalFraction === 0 ? 0 : Math.min(groups.length - 1, Math.max(1, Math.ceil(evalFraction * groups.length)));
  const evalGroups = new Set(ranked.slice(0, Math.max(0, nEval)).map((r) => r.g));
  const train: S[] = [], evalSet: S[] = [];
  for (const s of samples) (evalGroups.has(groupOf(s)) ? evalSet : train).push(s);
  return { train, eval: evalSet };
}

// ---- pixels -------------------------------------------------------------------------------------------------------------

/**
 * A sample's pixels: the in-memory image, or the decoded file, then its degradation if it has one (errors name the
 * sample and the file).
 */
export async function loadSampleImage(sample: Sample): Promise<RgbImage> {
  const source = sample.image ?? sample.imagePath;
  if (source === undefined) throw new DatasetError(`sample '${sample.id}' has no image`);
  try {
    const image = typeof source === 'string' ? await decodeImage(source) : source;
    return sample.imageDegradation ? await degradeImage(image, sample.imageDegradation, `sample '${sample.id}'`) : image;
  } catch (e) {
    throw new DatasetError(`sample '${sample.id}': ${(e as Error).message}`);
  }
}
