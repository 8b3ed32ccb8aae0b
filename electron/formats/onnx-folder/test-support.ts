// Test support for the ONNX-folder tests: the folders written by tools/onnx_folder_reference.py, their PyTorch
// reference tokens, and an import + run through the real executor.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { GraphDocument } from '../../engine/document.js';
import { Executor } from '../../engine/executor.js';
import { tensorToNumbers } from '../../onnx/ir.js';
import { importHfFolder } from '../hf/import.js';

export const TESTDATA = join(import.meta.dirname, 'testdata');
export const folderOf = (name: string) => join(TESTDATA, name);

const referenceSchema = z.object({
  prompt: z.string(),
  input_ids: z.array(z.number().int()),
  greedy_tokens: z.array(z.number().int()),
  top2_margins: z.array(z.number()),
});
export type Reference = z.infer<typeof referenceSchema>;

/** reference.json: the prompt and the transformers forward's greedy tokens (PyTorch, float64). */
export function reference(name: string): Reference {
  return referenceSchema.parse(JSON.parse(readFileSync(join(folderOf(name), 'reference.json'), 'utf8')));
}

/** The prompt the graph's template turns into the reference input (the VLM's "<image>\n" is the template's). */
export function userPrompt(name: string): string {
  return reference(name).prompt.replace(/^<image>\n/, '');
}

/** A copy of the document with the decoder's generation params changed. */
export function withGeneration(doc: GraphDocument, change: Record<string, unknown>): GraphDocument {
  const copy = structuredClone(doc);
  const llm = copy.nodes.find((n) => n.id === 'llm')!;
  const p = llm.params as Record<string, unknown>;
  p.generation = { ...(p.generation as Record<string, unknown>), ...change };
  return copy;
}

export async function generateTokens(executor: Executor, doc: GraphDocument, name: string, prompt = userPrompt(name)): Promise<{ tokens: number[]; text: string; inputIds: number[] }> {
  const inputs: Record<string, { text?: string; path?: string }> = { prompt: { text: prompt } };
  if (doc.nodes.some((n) => n.id === 'image')) inputs.image = { path: join(folderOf(name), 'image.png') };
  const res = await executor.run(doc, { baseDir: TESTDATA, inputs });
  const ids = res.outputs.llm.generated_ids;
  const text = res.outputs.llm.text;
  const inp = res.outputs.tokenize.input_ids;
  if (typeof ids === 'string' || typeof text !== 'string' || typeof inp === 'string') throw new Error('unexpected outputs');
  return { tokens: Array.from(tensorToNumbers(ids)), text, inputIds: Array.from(tensorToNumbers(inp)) };
}

export function importFolder(name: string, precision?: string) {
  return importHfFolder(folderOf(name), { graphDir: TESTDATA, precision });
}
