// A BertModel folder (written by tools/hf_reference.py with the transformers forward in PyTorch) imports into
// prompt → tokenizer → BERT whose last_hidden_state and pooler_output equal transformers' on the same inputs.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Executor } from '../../engine/executor.js';
import type { Tensor } from '../../onnx/ir.js';
import { readSafetensors } from '../../onnx/safetensors.js';
import { importHfFolder } from './import.js';
import { expectClose, fixtureDir, loadExpected, tokenRows } from './fixtures.test-support.js';

const executor = new Executor();
afterAll(() => executor.dispose());

describe('BertModel', () => {
  const expected = loadExpected('bert');
  const { doc, summary } = importHfFolder(fixtureDir('bert'));

  it('imports as prompt → tokenizer.json → BERT with its pooler', () => {
    expect(summary.class).toBe('BertModel');
    expect(doc.nodes.map((n) => n.type)).toEqual(['io.text', 'text.tokenize', 'encoder.bert', 'io.tensor_output']);
    expect(doc.nodes[2].params).toMatchObject({ pooler: true, act: 'gelu', eps: 1e-12, hidden_size: 32, max_positions: 32 });
  });

  it('last_hidden_state (padded row included) and pooler_output equal transformers', async () => {
    const res = await executor.run(doc, {
      baseDir: fixtureDir('bert'),
      targets: ['bert'],
      feeds: { tokenize: { input_ids: expected.get('input.input_ids'), attention_mask: expected.get('input.attention_mask') } },
    });
    const errs = {
      last_hidden_state: expectClose(res.outputs.bert.last_hidden_state as Tensor, expected.get('output.last_hidden_state'), 1e-4, 'last_hidden_state'),
      pooler_output: expectClose(res.outputs.bert.pooler_output as Tensor, expected.get('output.pooler_output'), 1e-4, 'pooler_output'),
    };
    console.info('bert max errors', JSON.stringify(errs));
  });

  it("the tokenize node gives the fixture's [CLS] … [SEP] ids", async () => {
    const res = await executor.run(doc, { baseDir: fixtureDir('bert'), targets: ['tokenize'], inputs: { prompt: { text: 'where is the star ?' } } });
    const [ids, mask] = [tokenRows(expected.get('input.input_ids'))[1], tokenRows(expected.get('input.attention_mask'))[1]];
    expect(tokenRows(res.outputs.tokenize.input_ids as Tensor)[0]).toEqual(ids.filter((_, i) => mask[i] === 1));
  });

  it('the Tensor output summarises pooler_output and writes it as safetensors when given a path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'composer-bert-out-'));
    try {
      const withPath = { ...doc, nodes: doc.nodes.map((n) => (n.id === 'features' ? { ...n, params: { ...n.params, path: join(dir, 'pooled.safetensors') } } : n)) };
      const res = await executor.run(withPath, { baseDir: fixtureDir('bert'), inputs: { prompt: { text: 'where is the star ?' } } });
      expect(res.outputs.features.summary).toMatch(/^pooler_output \[1, 32\] float32: mean -?\d.*, std \d.*, min -?\d.*, max -?\d/);
      const saved = readSafetensors(join(dir, 'pooled.safetensors')).tensors.get('pooler_output');
      expect(saved?.dims).toEqual([1, 32]);
      expect(Array.from(saved?.data as Float32Array)).toEqual(Array.from((res.outputs.bert.pooler_output as Tensor).data as Float32Array));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
