// LLaMA, Mistral, Qwen2, OPT and GPT-2 folders (written by tools/hf_reference.py with the transformers forward in
// PyTorch) import into graphs whose logits and greedy tokens equal transformers' on the same inputs.

import { afterAll, describe, expect, it } from 'vitest';
import { Executor } from '../../engine/executor.js';
import type { GraphDocument } from '../../engine/document.js';
import type { Tensor } from '../../onnx/ir.js';
import { importHfFolder } from './import.js';
import { expectClose, fixtureDir, loadExpected, expectSameGreedy, realPositions, tokenRows } from './fixtures.test-support.js';

const CASES = [
  { name: 'llama', cls: 'LlamaForCausalLM', flavour: 'llama' },
  { name: 'mistral', cls: 'MistralForCausalLM', flavour: 'llama' },
  { name: 'qwen2', cls: 'Qwen2ForCausalLM', flavour: 'llama' },
  { name: 'opt', cls: 'OPTForCausalLM', flavour: 'opt' },
  { name: 'gpt2', cls: 'GPT2LMHeadModel', flavour: 'gpt2' },
] as const;

function withMaxNewTokens(doc: GraphDocument, n: number): GraphDocument {
  return { ...doc, nodes: doc.nodes.map((d) => (d.type === 'llm.decoder' ? { ...d, params: { ...d.params, max_new_tokens: n } } : d)) };
}

/** The rows whose attention mask is all ones (no padding), where every position means the same in any convention. */
function unpaddedRows(mask: Tensor): number[] {
  return tokenRows(mask).flatMap((r, i) => (r.every((m) => m === 1) ? [i] : []));
}

describe('Hugging Face causal LMs answer as transformers does', () => {
  const executor = new Executor();
  afterAll(() => executor.dispose());

  for (const c of CASES) {
    describe(c.name, () => {
      const expected = loadExpected(c.name);
      const { doc, summary } = importHfFolder(fixtureDir(c.name));

      it(`imports ${c.cls} as prompt → tokenizer → embed → ${c.flavour} decoder → answer`, () => {
        expect(summary.class).toBe(c.cls);
        const llm = doc.nodes.find((n) => n.id === 'llm');
        expect(llm?.type).toBe('llm.decoder');
        expect(llm?.params.flavour).toBe(c.flavour);
        expect(llm?.frozen).toBe(true);
        expect(llm?.weights?.hf?.architecture).toBeDefined();
        expect(doc.nodes.map((n) => n.type)).toEqual(expect.arrayContaining(['io.text', 'text.tokenize', 'llm.embed_tokens', 'io.text_output']));
      });

      it('logits equal transformers within 1e-4 (relative)', async () => {
        const ids = expected.get('input.input_ids');
        const mask = expected.get('input.attention_mask');
        const res = await executor.run(withMaxNewTokens(doc, 1), {
          baseDir: fixtureDir(c.name),
          targets: ['llm'],
          feeds: { tokenize: { input_ids: ids, attention_mask: mask } },
        });
        const logits = res.outputs.llm.logits as Tensor;
        const ref = expected.get('output.logits');
        // GPT-2's forward numbers positions 0… from the first (padding) column when no position_ids are given, while
        // generation counts them from the first real token as Composer does; rows without padding agree either way.
        const rows = c.flavour === 'gpt2' ? unpaddedRows(mask) : tokenRows(mask).map((_, i) => i);
        expect(rows.length).toBeGreaterThan(0);
        // Padded query positions are masked garbage in both implementations; compare the real tokens only.
        for (const r of rows) expectClose(realPositions(logits, mask, r), realPositions(ref, mask, r), 1e-4, `${c.name} logits row ${r}`);
      });

      it('greedy decoding gives the same tokens', async () => {
        const ids = expected.get('greedy.input_ids');
        const mask = expected.get('greedy.attention_mask');
        const want = tokenRows(expected.get('greedy.tokens'));
        const res = await executor.run(withMaxNewTokens(doc, want[0].length), {
          baseDir: fixtureDir(c.name),
          targets: ['llm'],
          feeds: { tokenize: { input_ids: ids, attention_mask: mask } },
        });
        expectSameGreedy(res.outputs.llm.generated_ids as Tensor, want, doc);
      });
    });
  }
});
