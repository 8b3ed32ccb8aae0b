import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../onnx/ir.js';
import { textHostSteps, tokenizerFor } from './text.js';

const tokenize = async (params: Record<string, unknown>, text: string) => {
  const out = await textHostSteps['text.tokenize'](params, { text }, { nodeId: 'tok', baseDir: '/' });
  const ids = out.input_ids as Tensor;
  const mask = out.attention_mask as Tensor;
  return { dims: ids.dims, ids: Array.from(ids.data as BigInt64Array, Number), mask: Array.from(mask.data as BigInt64Array, Number) };
};

describe('text.tokenize', () => {
  const text = 'Show me a picture of a red circle.';
  const pad = tokenizerFor('builtin', '/').specialIds.pad;

  it('gives the prompt its own length by default, every token real', async () => {
    const t = await tokenize({}, text);
    expect(t.dims).toEqual([1, t.ids.length]);
    expect(t.ids.length).toBeGreaterThan(5);
    expect(t.mask.every((m) => m === 1)).toBe(true);
  });

  it("padding 'max_length' pads on the right with the pad token and masks the padding", async () => {
    const plain = await tokenize({}, text);
    const t = await tokenize({ max_length: 16, padding: 'max_length' }, text);
    expect(t.dims).toEqual([1, 16]);
    expect(t.ids.slice(0, plain.ids.length)).toEqual(plain.ids);
    expect(t.ids.slice(plain.ids.length).every((id) => id === pad)).toBe(true);
    expect(t.mask).toEqual([...plain.mask, ...new Array(16 - plain.ids.length).fill(0)]);
    // Longer prompts are still cut to max_length, keeping the end.
    const cut = await tokenize({ max_length: 4, padding: 'max_length' }, text);
    expect(cut.ids).toEqual(plain.ids.slice(-4));
    expect(cut.mask).toEqual([1, 1, 1, 1]);
  });
});
