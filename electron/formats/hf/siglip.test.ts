// SigLIP folders (SiglipModel in float32, SiglipVisionModel in bfloat16, written by tools/hf_reference.py with the
// transformers forward in PyTorch) import into graphs whose embeddings, sigmoid zero-shot logits and probabilities
// equal transformers' on the same inputs; labels are padded to max_length as SigLIP's processor does.

import { afterAll, describe, expect, it } from 'vitest';
import { Executor } from '../../engine/executor.js';
import type { Tensor } from '../../onnx/ir.js';
import { importHfFolder } from './import.js';
import { expectClose, fixtureDir, loadExpected, tokenRows } from './fixtures.test-support.js';
import { expectZeroShotOutputs, l2Rows, nodeOf as node, pngPixelValues } from './encoders.test-support.js';

const TEXTS = ['a photo of a red circle', 'a blue square', 'a picture of two small green stars'];

const executor = new Executor();
afterAll(() => executor.dispose());

describe('SiglipModel → zero-shot graph with a sigmoid head', () => {
  const expected = loadExpected('siglip');
  const { doc, summary } = importHfFolder(fixtureDir('siglip'));

  it('imports as image → SigLIP ViT, labels (max_length padding, no mask) → SigLIP text → sigmoid head', () => {
    expect(summary.class).toBe('SiglipModel');
    expect(node(doc, 'vit').type).toBe('encoder.siglip_vit');
    expect(node(doc, 'text_encoder').type).toBe('encoder.siglip_text');
    expect(node(doc, 'labels').params).toMatchObject({ padding: 'max_length', max_length: 16, append_eos: false });
    expect(doc.edges.some((e) => e.to.node === 'text_encoder' && e.to.port === 'attention_mask')).toBe(false);
    expect(node(doc, 'classify').params).toMatchObject({ activation: 'sigmoid', logit_bias: 1 });
    expect(node(doc, 'classify').params.logit_scale).toBeCloseTo(Math.exp(2.3), 5);
    expect(node(doc, 'image').params).toMatchObject({ resize: 'stretch', size: 32, resample: 'bicubic', mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  });

  it('tokenises the prompt labels as the fixture; embeddings, logits_per_image and sigmoid probs equal transformers', async () => {
    const res = await executor.run(doc, {
      baseDir: fixtureDir('siglip'),
      targets: ['classify', 'vit', 'text_encoder', 'labels'],
      inputs: { prompt: { text: TEXTS.join(';') } },
      feeds: { image: { pixel_values: expected.get('input.pixel_values') } },
    });
    expect(tokenRows(res.outputs.labels.input_ids as Tensor)).toEqual(tokenRows(expected.get('input.input_ids')));
    const errs = expectZeroShotOutputs(res.outputs, expected, { image: 'pooler_output', text: 'pooler_output' });
    console.info('siglip max errors', JSON.stringify(errs));
  });

  it("the Image node preprocesses SigLIP's PNG as SiglipImageProcessor (Pillow bicubic to size × size, [−1, 1])", async () => {
    const err = expectClose(await pngPixelValues(executor, doc, 'siglip'), expected.get('output.pixel_values_from_png'), 1e-6, 'pixel_values_from_png');
    console.info('siglip pixel_values_from_png', JSON.stringify(err));
  });
});

describe('SiglipVisionModel (bfloat16 weights)', () => {
  const expected = loadExpected('siglip_vision');
  const { doc } = importHfFolder(fixtureDir('siglip_vision'));

  it('imports as image → SigLIP ViT; last_hidden_state and the attention-pooled pooler_output equal transformers', async () => {
    expect(doc.nodes.map((n) => n.type)).toEqual(['io.image', 'encoder.siglip_vit', 'io.tensor_output']);
    expect(node(doc, 'features').params.name).toBe('pooler_output');
    const res = await executor.run(doc, { baseDir: fixtureDir('siglip_vision'), targets: ['vit'], feeds: { image: { pixel_values: expected.get('input.pixel_values') } } });
    const errs = {
      last_hidden_state: expectClose(res.outputs.vit.last_hidden_state as Tensor, expected.get('output.last_hidden_state'), 1e-4, 'last_hidden_state'),
      pooler_output: expectClose(res.outputs.vit.pooler_output as Tensor, expected.get('output.pooler_output'), 1e-4, 'pooler_output'),
    };
    console.info('siglip_vision max errors', JSON.stringify(errs));
    expectClose(await pngPixelValues(executor, doc, 'siglip_vision'), expected.get('output.pixel_values_from_png'), 1e-6, 'pixel_values_from_png');
  });
});
