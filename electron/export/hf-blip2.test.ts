// `--format hf` for BLIP-2 and InstructBLIP: the transformers fixtures (tools/hf_reference.py: OPT in f32, LLaMA in
// f16) and the built-in blip2 / instructblip templates with their zoo weights export as
// Blip2ForConditionalGeneration / InstructBlipForConditionalGeneration folders whose config keys, tensor names and
// processor files are transformers', and whose re-import gives the same Q-Former outputs, logits and greedy tokens.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Executor } from '../engine/executor.js';
import type { GraphDocument } from '../engine/document.js';
import { type Tensor, tensorFromNumbers } from '../onnx/ir.js';
import { loadGraph } from '../cli/graph-file.js';
import { importHfFolder } from '../formats/hf/import.js';
import { expectClose, fixtureDir, loadExpected, tokenRows } from '../formats/hf/fixtures.test-support.js';
import { type HfDtype, exportHfFolder } from './hf.js';
import { expectSubset, readJsonFile as json, tensorsOf } from './hf-export.test-support.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmc-hf-blip2-'));
const executor = new Executor();
afterAll(async () => {
  await executor.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

const withSteps = (d: GraphDocument, k: number): GraphDocument => ({ ...d, nodes: d.nodes.map((x) => (x.type === 'llm.decoder' ? { ...x, params: { ...x.params, max_new_tokens: k } } : x)) });

async function answer(doc: GraphDocument, baseDir: string, feeds: Record<string, Record<string, Tensor>>, steps: number) {
  const one = await executor.run(withSteps(doc, 1), { baseDir, targets: ['qformer', 'llm'], feeds });
  const many = await executor.run(withSteps(doc, steps), { baseDir, targets: ['llm'], feeds });
  return { features: one.outputs.qformer.image_features as Tensor, logits: one.outputs.llm.logits as Tensor, tokens: tokenRows(many.outputs.llm.generated_ids as Tensor) };
}

async function expectSameAnswers(a: GraphDocument, aDir: string, b: GraphDocument, bDir: string, feeds: Record<string, Record<string, Tensor>>, steps: number, what: string) {
  const x = await answer(a, aDir, feeds, steps);
  const y = await answer(b, bDir, feeds, steps);
  expectClose(y.features, x.features, 1e-5, `${what} Q-Former image features`);
  expectClose(y.logits, x.logits, 1e-5, `${what} logits`);
  expect(y.tokens, `${what} greedy tokens`).toEqual(x.tokens);
}

const CASES: Array<{ name: 'blip2' | 'instructblip'; cls: string; dtype: HfDtype }> = [
  { name: 'blip2', cls: 'Blip2ForConditionalGeneration', dtype: 'f32' },
  { name: 'instructblip', cls: 'InstructBlipForConditionalGeneration', dtype: 'f16' },
];

describe('vlmc export --format hf: BLIP-2 and InstructBLIP', () => {
  for (const c of CASES) {
    it(`the ${c.cls} fixture exports with transformers' config keys, tensor names and processor files, and re-imports to the same answers`, async () => {
      const fixture = fixtureDir(c.name);
      const { doc } = importHfFolder(fixture);
      const dir = join(tmp, c.name);
      const res = await exportHfFolder(doc, { baseDir: fixture, outDir: dir, executor, dtype: c.dtype });
      const cfg = json(join(dir, 'config.json'));
      expect(cfg.architectures).toEqual([c.cls]);
      expectSubset(cfg, json(join(fixture, 'config.json')), `${c.name}/config.json`);
      for (const k of ['vision_config', 'qformer_config', 'text_config', 'num_query_tokens']) expect(cfg).toHaveProperty(k);
      expect(tensorsOf(dir)).toEqual(tensorsOf(fixture));
      expectSubset(json(join(dir, 'preprocessor_config.json')), json(join(fixture, 'preprocessor_config.json')), `${c.name}/preprocessor_config.json`);
      expect(json(join(dir, 'processor_config.json'))).toEqual(json(join(fixture, 'processor_config.json')));
      expectSubset(json(join(dir, 'generation_config.json')), json(join(fixture, 'generation_config.json')), `${c.name}/generation_config.json`);
      if (c.name === 'instructblip') expect(existsSync(join(dir, 'qformer_tokenizer', 'tokenizer.json'))).toBe(true);
      expect(res.notes.join('\n')).not.toMatch(/not exported/);

      const e = loadExpected(c.name);
      const feeds: Record<string, Record<string, Tensor>> = {
        image: { pixel_values: e.get('input.pixel_values') },
        tokenize: { input_ids: e.get('greedy.input_ids'), attention_mask: e.get('greedy.attention_mask') },
        ...(c.name === 'instructblip' ? { qformer_tokenize: { input_ids: e.get('input.qformer_input_ids'), attention_mask: e.get('input.qformer_attention_mask') } } : {}),
      };
      const steps = tokenRows(e.get('greedy.tokens'))[0].length;
      await expectSameAnswers(doc, fixture, importHfFolder(dir).doc, dir, feeds, steps, c.name);
    });
  }

  for (const name of ['blip2', 'instructblip'] as const) {
    it(`the built-in ${name} template with zoo weights exports and re-imports to the same answers`, async () => {
      const { doc, baseDir } = loadGraph(join(import.meta.dirname, '..', '..', 'graphs', `${name}.graph.json`));
      const dir = join(tmp, `${name}-template`);
      const res = await exportHfFolder(doc, { baseDir, outDir: dir, executor });
      expect(json(join(dir, 'config.json')).model_type).toBe(name === 'blip2' ? 'blip-2' : 'instructblip');
      expect(res.notes.join('\n')).not.toMatch(/not exported/);
      const back = importHfFolder(dir).doc;
      const size = doc.nodes.find((n) => n.id === 'image')!.params.size as number;
      const pixels = tensorFromNumbers('float32', [1, 3, size, size], Float32Array.from({ length: 3 * size * size }, (_, i) => Math.sin(i * 0.031)));
      const ids = tensorFromNumbers('int64', [1, 6], [1, 40, 51, 62, 73, 84]);
      const mask = tensorFromNumbers('int64', [1, 6], [1, 1, 1, 1, 1, 1]);
      const feeds: Record<string, Record<string, Tensor>> = {
        image: { pixel_values: pixels },
        tokenize: { input_ids: ids, attention_mask: mask },
        ...(name === 'instructblip' ? { qformer_tokenize: { input_ids: ids, attention_mask: mask } } : {}),
      };
      await expectSameAnswers(doc, baseDir, back, dir, feeds, 4, `${name} template`);
    });
  }

  it('MiniGPT-4 (a linear projector between the Q-Former and the LLM) exports its language model and says why the rest is left out', async () => {
    const { doc, baseDir } = loadGraph(join(import.meta.dirname, '..', '..', 'graphs', 'minigpt4.graph.json'));
    const res = await exportHfFolder(doc, { baseDir, outDir: join(tmp, 'minigpt4'), executor });
    expect(json(join(tmp, 'minigpt4', 'config.json')).model_type).toBe('llama');
    const notes = res.notes.join('\n');
    expect(notes).toMatch(/projector\.qformer.*MiniGPT-4 puts a linear projector/);
    expect(notes).toMatch(/projector\.linear.*no transformers class/);
  });
});
