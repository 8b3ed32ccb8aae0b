// CLIP folders (CLIPModel, CLIPVisionModelWithProjection in float16, CLIPTextModelWithProjection in bfloat16, written
// by tools/hf_reference.py with the transformers forward in PyTorch) import into graphs whose embeddings, zero-shot
// logits and probabilities equal transformers' on the same inputs; the Image node preprocesses the fixture PNG as
// CLIPImageProcessor does.

import { afterAll, describe, expect, it } from 'vitest';
import { Executor } from '../../engine/executor.js';
import type { Tensor } from '../../onnx/ir.js';
import { importHfFolder } from './import.js';
import { expectClose, fixtureDir, loadExpected, tokenRows } from './fixtures.test-support.js';
import { expectZeroShotOutputs, l2Rows, nodeOf as node, pngPixelValues } from './encoders.test-support.js';

const CLIP_TEXTS = ['a photo of a red circle', 'a blue square', 'a picture of two small green stars'];

const executor = new Executor();
afterAll(() => executor.dispose());

describe('CLIPModel → zero-shot graph', () => {
  const expected = loadExpected('clip');
  const { doc, summary, notes } = importHfFolder(fixtureDir('clip'));

  it('imports as image → CLIP ViT, labels → CLIP text → zero-shot head, with exp(logit_scale) from the folder', () => {
    expect(summary.class).toBe('CLIPModel');
    expect(doc.nodes.map((n) => n.type)).toEqual(
      expect.arrayContaining(['io.image', 'encoder.clip_vit', 'io.text', 'text.labels', 'encoder.clip_text', 'head.zero_shot', 'io.text_output']),
    );
    expect(node(doc, 'vit').frozen).toBe(true);
    expect(node(doc, 'text_encoder').params).toMatchObject({ pooling: 'eos_id', eos_token_id: 316, max_positions: 16 });
    expect(node(doc, 'classify').params.logit_scale).toBeCloseTo(Math.exp(2.3), 5);
    expect(node(doc, 'image').params).toMatchObject({ size: 32, resize: 'shortest-then-crop', shortest_edge: 32, resample: 'bicubic' });
    expect(notes.join('\n')).toMatch(/first eos_token_id 316/);
  });

  it('tokenises the prompt labels as CLIPProcessor does; embeddings, logits_per_image and probs equal transformers', async () => {
    const res = await executor.run(doc, {
      baseDir: fixtureDir('clip'),
      targets: ['classify', 'vit', 'text_encoder', 'labels'],
      inputs: { prompt: { text: CLIP_TEXTS.join(';') } },
      feeds: { image: { pixel_values: expected.get('input.pixel_values') } },
    });
    const labels = res.outputs.labels;
    expect(tokenRows(labels.input_ids as Tensor)).toEqual(tokenRows(expected.get('input.input_ids')));
    expect(tokenRows(labels.attention_mask as Tensor)).toEqual(tokenRows(expected.get('input.attention_mask')));
    const errs = expectZeroShotOutputs(res.outputs, expected, { image: 'image_embeds', text: 'text_embeds' });
    console.info('clip max errors', JSON.stringify(errs));
    // The answer names, per image, the label transformers' probabilities rank first.
    const probs = Array.from(expected.get('output.probs').data as Float32Array);
    const best = [0, 1].map((b) => CLIP_TEXTS[[0, 1, 2].reduce((m, l) => (probs[b * 3 + l] > probs[b * 3 + m] ? l : m), 0)]);
    expect(res.outputs.classify.text).toBe(best.join('\n'));
  });

  it("the Image node preprocesses CLIP's PNG as CLIPImageProcessor (Pillow bicubic, shortest edge, centre crop)", async () => {
    const ours = await pngPixelValues(executor, doc, 'clip');
    const err = expectClose(ours, expected.get('output.pixel_values_from_png'), 1e-6, 'pixel_values_from_png');
    console.info('clip pixel_values_from_png', JSON.stringify(err));
  });
});

describe('CLIPVisionModelWithProjection (float16 weights)', () => {
  const expected = loadExpected('clip_vision');
  const { doc } = importHfFolder(fixtureDir('clip_vision'));

  it('imports as image → CLIP ViT with its projection; image_embeds and last_hidden_state equal transformers', async () => {
    expect(doc.nodes.map((n) => n.type)).toEqual(['io.image', 'encoder.clip_vit', 'io.tensor_output']);
    expect(node(doc, 'features').params.name).toBe('image_embeds');
    expect(node(doc, 'vit').params.projection).toBe(true);
    const res = await executor.run(doc, { baseDir: fixtureDir('clip_vision'), targets: ['vit'], feeds: { image: { pixel_values: expected.get('input.pixel_values') } } });
    const errs = {
      image_embeds: expectClose(res.outputs.vit.image_embeds as Tensor, expected.get('output.image_embeds'), 1e-4, 'image_embeds'),
      last_hidden_state: expectClose(res.outputs.vit.last_hidden_state as Tensor, expected.get('output.last_hidden_state'), 1e-4, 'last_hidden_state'),
    };
    console.info('clip_vision max errors', JSON.stringify(errs));
    expectClose(await pngPixelValues(executor, doc, 'clip_vision'), expected.get('output.pixel_values_from_png'), 1e-6, 'pixel_values_from_png');
  });
});

describe('CLIPTextModelWithProjection (bfloat16 weights, exact GELU)', () => {
  const expected = loadExpected('clip_text');
  const { doc } = importHfFolder(fixtureDir('clip_text'));

  it('imports as prompt → tokenizer → CLIP text; text_embeds and last_hidden_state equal transformers', async () => {
    expect(doc.nodes.map((n) => n.type)).toEqual(['io.text', 'text.tokenize', 'encoder.clip_text', 'io.tensor_output']);
    expect(node(doc, 'features').params.name).toBe('text_embeds');
    expect(node(doc, 'text_encoder').params).toMatchObject({ act: 'gelu', projection: true, pooling: 'eos_id' });
    const res = await executor.run(doc, {
      baseDir: fixtureDir('clip_text'),
      targets: ['text_encoder'],
      feeds: { tokenize: { input_ids: expected.get('input.input_ids'), attention_mask: expected.get('input.attention_mask') } },
    });
    const errs = {
      text_embeds: expectClose(res.outputs.text_encoder.text_embeds as Tensor, expected.get('output.text_embeds'), 1e-4, 'text_embeds'),
      last_hidden_state: expectClose(res.outputs.text_encoder.last_hidden_state as Tensor, expected.get('output.last_hidden_state'), 1e-4, 'last_hidden_state'),
    };
    console.info('clip_text max errors', JSON.stringify(errs));
    // The tokenize node gives the fixture's ids for its first text (unpadded row).
    const one = await executor.run(doc, { baseDir: fixtureDir('clip_text'), targets: ['tokenize'], inputs: { prompt: { text: CLIP_TEXTS[0] } } });
    const row0 = tokenRows(expected.get('input.input_ids'))[0];
    const mask0 = tokenRows(expected.get('input.attention_mask'))[0];
    expect(tokenRows(one.outputs.tokenize.input_ids as Tensor)[0]).toEqual(row0.filter((_, i) => mask0[i] === 1));
  });
});
