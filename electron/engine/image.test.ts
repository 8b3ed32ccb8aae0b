import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CLIP_MEAN, CLIP_STD, ImageError, centerCrop, chwToRgb, clipPreprocess, decodeImage, encodeJpeg, encodePng,
  encodePngFromChw, loadPixelValues, normalizeImage, PIL_FILTERS, pilResize, resizeImage, shortestEdgeSize, toPixelValues,
  type RgbImage,
} from './image.js';
import { readSafetensors } from '../onnx/safetensors.js';

const dir = mkdtempSync(join(tmpdir(), 'composer-image-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function solid(width: number, height: number, rgb: (x: number, y: number) => [number, number, number]): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(rgb(x, y), (y * width + x) * 3);
  return { width, height, data };
}

const px = (img: RgbImage, x: number, y: number): number[] => Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));

describe('image decode/encode', () => {
  it('round-trips RGB through PNG exactly, from bytes and from a file', async () => {
    const img = solid(7, 5, (x, y) => [x * 30, y * 50, (x * y) % 256]);
    const png = await encodePng(img);
    const back = await decodeImage(png);
    expect(back.width).toBe(7);
    expect(back.height).toBe(5);
    expect(Array.from(back.data)).toEqual(Array.from(img.data));
    const file = join(dir, 'a.png');
    writeFileSync(file, png);
    expect(Array.from((await decodeImage(file)).data)).toEqual(Array.from(img.data));
  });

  it('decodes JPEG and WebP, greyscale, 16-bit and transparent PNGs to 8-bit RGB', async () => {
    const img = solid(16, 16, () => [200, 100, 50]);
    const jpeg = await decodeImage(await encodeJpeg(img, 95));
    for (const [i, v] of px(jpeg, 8, 8).entries()) expect(Math.abs(v - [200, 100, 50][i])).toBeLessThan(6);
    const webp = await sharp(await encodePng(img)).webp({ lossless: true }).toBuffer();
    expect(px(await decodeImage(webp), 3, 3)).toEqual([200, 100, 50]);

    const grey = await sharp(Buffer.from([10, 20, 30, 40]), { raw: { width: 2, height: 2, channels: 1 } }).png().toBuffer();
    const g = await decodeImage(grey);
    expect(px(g, 1, 0)).toEqual([20, 20, 20]);

    const deep = await sharp(new Uint16Array([65535, 0, 32896, 257 * 100, 257 * 50, 257 * 25]), {
      raw: { width: 2, height: 1, channels: 3 },
    }).toColourspace('rgb16').png().toBuffer();
    expect((await sharp(deep).metadata()).depth).toBe('ushort');
    const d = await decodeImage(deep);
    expect(px(d, 0, 0)).toEqual([255, 0, 128]);
    expect(px(d, 1, 0)).toEqual([100, 50, 25]);

    // Transparent pixel → white; opaque pixel keeps its colour.
    const rgba = await sharp(Buffer.from([255, 0, 0, 0, 0, 0, 255, 255]), { raw: { width: 2, height: 1, channels: 4 } }).png().toBuffer();
    const t = await decodeImage(rgba);
    expect(px(t, 0, 0)).toEqual([255, 255, 255]);
    expect(px(t, 1, 0)).toEqual([0, 0, 255]);
  });

  it('names the file or label in decode errors', async () => {
    await expect(decodeImage(join(dir, 'missing.png'))).rejects.toThrow(/missing\.png/);
    const bad = join(dir, 'bad.png');
    writeFileSync(bad, 'not an image');
    await expect(decodeImage(bad)).rejects.toThrow(ImageError);
    await expect(decodeImage(bad)).rejects.toThrow(/bad\.png/);
    await expect(decodeImage(new Uint8Array([1, 2, 3]), 'upload.jpg')).rejects.toThrow(/upload\.jpg/);
  });

  it('encodes float CHW in [0, 1] (clamped) to PNG', async () => {
    const chw = new Float32Array([0, 1, 2, -1, 0.5, 0.5, 0.5, 0.5, 0.2, 0.4, 0.6, 0.8]); // 3×2×2
    const rgb = chwToRgb(chw, 2, 2);
    expect(px(rgb, 0, 0)).toEqual([0, 128, 51]);
    expect(px(rgb, 1, 0)).toEqual([255, 128, 102]);
    expect(px(rgb, 0, 1)).toEqual([255, 128, 153]);
    expect(px(rgb, 1, 1)).toEqual([0, 128, 204]);
    const back = await decodeImage(await encodePngFromChw(chw, 2, 2));
    expect(Array.from(back.data)).toEqual(Array.from(rgb.data));
    expect(() => chwToRgb(chw, 2, 2, 1)).toThrow(/too small/);
  });
});

describe('resize and normalise', () => {
  it('normalises with mean/std into CHW exactly as computed by hand', () => {
    const img = solid(2, 1, (x) => (x === 0 ? [200, 100, 50] : [0, 255, 128]));
    const out = normalizeImage(img, { mean: CLIP_MEAN, std: CLIP_STD });
    // Channel-major: [R(0,0), R(1,0), G(0,0), G(1,0), B(0,0), B(1,0)].
    const hand = [
      (200 / 255 - 0.48145466) / 0.26862954, (0 / 255 - 0.48145466) / 0.26862954,
      (100 / 255 - 0.4578275) / 0.26130258, (255 / 255 - 0.4578275) / 0.26130258,
      (50 / 255 - 0.40821073) / 0.27577711, (128 / 255 - 0.40821073) / 0.27577711,
    ];
    expect(out.length).toBe(6);
    out.forEach((v, i) => expect(v).toBeCloseTo(hand[i], 5));
    expect(hand[0]).toBeCloseTo(1.1274, 3); // (0.784314 − 0.481455) / 0.268630
    expect(() => normalizeImage(img, { mean: [0, 0], std: [1, 1, 1] })).toThrow(/3 values/);
    expect(() => normalizeImage(img, { mean: [0, 0, 0], std: [1, 0, 1] })).toThrow(/positive/);
  });

  it('resizes the shortest side (HF rounding) then centre-crops', async () => {
    expect(shortestEdgeSize(640, 480, 224)).toEqual({ width: 298, height: 224 });
    expect(shortestEdgeSize(480, 640, 224)).toEqual({ width: 224, height: 298 });
    // 80×40: red | green | blue thirds of widths 20/40/20. Shortest side → 20 gives 40×20; the centre 20×20 is the green part.
    const img = solid(80, 40, (x) => (x < 20 ? [255, 0, 0] : x < 60 ? [0, 255, 0] : [0, 0, 255]));
    const out = await resizeImage(img, { mode: 'shortest-then-crop', width: 20, height: 20 });
    expect([out.width, out.height]).toEqual([20, 20]);
    expect(px(out, 10, 10)).toEqual([0, 255, 0]);
    expect(px(out, 2, 2)[1]).toBeGreaterThan(200);
    const stretched = await resizeImage(img, { mode: 'stretch', width: 8, height: 8 });
    expect([stretched.width, stretched.height]).toEqual([8, 8]);
    expect(px(stretched, 0, 4)[0]).toBeGreaterThan(200);
    expect(px(stretched, 7, 4)[2]).toBeGreaterThan(200);
  });

  it('centre crop follows floor((H − h) / 2) and pads when the crop is larger', () => {
    const img = solid(5, 5, (x, y) => [x, y, 0]);
    const c = centerCrop(img, 2, 2);
    expect(px(c, 0, 0)).toEqual([1, 1, 0]);
    const big = centerCrop(img, 7, 7);
    expect(px(big, 0, 0)).toEqual([0, 0, 0]);
    expect(px(big, 1, 1)).toEqual([0, 0, 0]);
    expect(px(big, 2, 3)).toEqual([1, 2, 0]);
  });

  it('builds a [B, 3, H, W] pixel_values batch, each image at its own offset', async () => {
    const a = solid(6, 6, () => [255, 0, 0]);
    const b = solid(12, 6, () => [0, 0, 255]);
    const pv = await toPixelValues([a, b], { size: 4, mean: [0, 0, 0], std: [1, 1, 1] });
    expect(pv.dims).toEqual([2, 3, 4, 4]);
    expect(pv.data.length).toBe(2 * 3 * 16);
    expect(pv.data[0]).toBeCloseTo(1, 5); // image 0, R
    expect(pv.data[16]).toBeCloseTo(0, 5); // image 0, G
    expect(pv.data[48 + 32]).toBeCloseTo(1, 5); // image 1, B
    expect(pv.data[48]).toBeCloseTo(0, 5); // image 1, R
  });

  it('loads files into pixel_values with CLIP preprocessing and names the failing file', async () => {
    const file = join(dir, 'grey.png');
    writeFileSync(file, await encodePng(solid(40, 30, () => [128, 128, 128])));
    const pv = await loadPixelValues([file], clipPreprocess(16));
    expect(pv.dims).toEqual([1, 3, 16, 16]);
    expect(pv.data[0]).toBeCloseTo((128 / 255 - CLIP_MEAN[0]) / CLIP_STD[0], 4);
    expect(pv.data[3 * 256 - 1]).toBeCloseTo((128 / 255 - CLIP_MEAN[2]) / CLIP_STD[2], 4);
    await expect(loadPixelValues([file, join(dir, 'nope.jpg')], clipPreprocess(16))).rejects.toThrow(/nope\.jpg/);
  });
});

describe("Pillow's resampling (what transformers' image processors resize with)", () => {
  // tools/pil_resize_reference.py: a 29×23 noisy gradient resized by Pillow with every filter, down and up.
  const ref = readSafetensors(join(import.meta.dirname, 'testdata', 'pil_resize.safetensors')).tensors;
  const asImage = (name: string): RgbImage => {
    const t = ref.get(name);
    if (!t) throw new Error(`pil_resize.safetensors has no '${name}'`);
    const [height, width] = t.dims;
    return { width, height, data: t.data as Uint8Array };
  };
  const source = asImage('source');

  for (const filter of PIL_FILTERS) {
    it(`${filter} is byte-identical to Pillow, down- and upsampling`, () => {
      const sizes = [...ref.keys()].filter((k) => k.startsWith(`${filter.slice(4)}.`));
      expect(sizes.length).toBe(3);
      for (const key of sizes) {
        const want = asImage(key);
        const got = pilResize(source, want.width, want.height, filter);
        expect([got.width, got.height]).toEqual([want.width, want.height]);
        const differing = got.data.reduce((n, v, i) => n + (v === want.data[i] ? 0 : 1), 0);
        expect(differing, `${key}: bytes that differ from Pillow`).toBe(0);
      }
    });
  }

  it('resizeImage and toPixelValues use it for pil-* kernels (shortest edge, then centre crop)', async () => {
    const viaResize = await resizeImage(source, { mode: 'stretch', width: 13, height: 9, kernel: 'pil-bicubic' });
    expect(Array.from(viaResize.data)).toEqual(Array.from(asImage('bicubic.13x9').data));
    // 29×23, shortest edge 9 → 11×9 (long side truncated), centre crop 9×9 starts at column 1.
    const crop = await resizeImage(source, { mode: 'shortest-then-crop', width: 9, height: 9, shortestEdge: 9, kernel: 'pil-bilinear' });
    const full = pilResize(source, 11, 9, 'pil-bilinear');
    expect(Array.from(crop.data)).toEqual(Array.from(centerCrop(full, 9, 9).data));
    // The sharp kernel is a different implementation: it does not reproduce Pillow byte for byte.
    const sharpCubic = await resizeImage(source, { mode: 'stretch', width: 13, height: 9, kernel: 'cubic' });
    expect(Array.from(sharpCubic.data)).not.toEqual(Array.from(asImage('bicubic.13x9').data));
  });
});
