// Input and output nodes (host side): images, video frames, audio, text in; text and PNG images out.
// The decoding and preprocessing live in electron/engine/image.ts and audio.ts; the host steps in
// electron/engine/host-steps/ call them with these params.

import { z } from 'zod';
import type { NodeTypeDef } from './types.js';

/** Normalisation presets (mean/std per channel) matching the encoders' training. */
export const NORMALIZE_PRESETS = ['clip', 'imagenet', 'half', 'none'] as const;
export type NormalizePreset = (typeof NORMALIZE_PRESETS)[number];

const imageSize = z.number().int().min(8).max(1024).default(64);
const resizeMode = z.enum(['shortest-then-crop', 'stretch']).default('shortest-then-crop');
const normalize = z.enum(NORMALIZE_PRESETS).default('clip');

const imageDocs = {
  size: 'Square side in pixels the image is resized to (the vision encoder\'s image size; tiny models use 64).',
  resize: 'shortest-then-crop: scale the short side to size and centre-crop (CLIP); stretch: resize ignoring aspect.',
  normalize: 'Per-channel mean/std: clip (OpenAI CLIP), imagenet, half (0.5/0.5 → [-1, 1]) or none ([0, 1]).',
};

// ---------------------------------------------------------------------------------------------------------------
// io.image

/** Resampling: sharp's Catmull-Rom cubic, or one of Pillow's filters computed exactly as Pillow does. */
export const RESAMPLE_FILTERS = ['sharp', 'bicubic', 'bilinear', 'nearest', 'lanczos', 'box', 'hamming'] as const;
export type ResampleName = (typeof RESAMPLE_FILTERS)[number];

const channels = z.tuple([z.number(), z.number(), z.number()]);

export const imageParams = z
  .strictObject({
    path: z.string().default(''),
    base64: z.string().default(''),
    size: imageSize,
    resize: resizeMode,
    normalize,
    resample: z.enum(RESAMPLE_FILTERS).default('sharp'),
    shortest_edge: z.number().int().min(8).max(4096).optional(),
    mean: channels.optional(),
    std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]).optional(),
    rescale_factor: z.number().positive().default(1 / 255),
  })
  .refine((p) => !(p.path && p.base64), { message: 'give either path or base64, not both', path: ['base64'] })
  .refine((p) => p.shortest_edge === undefined || p.shortest_edge >= p.size, {
    message: 'shortest_edge must be at least size (the centre crop cannot be larger than the resized image)',
    path: ['shortest_edge'],
  });

export type ImageInputParams = z.infer<typeof imageParams>;

const imageNode: NodeTypeDef<typeof imageParams> = {
  info: {
    type: 'io.image',
    typeVersion: 1,
    family: 'io',
    title: 'Image',
    aliases: ['image'],
    inputs: [],
    outputs: [{ name: 'pixel_values', kind: 'image', shape: [1, 3, 'H', 'W'], doc: 'Normalised float32 CHW image.' }],
    doc: {
      summary: 'Loads one image (file path, dropped bytes, or the image given at run time), resizes and normalises it.',
      usedBy: ['every vision-language model'],
      formula: 'pixel_values = (resize(img) · rescale_factor − mean) / std',
      details:
        'An imported Hugging Face folder sets these params from its preprocessor_config.json: shortest_edge and size ' +
        '(crop) for CLIP, stretch for SigLIP and BLIP-2, resample = Pillow\'s filter (byte-identical to Pillow, as the ' +
        'transformers image processors resize), image_mean / image_std as mean / std.',
    },
  },
  params: imageParams,
  paramDocs: {
    path: 'Image file (PNG, JPEG, WebP, …); relative paths are resolved against the graph file. Empty: given at run time.',
    base64: 'The image bytes, base64-encoded, instead of a path (for dropped files).',
    ...imageDocs,
    resample:
      "Resampling filter: 'sharp' (Catmull-Rom cubic via sharp, what the built-in models were trained with) or one of " +
      "Pillow's filters (bicubic, bilinear, nearest, lanczos, box, hamming) computed exactly as Pillow does, which " +
      'is what transformers\' image processors use.',
    shortest_edge:
      "For resize 'shortest-then-crop': the short side is scaled to this before the centre crop to size (CLIP's " +
      'size.shortest_edge); empty = size.',
    mean: 'Per-channel mean (R, G, B) in [0, 1] units; overrides the normalize preset (preprocessor image_mean).',
    std: 'Per-channel standard deviation (R, G, B); overrides the normalize preset (preprocessor image_std).',
    rescale_factor: 'Multiplier of the 8-bit values before mean/std (1/255; 1 = do_rescale off).',
  },
  outputShapes: (p) => ({ pixel_values: [1, 3, p.size, p.size] }),
  host: 'io.image',
};

// ---------------------------------------------------------------------------------------------------------------
// io.video

export const videoParams = z.strictObject({
  path: z.string().default(''),
  frames: z.number().int().min(1).max(64).default(5),
  size: imageSize,
  resize: resizeMode,
  normalize,
});

/** Indices of `count` frames spread uniformly over `total` (first and last included when count > 1). */
export function sampleFrameIndices(total: number, count: number): number[] {
  if (!Number.isInteger(total) || total < 1) throw new RangeError(`a video needs at least one frame (got ${total})`);
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`frames to sample must be a positive integer (got ${count})`);
  if (count === 1) return [Math.floor((total - 1) / 2)];
  return Array.from({ length: count }, (_, i) => Math.round((i * (total - 1)) / (count - 1)));
}

const videoNode: NodeTypeDef<typeof videoParams> = {
  info: {
    type: 'io.video',
    typeVersion: 1,
    family: 'io',
    title: 'Video',
    aliases: ['video'],
    inputs: [],
    outputs: [
      { name: 'pixel_values', kind: 'video', shape: [1, 'F', 3, 'H', 'W'], doc: 'F frames, each preprocessed like an image.' },
    ],
    doc: {
      summary:
        'Samples N frames uniformly from a folder of images (sorted by name) or an animated GIF/WebP, and preprocesses each like an image.',
      usedBy: ['Video-LLaMA', 'Video-ChatGPT', 'NExT-GPT (video input)'],
      formula: 'frame_i = round(i · (T − 1) / (N − 1)), i = 0 … N − 1',
    },
  },
  params: videoParams,
  paramDocs: {
    path: 'A folder of frame images, or an animated GIF/WebP file. Empty: given at run time.',
    frames: 'How many frames to sample uniformly (5 by default).',
    ...imageDocs,
  },
  outputShapes: (p) => ({ pixel_values: [1, p.frames, 3, p.size, p.size] }),
  host: 'io.video',
};

// ---------------------------------------------------------------------------------------------------------------
// io.audio

export const audioParams = z.strictObject({
  path: z.string().default(''),
  n_mels: z.number().int().min(8).max(256).default(80),
  seconds: z.number().positive().max(600).default(30),
});

const audioNode: NodeTypeDef<typeof audioParams> = {
  info: {
    type: 'io.audio',
    typeVersion: 1,
    family: 'io',
    title: 'Audio',
    aliases: ['audio'],
    inputs: [],
    outputs: [
      { name: 'input_features', kind: 'audio', shape: [1, 'M', 'F'], doc: 'Whisper log-mel spectrogram [1, n_mels, frames].' },
    ],
    doc: {
      summary:
        'Reads a WAV file, resamples it to 16 kHz mono, pads or trims it, and computes the Whisper log-mel spectrogram.',
      usedBy: ['Whisper-style audio encoders', 'NExT-GPT (audio input)', 'Qwen-Audio'],
      formula: 'frames = seconds · 16000 / 160; x = (max(log10(mel), max − 8) + 4) / 4',
    },
  },
  params: audioParams,
  paramDocs: {
    path: 'WAV file (PCM or float, any rate and channel count). Empty: given at run time.',
    n_mels: 'Mel bands (Whisper: 80; large-v3: 128).',
    seconds: 'Length the audio is zero-padded or trimmed to (Whisper: 30 s → 3000 frames).',
  },
  outputShapes: (p) => ({ input_features: [1, p.n_mels, Math.floor((p.seconds * 16000) / 160)] }),
  host: 'io.audio',
};

// ---------------------------------------------------------------------------------------------------------------
// io.text, io.text_output, io.image_output

export const textParams = z.strictObject({ text: z.string().default('') });

const textNode: NodeTypeDef<typeof textParams> = {
  info: {
    type: 'io.text',
    typeVersion: 1,
    family: 'io',
    title: 'Text',
    aliases: ['text'],
    inputs: [],
    outputs: [{ name: 'text', kind: 'text' }],
    doc: { summary: 'A piece of text typed in the node (a prompt, a question, a caption).', usedBy: ['every text prompt'] },
  },
  params: textParams,
  paramDocs: { text: 'The text.' },
  outputShapes: () => ({}),
  host: 'io.text',
};

export const textOutputParams = z.strictObject({ path: z.string().default('') });

const textOutputNode: NodeTypeDef<typeof textOutputParams> = {
  info: {
    type: 'io.text_output',
    typeVersion: 1,
    family: 'io',
    title: 'Text output',
    aliases: ['text-out'],
    inputs: [{ name: 'text', kind: 'text', doc: 'The generated text.' }],
    outputs: [],
    doc: { summary: 'Shows the generated text (and writes it to a file when a path is set).', usedBy: ['captioning', 'VQA', 'chat'] },
  },
  params: textOutputParams,
  paramDocs: { path: 'Optional .txt file to write the text to, relative to the graph file; empty shows it only.' },
  outputShapes: () => ({}),
  host: 'io.text_output',
};

export const imageOutputParams = z.strictObject({
  path: z.string().default(''),
  range: z.enum(['-1..1', '0..1']).default('-1..1'),
});

/** Maps a pixel value from the generator's range to [0, 1] (what PNG encoding expects). */
export function toUnitRange(v: number, range: '-1..1' | '0..1'): number {
  return range === '-1..1' ? (v + 1) / 2 : v;
}

const imageOutputNode: NodeTypeDef<typeof imageOutputParams> = {
  info: {
    type: 'io.image_output',
    typeVersion: 1,
    family: 'io',
    title: 'Image output',
    aliases: ['image-out'],
    inputs: [{ name: 'image', kind: 'image', shape: ['B', 3, 'H', 'W'], doc: 'Generated images, float CHW.' }],
    outputs: [],
    doc: {
      summary: 'Shows generated images and saves them as PNG (one file per batch item when a path is set).',
      usedBy: ['NExT-GPT', 'MiniGPT-5', 'any diffusion generator'],
      formula: 'png = round(clamp(to_unit(x), 0, 1) · 255)',
    },
  },
  params: imageOutputParams,
  paramDocs: {
    path: 'Optional PNG file, relative to the graph file; batch item i > 0 gets a -i suffix. Empty shows it only.',
    range: 'Value range of the incoming pixels: -1..1 (diffusion) or 0..1.',
  },
  outputShapes: () => ({}),
  host: 'io.image_output',
};

// ---------------------------------------------------------------------------------------------------------------
// io.tensor_output

export const tensorOutputParams = z.strictObject({
  path: z.string().default(''),
  name: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/, 'a tensor name of letters, digits, _ . -')
    .default('tensor'),
});

const tensorOutputNode: NodeTypeDef<typeof tensorOutputParams> = {
  info: {
    type: 'io.tensor_output',
    typeVersion: 1,
    family: 'io',
    title: 'Tensor output',
    aliases: ['tensor-out'],
    inputs: [{ name: 'tensor', kind: 'any', doc: 'Any tensor: image or text features, pooled embeddings, logits.' }],
    outputs: [{ name: 'summary', kind: 'text', doc: 'One line: name, shape, dtype, mean, std, min and max.' }],
    doc: {
      summary:
        'Shows what a tensor holds (shape, dtype and statistics) and, when a path is set, saves it as a safetensors ' +
        'file: the result of an encoder used on its own, to compare with another implementation or feed elsewhere.',
      usedBy: ['imported vision and text towers (CLIP, SigLIP, BERT)', 'feature extraction'],
      formula: 'summary = name [dims] dtype: mean μ, std σ, min, max',
    },
  },
  params: tensorOutputParams,
  paramDocs: {
    path: 'Optional .safetensors file to write the tensor to, relative to the graph file; empty shows the summary only.',
    name: 'Name of the tensor in the summary and in the file (e.g. image_embeds, pooler_output).',
  },
  outputShapes: () => ({}),
  host: 'io.tensor_output',
};

export const nodeTypes: NodeTypeDef[] = [
  imageNode,
  videoNode,
  audioNode,
  textNode,
  textOutputNode,
  imageOutputNode,
  tensorOutputNode,
];
