// Host steps of the io.* and prompt.* nodes: load images, video frames and audio into tensors, render prompts, and
// write text and PNG outputs. Every step has the same shape (params, inputs, ctx) → outputs, keyed by its `host` id.

import { readdirSync, statSync } from 'node:fs';
import { extname, isAbsolute, join, resolve } from 'node:path';
import sharp from 'sharp';
import { type Tensor, tensorToNumbers } from '../../onnx/ir.js';
import { writeSafetensors } from '../../onnx/safetensors.js';
import { writeFileAtomic } from '../../onnx/atomic.js';
import {
  CLIP_MEAN,
  CLIP_STD,
  IMAGENET_MEAN,
  IMAGENET_STD,
  type ImageSource,
  type PreprocessOptions,
  type RgbImage,
  chwToRgb,
  decodeImage,
  encodePng,
  loadPixelValues,
  toPixelValues,
} from '../image.js';
import { wavToLogMel } from '../audio.js';
import {
  type ImageInputParams,
  type NormalizePreset,
  audioParams,
  imageOutputParams,
  imageParams,
  sampleFrameIndices,
  tensorOutputParams,
  textOutputParams,
  textParams,
  toUnitRange,
  videoParams,
} from '../../nodes/io.js';
import {
  chatParams,
  cotParams,
  fewShotParams,
  instructionParams,
  renderChainOfThought,
  renderChatNode,
  renderFewShotPrompt,
  renderInstruction,
} from '../../nodes/prompts.js';

/** What flows between host steps and ONNX nodes: tensors, or text for text ports. */
export type HostValue = Tensor | string;

export interface HostStepContext {
  nodeId: string;
  /** Folder relative paths in params are resolved against (the graph file's folder). */
  baseDir: string;
  /** Data given for this node at run time (a dropped image, a typed question), overriding the params. */
  runInput?: { path?: string; bytes?: Uint8Array; text?: string };
}

export type HostStep = (params: unknown, inputs: Record<string, HostValue>, ctx: HostStepContext) => Promise<Record<string, HostValue>>;

export class HostStepError extends Error {
  override name = 'HostStepError';
}

function resolvePath(ctx: HostStepContext, path: string): string {
  return isAbsolute(path) ? path : resolve(ctx.baseDir, path);
}

function preprocessOptions(size: number, resize: 'shortest-then-crop' | 'stretch', normalize: NormalizePreset): PreprocessOptions {
  const stats: Record<NormalizePreset, { mean: readonly number[]; std: readonly number[] }> = {
    clip: { mean: CLIP_MEAN, std: CLIP_STD },
    imagenet: { mean: IMAGENET_MEAN, std: IMAGENET_STD },
    half: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
    none: { mean: [0, 0, 0], std: [1, 1, 1] },
  };
  return { size, mode: resize, kernel: 'cubic', ...stats[normalize] };
}

/** The io.image params as preprocessing options: Pillow's filters, a separate shortest edge, explicit mean/std. */
export function imagePreprocessOptions(p: ImageInputParams): PreprocessOptions {
  const base = preprocessOptions(p.size, p.resize, p.normalize);
  return {
    ...base,
    kernel: p.resample === 'sharp' ? 'cubic' : `pil-${p.resample}`,
    shortestEdge: p.shortest_edge,
    mean: p.mean ?? base.mean,
    std: p.std ?? base.std,
    rescale: p.rescale_factor,
  };
}

function textInput(inputs: Record<string, HostValue>, port: string, ctx: HostStepContext): string {
  const v = inputs[port];
  if (typeof v !== 'string') throw new HostStepError(`node '${ctx.nodeId}': input '${port}' must be text`);
  return v;
}

function optionalTensor(inputs: Record<string, HostValue>, port: string, ctx: HostStepContext): Tensor | undefined {
  const v = inputs[port];
  if (v === undefined) return undefined;
  if (typeof v === 'string') throw new HostStepError(`node '${ctx.nodeId}': input '${port}' must be a tensor, not text`);
  return v;
}

function pixelTensor(dims: number[], data: Float32Array): Tensor {
  return { dtype: 'float32', dims, data };
}

// ---------------------------------------------------------------------------------------------------------------
// Inputs

async function imageStep(raw: unknown, _inputs: Record<string, HostValue>, ctx: HostStepContext): Promise<Record<string, HostValue>> {
  const p = imageParams.parse(raw);
  let source: ImageSource;
  let label: string;
  if (ctx.runInput?.bytes) [source, label] = [ctx.runInput.bytes, `the image given to node '${ctx.nodeId}'`];
  else if (ctx.runInput?.path) [source, label] = [resolvePath(ctx, ctx.runInput.path), ctx.runInput.path];
  else if (p.base64) [source, label] = [Buffer.from(p.base64, 'base64'), `node '${ctx.nodeId}' base64 image`];
  else if (p.path) [source, label] = [resolvePath(ctx, p.path), p.path];
  else throw new HostStepError(`node '${ctx.nodeId}' (io.image): no image: set its path or drop an image on it`);
  const pv = await loadPixelValues([source], imagePreprocessOptions(p), [label]);
  return { pixel_values: pixelTensor(pv.dims, pv.data) };
}

const FRAME_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.bmp', '.tif', '.tiff', '.gif']);

/** Decodes `count` uniformly spaced frames from a folder of images or an animated GIF/WebP. */
export async function loadVideoFrames(path: string, count: number): Promise<RgbImage[]> {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    throw new HostStepError(`cannot read video '${path}': ${(e as Error).message}`);
  }
  if (isDir) {
    const files = readdirSync(path)
      .filter((f) => FRAME_EXTENSIONS.has(extname(f).toLowerCase()))
      .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    if (files.length === 0) throw new HostStepError(`video folder '${path}' has no image files`);
    const picked = sampleFrameIndices(files.length, count).map((i) => join(path, files[i]));
    return Promise.all(picked.map((f) => decodeImage(f)));
  }
  let pages: number;
  try {
    pages = (await sharp(path, { pages: -1 }).metadata()).pages ?? 1;
  } catch (e) {
    throw new HostStepError(`cannot decode video '${path}' (a folder of frames or an animated GIF/WebP): ${(e as Error).message}`);
  }
  const frames: RgbImage[] = [];
  for (const page of sampleFrameIndices(pages, count)) {
    const png = await sharp(path, { page, pages: 1 }).png().toBuffer();
    frames.push(await decodeImage(png, `frame ${page} of '${path}'`));
  }
  return frames;
}

async function videoStep(raw: unknown, _inputs: Record<string, HostValue>, ctx: HostStepContext): Promise<Record<string, HostValue>> {
  const p = videoParams.parse(raw);
  const path = ctx.runInput?.path ?? p.path;
  if (!path) throw new HostStepError(`node '${ctx.nodeId}' (io.video): no video: set its path`);
  const frames = await loadVideoFrames(resolvePath(ctx, path), p.frames);
  const pv = await toPixelValues(frames, preprocessOptions(p.size, p.resize, p.normalize), frames.map((_, i) => `frame ${i} of '${path}'`));
  return { pixel_values: pixelTensor([1, ...pv.dims], pv.data) };
}

async function audioStep(raw: unknown, _inputs: Record<string, HostValue>, ctx: HostStepContext): Promise<Record<string, HostValue>> {
  const p = audioParams.parse(raw);
  const path = ctx.runInput?.path ?? p.path;
  if (!path) throw new HostStepError(`node '${ctx.nodeId}' (io.audio): no audio: set its path`);
  const mel = wavToLogMel(resolvePath(ctx, path), { nMels: p.n_mels, padOrTrimSeconds: p.seconds });
  return { input_features: pixelTensor(mel.dims, mel.data) };
}

async function textStep(raw: unknown, _inputs: Record<string, HostValue>, ctx: HostStepContext): Promise<Record<string, HostValue>> {
  const p = textParams.parse(raw);
  return { text: ctx.runInput?.text ?? p.text };
}

// ---------------------------------------------------------------------------------------------------------------
// Outputs

async function textOutputStep(raw: unknown, inputs: Record<string, HostValue>, ctx: HostStepContext): Promise<Record<string, HostValue>> {
  const p = textOutputParams.parse(raw);
  const text = textInput(inputs, 'text', ctx);
  if (p.path) writeFileAtomic(resolvePath(ctx, p.path), text);
  return {};
}

/** Float CHW images in the generator's range → PNG bytes, one per batch item. */
export async function imagesToPng(image: Tensor, range: '-1..1' | '0..1', what: string): Promise<Buffer[]> {
  if (image.dtype !== 'float32' || image.dims.length !== 4 || image.dims[1] !== 3) {
    throw new HostStepError(`${what}: expected float32 [B,3,H,W], got ${image.dtype}[${image.dims.join(',')}]`);
  }
  const [batch, , height, width] = image.dims;
  const src = image.data as Float32Array;
  const unit = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) unit[i] = toUnitRange(src[i], range);
  const out: Buffer[] = [];
  for (let b = 0; b < batch; b++) out.push(await encodePng(chwToRgb(unit, width, height, b)));
  return out;
}

async function imageOutputStep(raw: unknown, inputs: Record<string, HostValue>, ctx: HostStepContext): Promise<Record<string, HostValue>> {
  const p = imageOutputParams.parse(raw);
  const image = optionalTensor(inputs, 'image', ctx);
  if (!image) throw new HostStepError(`node '${ctx.nodeId}' (io.image_output): input 'image' is missing`);
  const pngs = await imagesToPng(image, p.range, `node '${ctx.nodeId}' input 'image'`);
  if (p.path) {
    const target = resolvePath(ctx, p.path);
    const stem = target.replace(/\.png$/i, '');
    pngs.forEach((png, i) => writeFileAtomic(i === 0 ? `${stem}.png` : `${stem}-${i}.png`, png));
  }
  return {};
}

/** One line describing a tensor: name, shape, dtype and, for float tensors, mean / std / min / max. */
export function tensorSummary(name: string, t: Tensor): string {
  const head = `${name} [${t.dims.join(', ')}] ${t.dtype}`;
  const values = tensorToNumbers(t);
  if (values.length === 0) return `${head}: empty`;
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = sum / values.length;
  let ss = 0;
  for (const v of values) ss += (v - mean) ** 2;
  const f = (v: number) => (Number.isInteger(v) && Math.abs(v) < 1e9 ? String(v) : v.toPrecision(5));
  return `${head}: mean ${f(mean)}, std ${f(Math.sqrt(ss / values.length))}, min ${f(min)}, max ${f(max)}`;
}

async function tensorOutputStep(raw: unknown, inputs: Record<string, HostValue>, ctx: HostStepContext): Promise<Record<string, HostValue>> {
  const p = tensorOutputParams.parse(raw);
  const t = optionalTensor(inputs, 'tensor', ctx);
  if (!t) throw new HostStepError(`node '${ctx.nodeId}' (io.tensor_output): input 'tensor' is missing`);
  if (p.path) writeSafetensors(resolvePath(ctx, p.path), new Map([[p.name, t]]), { node: ctx.nodeId });
  return { summary: tensorSummary(p.name, t) };
}

// ---------------------------------------------------------------------------------------------------------------
// Prompts

async function chatStep(raw: unknown, inputs: Record<string, HostValue>, ctx: HostStepContext): Promise<Record<string, HostValue>> {
  const system = inputs.system === undefined ? undefined : textInput(inputs, 'system', ctx);
  return { text: renderChatNode(chatParams.parse(raw), textInput(inputs, 'text', ctx), system) };
}

async function instructionStep(raw: unknown, inputs: Record<string, HostValue>, ctx: HostStepContext): Promise<Record<string, HostValue>> {
  return { text: renderInstruction(instructionParams.parse(raw), textInput(inputs, 'text', ctx)) };
}

async function chainOfThoughtStep(raw: unknown, inputs: Record<string, HostValue>, ctx: HostStepContext): Promise<Record<string, HostValue>> {
  const p = cotParams.parse(raw);
  return { text: renderChainOfThought(textInput(inputs, 'text', ctx), p.trigger, p.position) };
}

async function fewShotStep(raw: unknown, inputs: Record<string, HostValue>, ctx: HostStepContext): Promise<Record<string, HostValue>> {
  const p = fewShotParams.parse(raw);
  const query = optionalTensor(inputs, 'pixel_values', ctx);
  const prompt = renderFewShotPrompt(p.examples, textInput(inputs, 'text', ctx), {
    placeholder: p.image_placeholder,
    separator: p.separator,
    queryHasImage: query !== undefined,
  });
  const size = query ? query.dims[2] : p.image_size;
  const parts: Float32Array[] = [];
  if (prompt.exampleImages.length) {
    // Example images use CLIP preprocessing; connect the query through an io.image with the same settings.
    const pv = await loadPixelValues(prompt.exampleImages.map((f) => resolvePath(ctx, f)), preprocessOptions(size, 'shortest-then-crop', 'clip'), prompt.exampleImages);
    parts.push(pv.data);
  }
  if (query) parts.push(query.data as Float32Array);
  const count = prompt.exampleImages.length + (query ? 1 : 0);
  const data = new Float32Array(parts.reduce((n, x) => n + x.length, 0));
  let at = 0;
  for (const x of parts) {
    data.set(x, at);
    at += x.length;
  }
  return { text: prompt.text, pixel_values: pixelTensor([count, 3, size, size], data) };
}

/** Host steps by the `host` id their node types declare. */
export const hostSteps: Record<string, HostStep> = {
  'io.image': imageStep,
  'io.video': videoStep,
  'io.audio': audioStep,
  'io.text': textStep,
  'io.text_output': textOutputStep,
  'io.image_output': imageOutputStep,
  'io.tensor_output': tensorOutputStep,
  'prompt.chat': chatStep,
  'prompt.instruction': instructionStep,
  'prompt.chain_of_thought': chainOfThoughtStep,
  'prompt.few_shot': fewShotStep,
};
