// `--format hf` for the dual encoders: the CLIP and SigLIP fixtures of tools/hf_reference.py (CLIPModel,
// CLIPVisionModelWithProjection in f16, CLIPTextModelWithProjection in bf16, SiglipModel, SiglipVisionModel in bf16)
// and the built-in CLIP template with its zoo weights export as folders whose config keys and tensor names are
// transformers', and whose re-import gives the same embeddings, scores and answers as the graph they came from.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Executor } from '../engine/executor.js';
import type { GraphDocument } from '../engine/document.js';
import type { Tensor } from '../onnx/ir.js';
import { loadGraph } from '../cli/graph-file.js';
import { importHfFolder } from '../formats/hf/import.js';
import { expectClose, fixtureDir, loadExpected } from '../formats/hf/fixtures.test-support.js';
import { type HfDtype, exportHfFolder } from './hf.js';
import { expectSubset, readJsonFile as json, tensorsOf } from './hf-export.test-support.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmc-hf-enc-'));
const executor = new Executor();
afterAll(async () => {
  await executor.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

/** Export an imported fixture, check its files against the fixture's, and re-import it. */
async function exportFixture(name: string, dtype: HfDtype) {
  const fixture = fixtureDir(name);
  const { doc } = importHfFolder(fixture);
  const dir = join(tmp, name);
  const res = await exportHfFolder(doc, { baseDir: fixture, outDir: dir, executor, dtype });
  const cfg = json(join(dir, 'config.json'));
  expectSubset(cfg, json(join(fixture, 'config.json')), `${name}/config.json`);
  expect(cfg.architectures).toEqual(json(join(fixture, 'config.json')).architectures);
  expect(tensorsOf(dir)).toEqual(tensorsOf(fixture));
  return { doc, fixture, dir, res, cfg, back: importHfFolder(dir).doc };
}

async function zeroShot(doc: GraphDocument, baseDir: string, labels: string, pixels: Tensor) {
  const res = await executor.run(doc, { baseDir, targets: ['classify', 'vit', 'text_encoder'], inputs: { prompt: { text: labels } }, feeds: { image: { pixel_values: pixels } } });
  return { scores: res.outputs.classify.scores as Tensor, answer: res.outputs.classify.text as string, vit: res.outputs.vit as Record<string, Tensor>, text: res.outputs.text_encoder as Record<string, Tensor> };
}

const LABELS = 'a photo of a red circle;a blue square;a picture of two small green stars';

describe('vlmc export --format hf: CLIP', () => {
  it('CLIPModel: config keys, tensor names and processor files as transformers wrote them; the re-import scores the same', async () => {
    const { doc, fixture, dir, back } = await exportFixture('clip', 'f32');
    expectSubset(json(join(dir, 'preprocessor_config.json')), json(join(fixture, 'preprocessor_config.json')), 'clip/preprocessor_config.json');
    expect(json(join(dir, 'tokenizer_config.json')).eos_token).toBeDefined();
    const pixels = loadExpected('clip').get('input.pixel_values');
    const a = await zeroShot(doc, fixture, LABELS, pixels);
    const b = await zeroShot(back, dir, LABELS, pixels);
    expectClose(b.scores, a.scores, 1e-6, 'probs');
    expectClose(b.vit.image_embeds, a.vit.image_embeds, 1e-6, 'image_embeds');
    expectClose(b.text.text_embeds, a.text.text_embeds, 1e-6, 'text_embeds');
    expect(b.answer).toBe(a.answer);
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toContain('CLIPModel.from_pretrained');
  });

  it('CLIPVisionModelWithProjection in float16 and CLIPTextModelWithProjection in bfloat16 keep their precision and outputs', async () => {
    const vision = await exportFixture('clip_vision', 'f16');
    const pixels = loadExpected('clip_vision').get('input.pixel_values');
    const run = (d: GraphDocument, base: string) => executor.run(d, { baseDir: base, targets: ['vit'], feeds: { image: { pixel_values: pixels } } });
    expectClose((await run(vision.back, vision.dir)).outputs.vit.image_embeds as Tensor, (await run(vision.doc, vision.fixture)).outputs.vit.image_embeds as Tensor, 1e-6, 'image_embeds');

    const text = await exportFixture('clip_text', 'bf16');
    const e = loadExpected('clip_text');
    const feeds = { tokenize: { input_ids: e.get('input.input_ids'), attention_mask: e.get('input.attention_mask') } };
    const runText = (d: GraphDocument, base: string) => executor.run(d, { baseDir: base, targets: ['text_encoder'], feeds });
    expectClose((await runText(text.back, text.dir)).outputs.text_encoder.text_embeds as Tensor, (await runText(text.doc, text.fixture)).outputs.text_encoder.text_embeds as Tensor, 1e-6, 'text_embeds');
  });

  it('the built-in CLIP template with zoo weights exports as a CLIPModel that gives the same answers', async () => {
    const { doc, baseDir } = loadGraph(join(import.meta.dirname, '..', '..', 'graphs', 'clip.graph.json'));
    const dir = join(tmp, 'clip-template');
    const res = await exportHfFolder(doc, { baseDir, outDir: dir, executor });
    const cfg = json(join(dir, 'config.json'));
    const textCfg = cfg.text_config as Record<string, unknown>;
    // '</s>' (id 2) would make transformers pool at argmax(input_ids): the export moves it to the last id.
    expect(textCfg.eos_token_id).toBe((textCfg.vocab_size as number) - 1);
    expect(res.notes.join('\n')).toMatch(/legacy argmax rule/);
    const tok = json(join(dir, 'tokenizer.json')) as { model: { vocab: Record<string, number> }; post_processor: { single: unknown[] } };
    expect(tok.model.vocab['</s>']).toBe(textCfg.eos_token_id);
    expect(JSON.stringify(tok.post_processor.single.at(-1))).toContain('</s>');
    const back = importHfFolder(dir).doc;
    const labels = (doc.nodes.find((n) => n.id === 'labels')!.params.labels as string[]).join(';');
    const size = doc.nodes.find((n) => n.id === 'image')!.params.size as number;
    const pixels: Tensor = { dtype: 'float32', dims: [2, 3, size, size], data: Float32Array.from({ length: 2 * 3 * size * size }, (_, i) => Math.sin(i * 0.013) * 1.5) };
    const a = await zeroShot(doc, baseDir, labels, pixels);
    const b = await zeroShot(back, dir, labels, pixels);
    expectClose(b.scores, a.scores, 1e-5, 'template probs');
    expect(b.answer).toBe(a.answer);
  });
});

describe('vlmc export --format hf: SigLIP', () => {
  it('SiglipModel: logit_scale and logit_bias from the sigmoid head; the re-import scores the same', async () => {
    const { doc, fixture, dir, back } = await exportFixture('siglip', 'f32');
    expectSubset(json(join(dir, 'preprocessor_config.json')), json(join(fixture, 'preprocessor_config.json')), 'siglip/preprocessor_config.json');
    const pixels = loadExpected('siglip').get('input.pixel_values');
    const a = await zeroShot(doc, fixture, LABELS, pixels);
    const b = await zeroShot(back, dir, LABELS, pixels);
    expectClose(b.scores, a.scores, 1e-6, 'sigmoid scores');
    expect(b.answer).toBe(a.answer);
  });

  it('SiglipVisionModel in bfloat16 gives the same pooled output', async () => {
    const { doc, fixture, dir, back } = await exportFixture('siglip_vision', 'bf16');
    const pixels = loadExpected('siglip_vision').get('input.pixel_values');
    const run = (d: GraphDocument, base: string) => executor.run(d, { baseDir: base, targets: ['vit'], feeds: { image: { pixel_values: pixels } } });
    expectClose((await run(back, dir)).outputs.vit.pooler_output as Tensor, (await run(doc, fixture)).outputs.vit.pooler_output as Tensor, 1e-6, 'pooler_output');
  });
});
