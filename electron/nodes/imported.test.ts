import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { type Tensor, newModel, tensorFromNumbers } from '../onnx/ir.js';
import { runModel } from '../onnx/ort.js';
import { readSafetensors } from '../onnx/safetensors.js';
import { graphDocumentFromJson } from '../engine/document.js';
import { validateDocument } from '../engine/validate.js';
import { resolveShapes } from '../engine/widths.js';
import { describeImportedModel, guessPortKind, nodeTypes } from './imported.js';

// shared/ sits beside the repository (DESIGN.md §10).
const FIXTURES =
  [resolve(fileURLToPath(import.meta.url), '../../../../shared/fixtures'), '/work/shared/fixtures'].find((p) => existsSync(p)) ??
  '/work/shared/fixtures';
const fixture = (name: string) => join(FIXTURES, `${name}.onnx`);
const importNode = nodeTypes[0];

describe('describeImportedModel on the reference fixtures', () => {
  it('vit_tiny: pixel_values (image) → last_hidden_state (embeds)', () => {
    const info = describeImportedModel(fixture('vit_tiny'));
    expect(info.opset).toBe(17);
    expect(info.inputs).toMatchObject([{ name: 'pixel_values', kind: 'image', dtype: 'float32', shape: [2, 3, 16, 16] }]);
    expect(info.outputs).toMatchObject([{ name: 'last_hidden_state', kind: 'embeds', dtype: 'float32', shape: [2, 17, 32] }]);
    expect(info.parameterCount).toBeGreaterThan(1000);
    expect(info.customDomains).toEqual([]);
  });

  it('gpt2_tiny: input_ids (tokens) → logits', () => {
    const info = describeImportedModel(fixture('gpt2_tiny'));
    expect(info.opset).toBe(14);
    expect(info.inputs).toMatchObject([{ name: 'input_ids', kind: 'tokens', dtype: 'int64', shape: [2, 8] }]);
    expect(info.outputs).toMatchObject([{ name: 'logits', kind: 'logits', shape: [2, 8, 64] }]);
  });

  it('mlp_projector: image_features → image_embeds, both embeds; portKinds overrides', () => {
    const info = describeImportedModel(fixture('mlp_projector'));
    expect(info.inputs).toMatchObject([{ name: 'image_features', kind: 'embeds', shape: [2, 17, 32] }]);
    expect(info.outputs).toMatchObject([{ name: 'image_embeds', kind: 'embeds', shape: [2, 17, 48] }]);
    const overridden = describeImportedModel(fixture('mlp_projector'), { image_embeds: 'any' });
    expect(overridden.outputs[0].kind).toBe('any');
    expect(() => describeImportedModel(fixture('mlp_projector'), { nope: 'embeds' })).toThrow(/portKinds names 'nope'.*image_features/);
  });

  it('a missing file is an error naming it', () => {
    expect(() => describeImportedModel('/nonexistent/model.onnx')).toThrow(/\/nonexistent\/model.onnx/);
  });
});

describe('guessPortKind', () => {
  it('maps Optimum / Transformers.js names', () => {
    expect(guessPortKind('attention_mask', 'int64')).toBe('mask');
    expect(guessPortKind('inputs_embeds', 'float32')).toBe('embeds');
    expect(guessPortKind('past_key_values.0.key', 'float32')).toBe('kv');
    expect(guessPortKind('present.3.value', 'float32')).toBe('kv');
    expect(guessPortKind('pooler_output', 'float32')).toBe('pooled');
    expect(guessPortKind('use_cache_branch', 'bool')).toBe('any');
    expect(guessPortKind('position_ids', 'int64')).toBe('any');
  });
});

describe('model.onnx_import node', () => {
  const dir = mkdtempSync(join(tmpdir(), 'imported-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('builds the file as a fragment that reproduces the PyTorch reference', async () => {
    const params = importNode.params.parse({ path: fixture('mlp_projector') });
    const frag = importNode.build?.(params, { nodeId: 'proj', seed: 0, inputShapes: {} });
    if (!frag) throw new Error('imported node has no build');
    expect(frag.graph.inputs.map((v) => v.name)).toEqual(['image_features']);
    expect(frag.graph.outputs.map((v) => v.name)).toEqual(['image_embeds']);
    expect(frag.weights.sort()).toEqual(['linear_1.bias', 'linear_1.weight', 'linear_2.bias', 'linear_2.weight']);
    const ref = readSafetensors(join(FIXTURES, 'mlp_projector.ref.safetensors')).tensors;
    const out = await runModel(newModel(frag.graph, frag.opset), { image_features: ref.get('input.image_features') as Tensor });
    const got = out.image_embeds.data as Float32Array;
    const want = (ref.get('output.image_embeds') as Tensor).data as Float32Array;
    expect(got.length).toBe(want.length);
    let maxErr = 0;
    for (let i = 0; i < got.length; i++) maxErr = Math.max(maxErr, Math.abs(got[i] - want[i]));
    expect(maxErr).toBeLessThan(1e-4);
  });

  it('weights from ctx.weights replace the file\'s and are checked', async () => {
    const params = importNode.params.parse({ path: fixture('mlp_projector') });
    const zeros = (dims: number[]) => tensorFromNumbers('float32', dims, new Array(dims.reduce((a, b) => a * b, 1)).fill(0));
    const weights = new Map<string, Tensor>([
      ['linear_2.weight', zeros([48, 48])],
      ['linear_2.bias', tensorFromNumbers('float32', [48], new Array(48).fill(0.25))],
    ]);
    const frag = importNode.build?.(params, { nodeId: 'proj', seed: 0, inputShapes: {}, weights });
    if (!frag) throw new Error('imported node has no build');
    const x = tensorFromNumbers('float32', [2, 17, 32], new Array(2 * 17 * 32).fill(1));
    const out = await runModel(newModel(frag.graph, frag.opset), { image_features: x });
    expect([...(out.image_embeds.data as Float32Array)].every((v) => v === 0.25)).toBe(true);
    const bad = new Map<string, Tensor>([['linear_2.weight', zeros([4, 4])]]);
    expect(() => importNode.build?.(params, { nodeId: 'proj', seed: 0, inputShapes: {}, weights: bad })).toThrow(
      /node 'proj': weight 'linear_2.weight' is float32\[4,4\]/,
    );
    const unknown = new Map<string, Tensor>([['other.weight', zeros([1])]]);
    expect(() => importNode.build?.(params, { nodeId: 'proj', seed: 0, inputShapes: {}, weights: unknown })).toThrow(/'other.weight'/);
  });

  it('plugs into a document: ports from the file, edges and widths checked', () => {
    const vit = join(dir, 'vit.onnx');
    copyFileSync(fixture('vit_tiny'), vit);
    const doc = (projectorPath: string) =>
      graphDocumentFromJson(
        {
          format: 'composer.graph',
          version: 1,
          nodes: [
            { id: 'vit', type: 'model.onnx_import', params: { path: vit } },
            { id: 'proj', type: 'model.onnx_import', params: { path: projectorPath } },
          ],
          edges: [{ from: { node: 'vit', port: 'last_hidden_state' }, to: { node: 'proj', port: 'image_features' } }],
        },
        'imported.graph.json',
      );
    const good = doc(fixture('mlp_projector'));
    const diags = validateDocument(good);
    // The ViT's pixel_values is the only open input.
    expect(diags.map((d) => `${d.nodeId}.${d.port}`)).toEqual(['vit.pixel_values']);
    expect(resolveShapes(good).get('proj')?.outputs.image_embeds).toEqual([2, 17, 48]);

    // Feeding the projector from the GPT-2 logits: wrong kind and wrong width.
    const wrong = graphDocumentFromJson(
      {
        format: 'composer.graph',
        version: 1,
        nodes: [
          { id: 'lm', type: 'model.onnx_import', params: { path: fixture('gpt2_tiny') } },
          { id: 'proj', type: 'model.onnx_import', params: { path: fixture('mlp_projector') } },
        ],
        edges: [{ from: { node: 'lm', port: 'logits' }, to: { node: 'proj', port: 'image_features' } }],
      },
      'wrong.graph.json',
    );
    const messages = validateDocument(wrong).map((d) => d.message);
    expect(messages.some((m) => m.includes('kind mismatch'))).toBe(true);
    expect(messages.some((m) => m.includes('dimension 1 is 8 but'))).toBe(true);

    const missing = validateDocument(doc(join(dir, 'gone.onnx')));
    expect(missing.some((d) => d.nodeId === 'proj' && d.message.includes('gone.onnx'))).toBe(true);
  });
});
