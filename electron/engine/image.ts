/**
 * Host-side image I/O: decode (PNG/JPEG/WebP/… via sharp), resize (CLIP style: shortest side then centre crop,
 * or a plain resize), normalise into float32 CHW `pixel_values` batches, and encode back to PNG.
 *
 * Images travel as `RgbImage`: 8-bit RGB, row-major HWC. Every error names the file (or the caller's label for
 * in-memory bytes).
 */
import sharp from 'sharp';
import type { Sharp } from 'sharp';

export interface RgbImage {
  width: number;
  height: number;
  /** length = width · height · 3, HWC. */
  data: Uint8Array;
}

export class ImageError extends Error {
  override name = 'ImageError';
}

/** CLIP (OpenAI) normalisation constants, used by CLIP, LLaVA and BLIP-2 image processors. */
export const CLIP_MEAN: readonly [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: readonly [number, number, number] = [0.26862954, 0.26130258, 0.27577711];
/** ImageNet normalisation constants (ViT, many torchvision models). */
export const IMAGENET_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];

export type ImageSource = string | Uint8Array;

function describeSource(src: ImageSource, label?: string): string {
  if (label) return `'${label}'`;
  return typeof src === 'string' ? `'${src}'` : `image bytes (${src.byteLength} bytes)`;
}

export function checkRgbImage(img: RgbImage, what = 'image'): void {
  if (!Number.isInteger(img.width) || !Number.isInteger(img.height) || img.width <= 0 || img.height <= 0) {
    throw new ImageError(`${what}: invalid size ${img.width}×${img.height}`);
  }
  if (img.data.length !== img.width * img.height * 3) {
    throw new ImageError(`${what}: ${img.data.length} bytes do not match ${img.width}×${img.height}×3`);
  }
}

/**
 * Decode an image file or encoded bytes to 8-bit RGB. Transparency is composited over white (as the HF image
 * processors' convert_to_rgb does); greyscale and 16-bit images are converted; EXIF orientation is applied.
 */
export async function decodeImage(src: ImageSource, label?: string): Promise<RgbImage> {
  const what = describeSource(src, label);
  try {
    const { data, info } = await sharp(typeof src === 'string' ? src : Buffer.from(src.buffer, src.byteOffset, src.byteLength))
      .rotate()
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      .toColourspace('srgb')
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, expected 3`);
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  } catch (e) {
    throw new ImageError(`cannot decode image ${what}: ${(e as Error).message}`);
  }
}

/** sharp's kernels ('cubic' is Catmull-Rom) and Pillow's filters computed as Pillow does ('pil-*'). */
export type ResizeKernel = 'nearest' | 'linear' | 'cubic' | 'lanczos3' | PilFilter;

/** Pillow's resampling filters (PIL.Image.Resampling), the ones Hugging Face image processors resize with. */
export type PilFilter = 'pil-nearest' | 'pil-box' | 'pil-bilinear' | 'pil-hamming' | 'pil-bicubic' | 'pil-lanczos';
export const PIL_FILTERS: readonly PilFilter[] = ['pil-nearest', 'pil-box', 'pil-bilinear', 'pil-hamming', 'pil-bicubic', 'pil-lanczos'];

function isPilFilter(k: ResizeKernel): k is PilFilter {
  return k.startsWith('pil-');
}

// Pillow's filter kernels (libImaging/Resample.c) and their supports.
function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}
const PIL_KERNELS: Record<Exclude<PilFilter, 'pil-nearest'>, { support: number; f: (x: number) => number }> = {
  'pil-box': { support: 0.5, f: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  'pil-bilinear': { support: 1, f: (x) => (Math.abs(x) < 1 ? 1 - Math.abs(x) : 0) },
  'pil-hamming': {
    support: 1,
    f: (x) => {
      const a = Math.abs(x);
      if (a === 0) return 1;
      if (a >= 1) return 0;
      const px = a * Math.PI;
      return (Math.sin(px) / px) * (0.54 + 0.46 * Math.cos(px));
    },
  },
  'pil-bicubic': {
    support: 2,
    f: (x) => {
      const a = -0.5;
      const t = Math.abs(x);
      if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
      if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
      return 0;
    },
  },
  'pil-lanczos': { support: 3, f: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
};

/** 8-bit fixed-point precision of Pillow's resampling (PRECISION_BITS = 32 − 8 − 2). */
const PRECISION_BITS = 22;

/**
 * Per output pixel along one axis: the first source index, the tap count and the fixed-point weights, computed as
 * Pillow's precompute_coeffs + normalize_coeffs_8bpc (antialiased: the filter widens by the downscale factor).
 */
function pilCoefficients(inSize: number, outSize: number, filter: { support: number; f: (x: number) => number }) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      w[x] = filter.f((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (let x = 0; x < xmax; x++) {
      const k = ww !== 0 ? w[x] / ww : w[x];
      kk[xx * ksize + x] = Math.trunc(k < 0 ? -0.5 + k * (1 << PRECISION_BITS) : 0.5 + k * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { bounds, kk, ksize };
}

function clip8(v: number): number {
  if (v >= 2 ** (PRECISION_BITS + 8)) return 255;
  if (v <= 0) return 0;
  return Math.floor(v / 2 ** PRECISION_BITS);
}

/**
 * Resizes like Pillow's Image.resize on an RGB image (what transformers' image processors call): nearest as
 * Pillow's affine scale, the other filters as its two-pass (horizontal, then vertical) convolution with 8-bit
 * fixed-point weights and rounding after each pass — so the result is byte-identical to Pillow's.
 */
export function pilResize(img: RgbImage, width: number, height: number, filter: PilFilter, what = 'image'): RgbImage {
  checkRgbImage(img, what);
  if (img.width === width && img.height === height) return img;
  if (filter === 'pil-nearest') {
    // ImagingScaleAffine: source index = ⌊(i + 0.5)·scale⌋, accumulated step by step as Pillow does.
    const xs = new Int32Array(width);
    let xo = (img.width / width) * 0.5;
    for (let x = 0; x < width; x++, xo += img.width / width) xs[x] = Math.min(img.width - 1, Math.trunc(xo));
    const out = new Uint8Array(width * height * 3);
    let yo = (img.height / height) * 0.5;
    for (let y = 0; y < height; y++, yo += img.height / height) {
      const sy = Math.min(img.height - 1, Math.trunc(yo));
      for (let x = 0; x < width; x++) {
        const si = (sy * img.width + xs[x]) * 3;
        const di = (y * width + x) * 3;
        out[di] = img.data[si];
        out[di + 1] = img.data[si + 1];
        out[di + 2] = img.data[si + 2];
      }
    }
    return { width, height, data: out };
  }
  const kernel = PIL_KERNELS[filter];
  let cur = img;
  if (width !== img.width) {
    const { bounds, kk, ksize } = pilCoefficients(img.width, width, kernel);
    const out = new Uint8Array(width * cur.height * 3);
    for (let y = 0; y < cur.height; y++) {
      const row = y * cur.width * 3;
      for (let xx = 0; xx < width; xx++) {
        const xmin = bounds[xx * 2];
        const xmax = bounds[xx * 2 + 1];
        let s0 = 1 << (PRECISION_BITS - 1);
        let s1 = s0;
        let s2 = s0;
        for (let x = 0; x < xmax; x++) {
          const k = kk[xx * ksize + x];
          const si = row + (x + xmin) * 3;
          s0 += cur.data[si] * k;
          s1 += cur.data[si + 1] * k;
          s2 += cur.data[si + 2] * k;
        }
        const di = (y * width + xx) * 3;
        out[di] = clip8(s0);
        out[di + 1] = clip8(s1);
        out[di + 2] = clip8(s2);
      }
    }
    cur = { width, height: cur.height, data: out };
  }
  if (height !== cur.height) {
    const { bounds, kk, ksize } = pilCoefficients(cur.height, height, kernel);
    const out = new Uint8Array(cur.width * height * 3);
    for (let yy = 0; yy < height; yy++) {
      const ymin = bounds[yy * 2];
      const ymax = bounds[yy * 2 + 1];
      for (let x = 0; x < cur.width; x++) {
        let s0 = 1 << (PRECISION_BITS - 1);
        let s1 = s0;
        let s2 = s0;
        for (let y = 0; y < ymax; y++) {
          const k = kk[yy * ksize + y];
          const si = ((y + ymin) * cur.width + x) * 3;
          s0 += cur.data[si] * k;
          s1 += cur.data[si + 1] * k;
          s2 += cur.data[si + 2] * k;
        }
        const di = (yy * cur.width + x) * 3;
        out[di] = clip8(s0);
        out[di + 1] = clip8(s1);
        out[di + 2] = clip8(s2);
      }
    }
    cur = { width: cur.width, height, data: out };
  }
  return cur;
}

export interface ResizeOptions {
  /** 'shortest-then-crop' (CLIP): scale so the short side is `shortestEdge`, then centre-crop `width`×`height`.
   *  'stretch': resize straight to `width`×`height` ignoring aspect ratio. */
  mode: 'shortest-then-crop' | 'stretch';
  width: number;
  height: number;
  /** For 'shortest-then-crop'; defaults to min(width, height). */
  shortestEdge?: number;
  /** Default 'cubic' (Catmull-Rom, as PIL bicubic). */
  kernel?: ResizeKernel;
}

function sharpFromRgb(img: RgbImage): Sharp {
  return sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), {
    raw: { width: img.width, height: img.height, channels: 3 },
  });
}

async function toRgb(s: Sharp): Promise<RgbImage> {
  const { data, info } = await s.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/** Output size of "resize shortest side to `edge`" keeping aspect ratio (long side truncated, as HF does). */
export function shortestEdgeSize(width: number, height: number, edge: number): { width: number; height: number } {
  if (width <= height) return { width: edge, height: Math.max(1, Math.floor((edge * height) / width)) };
  return { width: Math.max(1, Math.floor((edge * width) / height)), height: edge };
}

export async function resizeImage(img: RgbImage, opts: ResizeOptions, what = 'image'): Promise<RgbImage> {
  checkRgbImage(img, what);
  const { width, height } = opts;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new ImageError(`${what}: invalid target size ${width}×${height}`);
  }
  const kernel = opts.kernel ?? 'cubic';
  const scale = async (src: RgbImage, w: number, h: number): Promise<RgbImage> => {
    if (src.width === w && src.height === h) return src;
    if (isPilFilter(kernel)) return pilResize(src, w, h, kernel, what);
    return toRgb(sharpFromRgb(src).resize(w, h, { fit: 'fill', kernel }));
  };
  try {
    if (opts.mode === 'stretch') return await scale(img, width, height);
    const edge = opts.shortestEdge ?? Math.min(width, height);
    if (!Number.isInteger(edge) || edge <= 0) throw new ImageError(`${what}: invalid shortest edge ${edge}`);
    const scaled = shortestEdgeSize(img.width, img.height, edge);
    return centerCrop(await scale(img, scaled.width, scaled.height), width, height, what);
  } catch (e) {
    if (e instanceof ImageError) throw e;
    throw new ImageError(`${what}: resize failed: ${(e as Error).message}`);
  }
}

/**
 * Centre crop (HF convention: top = ⌊(H − h) / 2⌋). A crop larger than the image pads with black, as the HF
 * processors do.
 */
export function centerCrop(img: RgbImage, width: number, height: number, what = 'image'): RgbImage {
  checkRgbImage(img, what);
  if (img.width === width && img.height === height) return img;
  const top = Math.floor((img.height - height) / 2);
  const left = Math.floor((img.width - width) / 2);
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= img.height) continue;
    for (let x = 0; x < width; x++) {
      const sx = x + left;
      if (sx < 0 || sx >= img.width) continue;
      const si = (sy * img.width + sx) * 3;
      const di = (y * width + x) * 3;
      out[di] = img.data[si];
      out[di + 1] = img.data[si + 1];
      out[di + 2] = img.data[si + 2];
    }
  }
  return { width, height, data: out };
}

export interface NormalizeOptions {
  mean: readonly number[];
  std: readonly number[];
  /** Multiplier applied before mean/std; default 1/255. */
  rescale?: number;
}

/** HWC u8 → float32 CHW: ((x · rescale) − mean[c]) / std[c]. Writes into `out` at `offset` when given. */
export function normalizeImage(img: RgbImage, opts: NormalizeOptions, out?: Float32Array, offset = 0): Float32Array {
  checkRgbImage(img);
  if (opts.mean.length !== 3 || opts.std.length !== 3) throw new ImageError('normalise: mean and std need 3 values (R, G, B)');
  if (opts.std.some((s) => !(s > 0))) throw new ImageError(`normalise: std must be positive, got [${opts.std.join(', ')}]`);
  const plane = img.width * img.height;
  const dst = out ?? new Float32Array(plane * 3);
  if (offset + plane * 3 > dst.length) throw new ImageError('normalise: output buffer too small');
  const rescale = opts.rescale ?? 1 / 255;
  for (let c = 0; c < 3; c++) {
    const scale = rescale / opts.std[c];
    const shift = opts.mean[c] / opts.std[c];
    const base = offset + c * plane;
    for (let p = 0; p < plane; p++) dst[base + p] = img.data[p * 3 + c] * scale - shift;
  }
  return dst;
}

export interface PixelValues {
  /** [B, 3, H, W] */
  dims: [number, number, number, number];
  data: Float32Array;
}

export interface PreprocessOptions {
  size: number | { width: number; height: number };
  mode?: 'shortest-then-crop' | 'stretch';
  shortestEdge?: number;
  kernel?: ResizeKernel;
  mean?: readonly number[];
  std?: readonly number[];
  rescale?: number;
}

/** CLIP-style preprocessing defaults. */
export function clipPreprocess(size = 224): PreprocessOptions {
  return { size, mode: 'shortest-then-crop', kernel: 'cubic', mean: CLIP_MEAN, std: CLIP_STD };
}

/** Resize + normalise a batch of images into one `pixel_values` tensor. */
export async function toPixelValues(images: readonly RgbImage[], opts: PreprocessOptions, names?: readonly string[]): Promise<PixelValues> {
  if (images.length === 0) throw new ImageError('pixel_values: empty batch');
  const width = typeof opts.size === 'number' ? opts.size : opts.size.width;
  const height = typeof opts.size === 'number' ? opts.size : opts.size.height;
  const plane = width * height * 3;
  const data = new Float32Array(images.length * plane);
  for (let b = 0; b < images.length; b++) {
    const what = names?.[b] ? `'${names[b]}'` : `image ${b}`;
    const resized = await resizeImage(images[b], {
      mode: opts.mode ?? 'shortest-then-crop', width, height, shortestEdge: opts.shortestEdge, kernel: opts.kernel,
    }, what);
    normalizeImage(resized, { mean: opts.mean ?? CLIP_MEAN, std: opts.std ?? CLIP_STD, rescale: opts.rescale }, data, b * plane);
  }
  return { dims: [images.length, 3, height, width], data };
}

/** Decode files/bytes and preprocess them into one batch; errors name the file. */
export async function loadPixelValues(sources: readonly ImageSource[], opts: PreprocessOptions, labels?: readonly string[]): Promise<PixelValues> {
  const names = sources.map((s, i) => labels?.[i] ?? (typeof s === 'string' ? s : `image ${i}`));
  const images: RgbImage[] = [];
  for (let i = 0; i < sources.length; i++) images.push(await decodeImage(sources[i], labels?.[i]));
  return toPixelValues(images, opts, names);
}

/** RGB u8 HWC → PNG bytes. */
export async function encodePng(img: RgbImage): Promise<Buffer> {
  checkRgbImage(img);
  return sharpFromRgb(img).png().toBuffer();
}

/** RGB u8 HWC → JPEG bytes (quality 1..100). */
export async function encodeJpeg(img: RgbImage, quality = 90): Promise<Buffer> {
  checkRgbImage(img);
  return sharpFromRgb(img).jpeg({ quality }).toBuffer();
}

/** What happens to a picture between its source and a model: blur (Gaussian σ in pixels), then lossy JPEG. */
export interface ImageDegradation {
  blurSigma?: number;
  jpegQuality?: number;
}

/** The image blurred and/or JPEG re-encoded (decoded back), as `d` says; unchanged when `d` asks for nothing. */
export async function degradeImage(img: RgbImage, d: ImageDegradation, what = 'image'): Promise<RgbImage> {
  checkRgbImage(img, what);
  if (d.blurSigma === undefined && d.jpegQuality === undefined) return img;
  let out = img;
  if (d.blurSigma !== undefined) {
    const data = await sharpFromRgb(out).blur(d.blurSigma).raw().toBuffer();
    out = { width: img.width, height: img.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  }
  if (d.jpegQuality !== undefined) out = await decodeImage(await encodeJpeg(out, d.jpegQuality), `${what} (JPEG q${d.jpegQuality})`);
  return out;
}

/** Float CHW with values in [0, 1] (clamped) → RGB u8 HWC. `chw` may hold a batch; `index` picks the image. */
export function chwToRgb(chw: Float32Array, width: number, height: number, index = 0): RgbImage {
  const plane = width * height;
  if ((index + 1) * plane * 3 > chw.length) {
    throw new ImageError(`CHW buffer of ${chw.length} values is too small for image ${index} of 3×${height}×${width}`);
  }
  const base = index * plane * 3;
  const data = new Uint8Array(plane * 3);
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < plane; p++) {
      const v = chw[base + c * plane + p];
      data[p * 3 + c] = Number.isNaN(v) ? 0 : Math.round(Math.min(1, Math.max(0, v)) * 255);
    }
  }
  return { width, height, data };
}

/** Float [0, 1] CHW → PNG bytes. */
export async function encodePngFromChw(chw: Float32Array, width: number, height: number, index = 0): Promise<Buffer> {
  return encodePng(chwToRgb(chw, width, height, index));
}
