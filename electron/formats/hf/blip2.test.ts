// BLIP-2 (OPT) and InstructBLIP (LLaMA, float16) folders written by tools/hf_reference.py with the transformers
// forward in PyTorch import into the whole graph — EVA ViT (frozen) → Q-Former → projection → LLM (frozen) — whose
// image embeddings, Q-Former states, language-model inputs, logits and greedy tokens equal transformers'.

import { afterAll, describe, expect, it } from 'vitest';
import { Executor } from '../../engine/executor.js';
import type { GraphDocument } from '../../engine/document.js';
import type { Tensor } from '../../onnx/ir.js';
import { importHfFolder } from './import.js';
import { expectClose, fixtureDir, loadExpected, tokenRows } from './fixtures.test-support.js';
import { pngPixelValues } from './encoders.test-support.js';

const executor = new Executor();
afterAll(() => executor.dispose());

function withMaxNewTokens(doc: GraphDocument, n: number): GraphDocument {
  return { ...doc, nodes: doc.nodes.map((d) => (d.type === 'llm.decoder' ? { ...d, params: { ...d.params, max_new_tokens: n } } : d)) };
}

/** Rows [0, n) of axis 1 of a [B, S, D] tensor. */
function firstSeq(t: Tensor, n: number): Tensor {
  const [batch, seq, d] = t.dims;
  const out = new Float32Array(batch * n * d);
  for (let r = 0; r < batch; r++) out.set((t.data as Float32Array).subarray(r * seq * d, (r * seq + n) * d), r * n * d);
  return { dtype: 'float32', dims: [batch, n, d], data: out };
}

const CASES = [
  { name: 'blip2', cls: 'Blip2ForConditionalGeneration', flavour: 'opt' },
  { name: 'instructblip', cls: 'InstructBlipForConditionalGeneration', flavour: 'llama' },
] as const;

for (const c of CASES) {
  describe(`${c.cls} → the whole BLIP-2 graph`, () => {
    const expected = loadExpected(c.name);
    const { doc, summary } = importHfFolder(fixtureDir(c.name));
    const instruct = c.name === 'instructblip';
    const feeds = (ids: Tensor, mask: Tensor): Record<string, Record<string, Tensor>> => ({
      image: { pixel_values: expected.get('input.pixel_values') },
      tokenize: { input_ids: ids, attention_mask: mask },
      ...(instruct ? { qformer_tokenize: { input_ids: expected.get('input.qformer_input_ids'), attention_mask: expected.get('input.qformer_attention_mask') } } : {}),
    });

    it('imports as image → EVA ViT (frozen) → Q-Former → prefix merge → LLM (frozen), as the template', () => {
      expect(summary.class).toBe(c.cls);
      const byId = new Map(doc.nodes.map((n) => [n.id, n]));
      expect(byId.get('vit')?.type).toBe('encoder.eva_vit');
      expect(byId.get('vit')?.frozen).toBe(true);
      expect(byId.get('qformer')?.type).toBe('projector.qformer');
      expect(byId.get('qformer')?.frozen).toBe(false);
      expect(byId.get('qformer')?.params).toMatchObject({ num_query_tokens: 8, mask_mode: instruct ? 'instruct' : 'itm' });
      expect(byId.get('merge')?.params).toMatchObject({ mode: 'prefix' });
      expect(byId.get('llm')?.params.flavour).toBe(c.flavour);
      expect(byId.get('llm')?.frozen).toBe(true);
      if (instruct) {
        expect(String(byId.get('qformer_tokenize')?.params.tokenizer)).toMatch(/qformer_tokenizer[/\\]tokenizer\.json$/);
        expect(doc.edges).toContainEqual({ from: { node: 'qformer_tokenize', port: 'input_ids' }, to: { node: 'qformer', port: 'qformer_input_ids' } });
      } else {
        expect(byId.get('template')?.params.template).toBe('Question: {input} Answer:');
      }
    });

    it('image embeddings, Q-Former states, language-model inputs and logits equal transformers within 1e-4', async () => {
      const res = await executor.run(withMaxNewTokens(doc, 1), {
        baseDir: fixtureDir(c.name),
        targets: ['vit', 'qformer', 'llm'],
        feeds: feeds(expected.get('input.input_ids'), expected.get('input.attention_mask')),
      });
      const q = res.outputs.qformer;
      // InstructBLIP's Q-Former states cover queries + instruction; the query rows (what goes to the LLM) are
      // compared: they read the instruction rows in every self-attention, so those are checked through them.
      const queries = q.query_output as Tensor;
      const errs = {
        image_embeds: expectClose(res.outputs.vit.last_hidden_state as Tensor, expected.get('output.image_embeds'), 1e-4, 'image_embeds'),
        vision_pooler_output: expectClose(res.outputs.vit.pooler_output as Tensor, expected.get('output.vision_pooler_output'), 1e-4, 'vision_pooler_output'),
        qformer_last_hidden_state: expectClose(queries, firstSeq(expected.get('output.qformer_last_hidden_state'), queries.dims[1]), 1e-4, 'qformer_last_hidden_state'),
        language_model_inputs: expectClose(q.image_features as Tensor, expected.get('output.language_model_inputs'), 1e-4, 'language_model_inputs'),
        logits: expectClose(res.outputs.llm.logits as Tensor, expected.get('output.logits'), 1e-4, 'logits'),
      };
      console.info(`${c.name} max errors`, JSON.stringify(errs));
    });

    it('greedy decoding gives the same tokens', async () => {
      const want = tokenRows(expected.get('greedy.tokens'));
      const res = await executor.run(withMaxNewTokens(doc, want[0].length), {
        baseDir: fixtureDir(c.name),
        targets: ['llm'],
        feeds: feeds(expected.get('greedy.input_ids'), expected.get('greedy.attention_mask')),
      });
      const got = tokenRows(res.outputs.llm.generated_ids as Tensor);
      const eos = (doc.nodes.find((n) => n.id === 'llm')?.params.eos_token_ids as number[] | undefined) ?? [];
      expect(eos.length).toBeGreaterThan(0);
      want.forEach((row, b) => {
        // transformers ran without stopping; Composer stops at an eos token (and leaves it out of generated_ids).
        const stop = row.findIndex((t) => eos.includes(t));
        const expectedRow = stop >= 0 ? row.slice(0, stop) : row;
        expect(got[b].slice(0, expectedRow.length)).toEqual(expectedRow);
        if (stop >= 0) expect(got[b].slice(stop).every((t) => eos.includes(t) || t === 0)).toBe(true);
      });
    });

    it('the Image node preprocesses the PNG as BlipImageProcessor (Pillow bicubic to size × size, CLIP mean/std)', async () => {
      const err = expectClose(await pngPixelValues(executor, doc, c.name), expected.get('output.pixel_values_from_png'), 1e-6, 'pixel_values_from_png');
      console.info(`${c.name} pixel_values_from_png`, JSON.stringify(err));
    });
  });
}
