// ONNX model folders (Transformers.js / Optimum layout) import as graphs of imported nodes and generate through their
// past_key_values → present ports: the same greedy tokens as the transformers forward (PyTorch reference written by
// tools/onnx_folder_reference.py) and as @huggingface/transformers on the same folder.

import { afterAll, describe, expect, it } from 'vitest';
import { Executor } from '../../engine/executor.js';
import { importHfFolder } from '../hf/import.js';
import { folderOf, generateTokens, importFolder, reference, userPrompt, withGeneration } from './test-support.js';

const executor = new Executor();
afterAll(() => executor.dispose());

/** Greedy tokens of Transformers.js on the folder (local files only, fp32, the same prompt and token budget). */
async function transformersJsTokens(name: string, modelFile: string, dtype: 'fp32' | 'q4' = 'fp32'): Promise<number[]> {
  const { AutoModelForCausalLM, AutoTokenizer, env } = await import('@huggingface/transformers');
  env.allowRemoteModels = false;
  env.localModelPath = `${folderOf('')}`;
  const tokenizer = await AutoTokenizer.from_pretrained(name, { local_files_only: true });
  const model = await AutoModelForCausalLM.from_pretrained(name, { local_files_only: true, dtype, model_file_name: modelFile });
  const ref = reference(name);
  const inputs = tokenizer(ref.prompt);
  const out = await model.generate({ ...inputs, max_new_tokens: ref.greedy_tokens.length, do_sample: false });
  await model.dispose();
  const all = Array.from((out as { data: BigInt64Array }).data, Number);
  return all.slice(ref.input_ids.length);
}

describe('ONNX folders: import and generate', () => {
  for (const [name, file] of [
    ['gpt2', 'model'],
    ['llama', 'model'],
    ['llama_merged', 'decoder_model_merged'],
  ] as const) {
    it(`${name}: the greedy tokens equal the transformers reference and Transformers.js`, async () => {
      const { doc, summary, onnx } = importFolder(name);
      expect(onnx?.graphs).toEqual({ [file]: `onnx/${file}.onnx` });
      expect(onnx?.precision).toBe('fp32');
      expect(summary.parameters).toBeGreaterThan(30_000);
      expect(doc.nodes.map((n) => n.type)).toEqual(['io.text', 'text.tokenize', 'model.onnx_import', 'io.text_output']);
      const ref = reference(name);
      // Margins of the reference are well above float32 noise, so equal tokens are a meaningful check.
      expect(Math.min(...ref.top2_margins)).toBeGreaterThan(3e-3);
      expect(new Set(ref.greedy_tokens).size).toBeGreaterThanOrEqual(5);
      const ours = await generateTokens(executor, doc, name);
      expect(ours.inputIds).toEqual(ref.input_ids);
      expect(ours.tokens).toEqual(ref.greedy_tokens);
      expect(ours.text.length).toBeGreaterThan(0);
      expect(await transformersJsTokens(name, file)).toEqual(ours.tokens);
    }, 60_000);
  }

  it('the split VLM runs as a graph: vision encoder → <image> positions of embed_tokens → merged decoder', async () => {
    const { doc, onnx, notes } = importFolder('vlm');
    expect(onnx?.graphs).toEqual({
      vision_encoder: 'onnx/vision_encoder.onnx',
      embed_tokens: 'onnx/embed_tokens.onnx',
      decoder_model_merged: 'onnx/decoder_model_merged.onnx',
    });
    expect(doc.edges).toContainEqual({ from: { node: 'vision', port: 'image_features' }, to: { node: 'merge', port: 'image_features' } });
    expect(doc.edges).toContainEqual({ from: { node: 'embed', port: 'inputs_embeds' }, to: { node: 'merge', port: 'token_embeds' } });
    expect(doc.edges).toContainEqual({ from: { node: 'merge', port: 'inputs_embeds' }, to: { node: 'llm', port: 'inputs_embeds' } });
    expect(notes.join('\n')).toMatch(/<image> \(id 4\) expands to the 4 image features/);
    const ref = reference('vlm');
    const ours = await generateTokens(executor, doc, 'vlm');
    expect(ours.inputIds).toEqual(ref.input_ids);
    expect(ours.tokens).toEqual(ref.greedy_tokens);
  }, 60_000);

  it('without the KV cache the merged decoder gives the same tokens (full re-run every step)', async () => {
    const { doc } = importFolder('llama_merged');
    const off = await generateTokens(executor, withGeneration(doc, { use_cache: false }), 'llama_merged');
    expect(off.tokens).toEqual(reference('llama_merged').greedy_tokens);
  }, 60_000);

  it('stop tokens end the answer; sampling is reproducible per seed and top_k 1 is greedy', async () => {
    const { doc } = importFolder('llama');
    const ref = reference('llama').greedy_tokens;
    const stopped = await generateTokens(executor, withGeneration(doc, { eos_token_ids: [ref[3]] }), 'llama');
    expect(stopped.tokens).toEqual(ref.slice(0, 3));
    const topK1 = await generateTokens(executor, withGeneration(doc, { temperature: 0.8, top_k: 1 }), 'llama');
    expect(topK1.tokens).toEqual(ref);
    const hot = withGeneration(doc, { temperature: 5, top_k: 50, top_p: 0.95, sample_seed: 7 });
    const a = await generateTokens(executor, hot, 'llama');
    const b = await generateTokens(executor, hot, 'llama');
    expect(a.tokens).toEqual(b.tokens);
    expect(a.tokens).not.toEqual(ref);
    const other = await generateTokens(executor, withGeneration(hot, { sample_seed: 8 }), 'llama');
    expect(other.tokens).not.toEqual(a.tokens);
  }, 60_000);

  it("a folder's chat template becomes a prompt.chat node (no extra special tokens), as apply_chat_template", async () => {
    const { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = join(mkdtempSync(join(tmpdir(), 'onnx-folder-chat-')), 'llama');
    try {
      cpSync(folderOf('llama'), dir, { recursive: true });
      const tc = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
      tc.chat_template = "{% for m in messages %}{{ bos_token }}{{ m['content'] }}{% endfor %}";
      writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(tc));
      const { doc, notes } = importHfFolder(dir);
      expect(doc.nodes.map((n) => n.id)).toEqual(['prompt', 'chat', 'tokenize', 'llm', 'answer']);
      expect(doc.nodes.find((n) => n.id === 'tokenize')!.params).toMatchObject({ add_special_tokens: false });
      expect(notes.join('\n')).toMatch(/chat template/);
      // "<s>" + the prompt, tokenized without special tokens: the reference's ids, so its tokens.
      const ours = await generateTokens(executor, doc, 'llama');
      expect(ours.inputIds).toEqual(reference('llama').input_ids);
      expect(ours.tokens).toEqual(reference('llama').greedy_tokens);
    } finally {
      rmSync(join(dir, '..'), { recursive: true, force: true });
    }
  }, 60_000);

  it('generation defaults come from generation_config.json and config.json', () => {
    const { doc } = importFolder('gpt2');
    const llm = doc.nodes.find((n) => n.id === 'llm')!;
    expect(llm.params).toMatchObject({
      path: `${folderOf('gpt2')}/onnx/model.onnx`,
      generation: { tokenizer: `${folderOf('gpt2')}/tokenizer.json`, max_new_tokens: 12, temperature: 0, eos_token_ids: [2], max_positions: 128 },
    });
    expect(llm.frozen).toBe(true);
  });
});

describe('ONNX folders: precisions', () => {
  it('fp32 by default; --precision q8 takes model_quantized.onnx (DequantizeLinear) and it generates', async () => {
    const { onnx, notes, doc } = importFolder('gpt2', 'q8');
    expect(onnx).toMatchObject({ precision: 'q8', precisions: ['fp32', 'q8'], graphs: { model: 'onnx/model_quantized.onnx' } });
    expect(notes.join('\n')).toMatch(/8 quantised weight\(s\) \(DequantizeLinear.*they stay frozen; adapters train beside them/);
    const q = await generateTokens(executor, doc, 'gpt2');
    expect(q.tokens).toHaveLength(12);
    // int8 per-tensor weights move the logits a little; the first tokens (largest margins) survive.
    expect(q.tokens.slice(0, 2)).toEqual(reference('gpt2').greedy_tokens.slice(0, 2));
    expect(importFolder('gpt2', 'quantized').onnx?.precision).toBe('q8');
  }, 60_000);

  it('--precision q4 takes model_q4.onnx (com.microsoft::MatMulNBits) and generates the tokens Transformers.js does with dtype q4', async () => {
    const { onnx, notes, doc } = importFolder('llama', 'q4');
    expect(onnx).toMatchObject({ precision: 'q4', precisions: ['fp32', 'q4'], graphs: { model: 'onnx/model_q4.onnx' } });
    expect(notes.join('\n')).toMatch(/15 quantised weight\(s\) \(MatMulNBits.*they stay frozen/);
    const ours = await generateTokens(executor, doc, 'llama');
    expect(ours.tokens).toHaveLength(12);
    // 4-bit blocks move the logits; the first tokens (largest margins) survive.
    expect(ours.tokens.slice(0, 4)).toEqual(reference('llama').greedy_tokens.slice(0, 4));
    expect(await transformersJsTokens('llama', 'model', 'q4')).toEqual(ours.tokens);
  }, 60_000);

  it('a precision the folder lacks is an error listing the choices', () => {
    expect(() => importFolder('gpt2', 'q4')).toThrow(/--precision q4: the folder offers fp32 \(onnx\/model\.onnx\), q8 \(onnx\/model_quantized\.onnx\)/);
    expect(() => importFolder('llama', 'fp16')).toThrow(/--precision fp16: the folder offers fp32 \(onnx\/model\.onnx\), q4 \(onnx\/model_q4\.onnx\)$/);
  });

  it('the user prompt of the VLM test is the reference prompt without the template', () => {
    expect(userPrompt('vlm')).toBe('the red circle is');
  });
});

describe('vlmc on ONNX folders', () => {
  it('vlmc import --json lists the precisions; vlmc run --json reports the tokens and tokens/s of the imported decoder', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { importCommand } = await import('../../cli/import.js');
    const { runCommand } = await import('../../cli/run.js');
    const dir = mkdtempSync(join(tmpdir(), 'onnx-folder-cli-'));
    try {
      const graph = join(dir, 'gpt2.graph.json');
      const lines: string[] = [];
      expect(await importCommand([folderOf('gpt2'), '--out', graph, '--json'], (l) => lines.push(l))).toBe(0);
      const imported = JSON.parse(lines[0]) as { onnx: { precision: string; precisions: string[] } };
      expect(imported.onnx).toMatchObject({ precision: 'fp32', precisions: ['fp32', 'q8'] });
      const ran: string[] = [];
      expect(await runCommand([graph, '--prompt', reference('gpt2').prompt, '--max-new-tokens', '20', '--json'], (l) => ran.push(l))).toBe(0);
      const result = JSON.parse(ran[ran.length - 1]) as { generated: Record<string, number[][]>; generation: Record<string, { tokens: number; tokens_per_s: number }> };
      expect(result.generated.llm[0].slice(0, 12)).toEqual(reference('gpt2').greedy_tokens);
      expect(result.generation.llm.tokens).toBe(20);
      expect(result.generation.llm.tokens_per_s).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
