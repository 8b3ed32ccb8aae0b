// LlavaForConditionalGeneration folders (classic and newer state-dict names) import as CLIP ViT → MLP projector →
// <image> scatter → LLaMA, and answer as transformers does (tools/hf_reference.py) on the same pixel values and ids.

import { afterAll, describe, expect, it } from 'vitest';
import { Executor } from '../../engine/executor.js';
import type { GraphDocument } from '../../engine/document.js';
import type { Tensor } from '../../onnx/ir.js';
import { importHfFolder } from './import.js';
import { expectClose, fixtureDir, loadExpected, expectSameGreedy, realPositions, tokenRows } from './fixtures.test-support.js';

function withMaxNewTokens(doc: GraphDocument, n: number): GraphDocument {
  return { ...doc, nodes: doc.nodes.map((d) => (d.type === 'llm.decoder' ? { ...d, params: { ...d.params, max_new_tokens: n } } : d)) };
}

describe('LLaVA folders answer as transformers does', () => {
  const executor = new Executor();
  afterAll(() => executor.dispose());

  for (const name of ['llava', 'llava_new']) {
    describe(name, () => {
      const expected = loadExpected(name);
      const { doc, summary } = importHfFolder(fixtureDir(name));
      const pixels = expected.get('input.pixel_values');

      it('imports the whole model: vision tower and LLM frozen, projector trainable, <image> scatter', () => {
        expect(summary.class).toBe('LlavaForConditionalGeneration');
        const byId = new Map(doc.nodes.map((n) => [n.id, n]));
        expect(byId.get('vit')).toMatchObject({ type: 'encoder.clip_vit', frozen: true });
        expect(byId.get('proj')).toMatchObject({ type: 'projector.mlp', frozen: false });
        expect(byId.get('llm')).toMatchObject({ type: 'llm.decoder', frozen: true });
        expect(byId.get('merge')?.params.mode).toBe('scatter');
      });

      it('image features and logits equal transformers within 1e-4 (relative)', async () => {
        const res = await executor.run(withMaxNewTokens(doc, 1), {
          baseDir: fixtureDir(name),
          targets: ['proj', 'llm'],
          feeds: {
            image: { pixel_values: pixels },
            tokenize: { input_ids: expected.get('input.input_ids'), attention_mask: expected.get('input.attention_mask') },
          },
        });
        expectClose(res.outputs.proj.image_features as Tensor, expected.get('output.image_features'), 1e-4, `${name} image features`);
        const mask = expected.get('input.attention_mask');
        for (let r = 0; r < (mask.dims[0] ?? 0); r++) {
          expectClose(realPositions(res.outputs.llm.logits as Tensor, mask, r), realPositions(expected.get('output.logits'), mask, r), 1e-4, `${name} logits row ${r}`);
        }
      });

      it('greedy decoding gives the same tokens', async () => {
        const want = tokenRows(expected.get('greedy.tokens'));
        const res = await executor.run(withMaxNewTokens(doc, want[0].length), {
          baseDir: fixtureDir(name),
          targets: ['llm'],
          feeds: {
            image: { pixel_values: expected.tensors.get('greedy.pixel_values') ?? pixels },
            tokenize: { input_ids: expected.get('greedy.input_ids'), attention_mask: expected.get('greedy.attention_mask') },
          },
        });
        expectSameGreedy(res.outputs.llm.generated_ids as Tensor, want, doc);
      });
    });
  }

  it("a projector with fewer tokens than the prompt's <image> placeholders is refused by the merge, naming both counts (not onnxruntime's GatherND)", async () => {
    const expected = loadExpected('llava');
    const { doc } = importHfFolder(fixtureDir('llava'));
    const swapped: GraphDocument = {
      ...doc,
      nodes: doc.nodes.map((n) => (n.id === 'proj' ? { id: 'proj', type: 'projector.qformer', typeVersion: 1, params: {}, frozen: false, adapters: [] } : n)),
    };
    await expect(
      executor.run(withMaxNewTokens(swapped, 1), {
        baseDir: fixtureDir('llava'),
        targets: ['llm'],
        feeds: {
          image: { pixel_values: expected.get('input.pixel_values') },
          tokenize: { input_ids: expected.get('input.input_ids'), attention_mask: expected.get('input.attention_mask') },
        },
      }),
    ).rejects.toThrow(/node 'merge': row 0 of the prompt has 16 image tokens \(id 4\) but the projector gives 8 image features/);
  });
});
