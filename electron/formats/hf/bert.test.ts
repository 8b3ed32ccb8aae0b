// A BertModel folder (written by tools/hf_reference.py with the transformers forward in PyTorch) imports into
// prompt → tokenizer → BERT whose last_hidden_state and pooler_output equal transformers' on the same inputs.

import { afterAll, describe, expect, it } from 'vitest';
import { Executor } from '../../engine/executor.js';
import type { Tensor } from '../../onnx/ir.js';
import { importHfFolder } from './import.js';
import { expectClose, fixtureDir, loadExpected, tokenRows } from './fixtures.test-support.js';

const executor = new Executor();
afterAll(() => executor.dispose());

describe('BertModel', () => {
  const expected = loadExpected('bert');
  const { doc, summary } = importHfFolder(fixtureDir('bert'));

  it('imports as prompt → tokenizer.json → BERT with its pooler', () => {
    expect(summary.class).toBe('BertModel');
    expect(doc.nodes.map((n) => n.type)).toEqual(['io.text', 'text.tokenize', 'encoder.bert']);
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
});
