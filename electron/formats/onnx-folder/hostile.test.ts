// Hostile or broken ONNX folders: each is refused at import with an error naming the file and the port (or tensor,
// or node), before anything runs.

import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Graph, Model } from '../../onnx/ir.js';
import { loadModel, saveModel, serializeModel } from '../../onnx/proto.js';
import { importHfFolder } from '../hf/import.js';
import { folderOf } from './test-support.js';

const tmp = mkdtempSync(join(tmpdir(), 'onnx-folder-hostile-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A copy of a fixture folder whose `file` is replaced by `edit(model)`. */
function broken(name: string, file: string, edit: (m: Model) => Model | Uint8Array): string {
  const dir = join(tmp, `${name}-${Math.random().toString(36).slice(2, 8)}`);
  cpSync(folderOf(name), dir, { recursive: true });
  const path = join(dir, file);
  const out = edit(loadModel(path));
  if (out instanceof Uint8Array) writeFileSync(path, out);
  else saveModel(path, out);
  return dir;
}

const importing = (dir: string) => () => importHfFolder(dir, { graphDir: tmp });

describe('hostile ONNX folders', () => {
  it('external data pointing outside the folder is refused naming the file and the tensor', () => {
    const dir = broken('llama', 'onnx/model.onnx', (m) => serializeModel(m, { externalDataName: '../../outside.bin', externalThreshold: 1024 }).model);
    writeFileSync(join(tmp, 'outside.bin'), new Uint8Array(1 << 20));
    expect(importing(dir)).toThrow(/onnx\/model\.onnx: .*tensor '[^']+'.*'\.\.\/\.\.\/outside\.bin' escapes the model's folder/);
  });

  it('a decoder without past_key_values inputs cannot generate: the error names the file and lists its ports', () => {
    const dir = broken('llama', 'onnx/model.onnx', (m) => {
      // The ports as a decoder exported without use_cache has them (the past fed as constants inside).
      const g: Graph = m.graph;
      for (const inp of g.inputs.filter((v) => v.name.startsWith('past_key_values.'))) {
        g.initializers.set(inp.name, { dtype: 'float32', dims: [1, 2, 0, 8], data: new Float32Array(0) });
      }
      g.inputs = g.inputs.filter((v) => !v.name.startsWith('past_key_values.'));
      return m;
    });
    expect(importing(dir)).toThrow(/onnx\/model\.onnx: the decoder has no 'past_key_values\.\{i\}\.key' inputs, so it cannot generate with the KV cache \(inputs: input_ids, attention_mask, position_ids\)/);
  });

  it('a past input without its present output is refused naming both ports', () => {
    const dir = broken('llama', 'onnx/model.onnx', (m) => {
      m.graph.outputs = m.graph.outputs.filter((v) => v.name !== 'present.1.value');
      return m;
    });
    expect(importing(dir)).toThrow(/onnx\/model\.onnx: input 'past_key_values\.1\.value' has no matching output 'present\.1\.value'/);
  });

  it('a decoder without attention_mask or logits is refused naming the port', () => {
    const noLogits = broken('gpt2', 'onnx/model.onnx', (m) => {
      m.graph.outputs = m.graph.outputs.filter((v) => v.name !== 'logits');
      return m;
    });
    expect(importing(noLogits)).toThrow(/onnx\/model\.onnx: the decoder has no 'logits' output/);
  });

  it("an If whose branches disagree in outputs is refused naming the file, the node and the port", () => {
    const dir = broken('llama_merged', 'onnx/decoder_model_merged.onnx', (m) => {
      const iff = m.graph.nodes.find((n) => n.opType === 'If')!;
      const other = iff.attrs.else_branch;
      if (other.type !== 'graph') throw new Error('fixture If has no else_branch');
      other.value.outputs = other.value.outputs.slice(0, -1);
      return m;
    });
    expect(importing(dir)).toThrow(/onnx\/decoder_model_merged\.onnx: If node 'optimum::if': else_branch has 4 outputs but the node has 5 .*port 'present\.1\.value' has no value in else_branch/);
    const dtype = broken('llama_merged', 'onnx/decoder_model_merged.onnx', (m) => {
      const iff = m.graph.nodes.find((n) => n.opType === 'If')!;
      const then = iff.attrs.then_branch;
      if (then.type !== 'graph') throw new Error('fixture If has no then_branch');
      then.value.outputs[0] = { ...then.value.outputs[0], dtype: 'float16' };
      return m;
    });
    expect(importing(dtype)).toThrow(/If node 'optimum::if', port 'logits': then_branch gives float16 .*else_branch float32/);
  });

  it('a VLM folder missing one of its graphs, and a config.json with a bad field, are refused naming the file', () => {
    const dir = join(tmp, 'vlm-partial');
    cpSync(folderOf('vlm'), dir, { recursive: true });
    rmSync(join(dir, 'onnx', 'embed_tokens.onnx'));
    expect(importing(dir)).toThrow(/onnx\/vision_encoder\.onnx needs onnx\/embed_tokens\.onnx beside it/);
    const bad = join(tmp, 'bad-config');
    cpSync(folderOf('gpt2'), bad, { recursive: true });
    writeFileSync(join(bad, 'config.json'), JSON.stringify({ model_type: 'gpt2', n_positions: -3 }));
    expect(importing(bad)).toThrow(/config\.json: n_positions/);
    writeFileSync(join(bad, 'config.json'), JSON.stringify({ model_type: 'gpt2' }));
    writeFileSync(join(bad, 'generation_config.json'), JSON.stringify({ top_k: 'many' }));
    expect(importing(bad)).toThrow(/generation_config\.json: top_k/);
  });
});
