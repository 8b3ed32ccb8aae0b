import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tensor } from '../../onnx/ir.js';
import { encodeWav } from '../audio.js';
import { decodeImage } from '../image.js';
import { type HostStepContext, type HostValue, hostSteps, loadVideoFrames } from './io.js';

let dir: string;
const ctx = (runInput?: HostStepContext['runInput']): HostStepContext => ({ nodeId: 'n1', baseDir: dir, runInput });
const solid = (r: number, g: number, b: number, w = 20, h = 10) =>
  sharp({ create: { width: w, height: h, channels: 3, background: { r, g, b } } }).png().toBuffer();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'host-steps-'));
  writeFileSync(join(dir, 'red.png'), await solid(255, 0, 0));
  mkdirSync(join(dir, 'frames'));
  // Frame i has red = 10·i; names sort numerically (2 before 10).
  for (let i = 0; i < 11; i++) writeFileSync(join(dir, 'frames', `f${i}.png`), await solid(10 * i, 0, 0));
  const gifFrames = await Promise.all([0, 1, 2, 3, 4, 5, 6].map((i) => solid(40 * i, 0, 0, 8, 8)));
  writeFileSync(join(dir, 'clip.gif'), await sharp(gifFrames, { join: { animated: true } }).gif().toBuffer());
  const tone = new Float32Array(16000).map((_, i) => 0.5 * Math.sin((2 * Math.PI * 440 * i) / 16000));
  writeFileSync(join(dir, 'tone.wav'), encodeWav(tone, 16000));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tensor = (v: HostValue | undefined): Tensor => {
  if (v === undefined || typeof v === 'string') throw new Error('expected a tensor');
  return v;
};

describe('io host steps', () => {
  it('io.image loads and normalises a file, from params or from the run', async () => {
    const out = tensor((await hostSteps['io.image']({ path: 'red.png', size: 8, normalize: 'none' }, {}, ctx())).pixel_values);
    expect(out.dims).toEqual([1, 3, 8, 8]);
    const data = out.data as Float32Array;
    expect(data[0]).toBeCloseTo(1, 5); // red plane
    expect(data[64]).toBeCloseTo(0, 5); // green plane
    const bytes = readFileSync(join(dir, 'red.png'));
    const half = tensor((await hostSteps['io.image']({ size: 8, normalize: 'half' }, {}, ctx({ bytes }))).pixel_values);
    expect((half.data as Float32Array)[0]).toBeCloseTo(1, 5);
    expect((half.data as Float32Array)[64]).toBeCloseTo(-1, 5);
    await expect(hostSteps['io.image']({}, {}, ctx())).rejects.toThrow(/node 'n1' \(io.image\): no image/);
    await expect(hostSteps['io.image']({ path: 'missing.png' }, {}, ctx())).rejects.toThrow(/missing.png/);
  });

  it('io.video samples frames uniformly from a folder (numeric order) and from an animated GIF', async () => {
    const folder = await loadVideoFrames(join(dir, 'frames'), 5);
    expect(folder.map((f) => f.data[0])).toEqual([0, 30, 50, 80, 100]);
    const gif = await loadVideoFrames(join(dir, 'clip.gif'), 3);
    expect(gif.map((f) => Math.round(f.data[0] / 40))).toEqual([0, 3, 6]);
    const out = tensor((await hostSteps['io.video']({ path: 'frames', frames: 4, size: 16 }, {}, ctx())).pixel_values);
    expect(out.dims).toEqual([1, 4, 3, 16, 16]);
  });

  it('io.audio turns a WAV into Whisper log-mel features', async () => {
    const out = tensor((await hostSteps['io.audio']({ path: 'tone.wav', seconds: 2 }, {}, ctx())).input_features);
    expect(out.dims).toEqual([1, 80, 200]);
  });

  it('io.text uses the typed text, or what the run gives', async () => {
    expect((await hostSteps['io.text']({ text: 'hello' }, {}, ctx())).text).toBe('hello');
    expect((await hostSteps['io.text']({ text: 'hello' }, {}, ctx({ text: 'bye' }))).text).toBe('bye');
  });

  it('io.image_output writes PNGs that decode back to the pixels', async () => {
    const data = new Float32Array(2 * 3 * 4 * 4);
    data.fill(1, 0, 16); // image 0: red channel at +1 → 255
    data.fill(-1, 16, 48); // image 0: green, blue at -1 → 0
    data.fill(0, 48); // image 1: all mid grey
    const image: Tensor = { dtype: 'float32', dims: [2, 3, 4, 4], data };
    await hostSteps['io.image_output']({ path: 'out/gen.png' }, { image }, ctx());
    const first = await decodeImage(join(dir, 'out', 'gen.png'));
    expect([...first.data.slice(0, 3)]).toEqual([255, 0, 0]);
    const second = await decodeImage(join(dir, 'out', 'gen-1.png'));
    expect(second.data[0]).toBe(128);
    await expect(hostSteps['io.image_output']({}, { image: 'text' }, ctx())).rejects.toThrow(/must be a tensor/);
  });

  it('io.text_output writes the text when a path is set', async () => {
    await hostSteps['io.text_output']({ path: 'answer.txt' }, { text: 'a red circle' }, ctx());
    expect(readFileSync(join(dir, 'answer.txt'), 'utf8')).toBe('a red circle');
  });
});

describe('prompt host steps', () => {
  it('chat, instruction and chain-of-thought render the text input', async () => {
    const chat = await hostSteps['prompt.chat']({ style: 'chatml' }, { text: 'hi', system: 'S' }, ctx());
    expect(chat.text).toBe('<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n<image>\nhi<|im_end|>\n<|im_start|>assistant\n');
    expect((await hostSteps['prompt.instruction']({}, { text: 'colour?' }, ctx())).text).toBe('Question: colour? Answer:');
    expect((await hostSteps['prompt.chain_of_thought']({ position: 'before', trigger: 'T' }, { text: 'Q' }, ctx())).text).toBe('T\nQ');
    await expect(hostSteps['prompt.chat']({}, {}, ctx())).rejects.toThrow(/input 'text' must be text/);
  });

  it('few-shot loads example images before the query image', async () => {
    const query: Tensor = { dtype: 'float32', dims: [1, 3, 8, 8], data: new Float32Array(192).fill(7) };
    const out = await hostSteps['prompt.few_shot'](
      { examples: [{ image: 'red.png', text: 'red.' }, { text: 'no image.' }], image_size: 8 },
      { text: 'q', pixel_values: query },
      ctx(),
    );
    expect(out.text).toBe('<image>red.<|endofchunk|>no image.<|endofchunk|><image>q');
    const pv = tensor(out.pixel_values);
    expect(pv.dims).toEqual([2, 3, 8, 8]);
    expect((pv.data as Float32Array)[192]).toBe(7);
  });
});
