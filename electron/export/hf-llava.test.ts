// `--format hf` for LLaVA: the transformers fixture (tools/hf_reference.py) and the built-in llava-1.5 template
// with its zoo weights export as LlavaForConditionalGeneration folders whose config keys and tensor names equal
// transformers', and whose re-import gives the same image features, logits and greedy tokens.

import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Executor } from '../engine/executor.js';
import type { GraphDocument } from '../engine/document.js';
import { type Tensor, tensorFromNumbers } from '../onnx/ir.js';
import { loadGraph } from '../cli/graph-file.js';
import { importHfFolder } from '../formats/hf/import.js';
import { expectClose, fixtureDir, loadExpected, tokenRows } from '../formats/hf/fixtures.test-support.js';
import { exportHfFolder } from './hf.js';
import { expectSubset, readJsonFile, tensorsOf } from './hf-export.test-support.js';

const tmp = mkdtempSync(join(tmpdir(), 'vlmc-hf-llava-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const json = readJsonFile;

const withSteps = (d: GraphDocument, k: number): GraphDocument => ({ ...d, nodes: d.nodes.map((x) => (x.type === 'llm.decoder' ? { ...x, params: { ...x.params, max_new_tokens: k } } : x)) });

async function answer(executor: Executor, doc: GraphDocument, baseDir: string, pixels: Tensor, ids: Tensor, mask: Tensor, steps: number) {
  const feeds = { image: { pixel_values: pixels }, tokenize: { input_ids: ids, attention_mask: mask } };
  const one = await executor.run(withSteps(doc, 1), { baseDir, targets: ['proj', 'llm'], feeds });
  const many = await executor.run(withSteps(doc, steps), { baseDir, targets: ['llm'], feeds });
  return { features: one.outputs.proj.image_features as Tensor, logits: one.outputs.llm.logits as Tensor, tokens: tokenRows(many.outputs.llm.generated_ids as Tensor) };
}

describe('vlmc export --format hf: LLaVA', () => {
  const executor = new Executor();
  afterAll(() => executor.dispose());

  it("the transformers fixture exports with its config keys, tensor names and processor files, and re-imports to the same answers", async () => {
    const fixture = fixtureDir('llava');
    const { doc } = importHfFolder(fixture);
    const dir = join(tmp, 'fixture');
    await exportHfFolder(doc, { baseDir: fixture, outDir: dir, executor });
    const cfg = json(join(dir, 'config.json'));
    const ref = json(join(fixture, 'config.json'));
    expect(cfg.architectures).toEqual(['LlavaForConditionalGeneration']);
    expectSubset(cfg, ref, 'llava/config.json');
    for (const k of ['image_token_index', 'vision_feature_layer', 'vision_feature_select_strategy', 'projector_hidden_act', 'vision_config', 'text_config']) expect(cfg).toHaveProperty(k);
    expect(tensorsOf(dir)).toEqual(tensorsOf(fixture));
    expectSubset(json(join(dir, 'preprocessor_config.json')), json(join(fixture, 'preprocessor_config.json')), 'preprocessor_config.json');
    expect(json(join(dir, 'processor_config.json'))).toEqual(json(join(fixture, 'processor_config.json')));
    expect(readFileSync(join(dir, 'README.md'), 'utf8')).toContain('vllm serve');

    const expected = loadExpected('llava');
    const pixels = expected.get('input.pixel_values');
    const ids = expected.get('greedy.input_ids');
    const mask = expected.get('greedy.attention_mask');
    const steps = tokenRows(expected.get('greedy.tokens'))[0].length;
    const a = await answer(executor, doc, fixture, expected.tensors.get('greedy.pixel_values') ?? pixels, ids, mask, steps);
    const back = importHfFolder(dir);
    const b = await answer(executor, back.doc, dir, expected.tensors.get('greedy.pixel_values') ?? pixels, ids, mask, steps);
    expectClose(b.features, a.features, 1e-6, 'image features');
    expectClose(b.logits, a.logits, 1e-6, 'logits');
    expect(b.tokens).toEqual(a.tokens);
  });

  it('the built-in llava-1.5 template with zoo weights exports and re-imports to the same answers', async () => {
    const { doc, baseDir } = loadGraph(join(import.meta.dirname, '..', '..', 'graphs', 'llava-1.5.graph.json'));
    const dir = join(tmp, 'template');
    const res = await exportHfFolder(doc, { baseDir, outDir: dir, executor, dtype: 'f32' });
    const cfg = json(join(dir, 'config.json'));
    expect(cfg.model_type).toBe('llava');
    expect(Object.keys(tensorsOf(dir)).some((k) => k.includes('visual_projection'))).toBe(false);
    expect(res.notes.join('\n')).not.toMatch(/not exported/);
    const back = importHfFolder(dir);
    const size = (back.doc.nodes.find((n) => n.id === 'image')?.params.size as number) ?? 64;
    const n = size * size * 3;
    const pixels = tensorFromNumbers('float32', [1, 3, size, size], Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37)));
    const seq = (cfg.image_seq_length as number) + 6;
    const imageToken = cfg.image_token_index as number;
    const idValues = [1, ...Array.from({ length: cfg.image_seq_length as number }, () => imageToken), 20, 31, 42, 53, 64];
    expect(idValues.length).toBe(seq);
    const ids = tensorFromNumbers('int64', [1, seq], idValues);
    const mask = tensorFromNumbers('int64', [1, seq], new Array<number>(seq).fill(1));
    const a = await answer(executor, doc, baseDir, pixels, ids, mask, 3);
    const b = await answer(executor, back.doc, dir, pixels, ids, mask, 3);
    expectClose(b.features, a.features, 1e-6, 'template image features');
    expectClose(b.logits, a.logits, 1e-6, 'template logits');
    expect(b.tokens).toEqual(a.tokens);
  });
});
