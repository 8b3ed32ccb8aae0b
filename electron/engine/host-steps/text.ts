// Host step of text.tokenize: text → int64 input_ids and attention_mask [1, S].

import { isAbsolute, resolve } from 'node:path';
import { tokenizeParams } from '../../nodes/text.js';
import { TextTokenizer, builtinTokenizer } from '../tokenizer.js';
import { type HostStep, HostStepError } from './io.js';

const loaded = new Map<string, TextTokenizer>();

/** The tokenizer a node names ('builtin' or a tokenizer.json path), loaded once per process. */
export function tokenizerFor(name: string, baseDir: string): TextTokenizer {
  const key = name === 'builtin' ? name : isAbsolute(name) ? name : resolve(baseDir, name);
  let tok = loaded.get(key);
  if (!tok) {
    tok = key === 'builtin' ? builtinTokenizer() : TextTokenizer.fromFile(key);
    loaded.set(key, tok);
  }
  return tok;
}

const tokenizeStep: HostStep = async (raw, inputs, ctx) => {
  const p = tokenizeParams.parse(raw);
  const text = inputs.text;
  if (typeof text !== 'string') throw new HostStepError(`node '${ctx.nodeId}': input 'text' must be text`);
  const tok = tokenizerFor(p.tokenizer, ctx.baseDir);
  let ids = tok.encode(text, { addSpecialTokens: p.add_special_tokens });
  if (ids.length > p.max_length) ids = ids.slice(ids.length - p.max_length);
  if (ids.length === 0) throw new HostStepError(`node '${ctx.nodeId}': the prompt is empty after tokenisation`);
  const real = ids.length;
  if (p.padding === 'max_length') ids = [...ids, ...new Array<number>(p.max_length - real).fill(tok.specialIds.pad ?? tok.specialIds.eos ?? 0)];
  const mask = new BigInt64Array(ids.length);
  mask.fill(1n, 0, real);
  return {
    input_ids: { dtype: 'int64', dims: [1, ids.length], data: BigInt64Array.from(ids.map(BigInt)) },
    attention_mask: { dtype: 'int64', dims: [1, ids.length], data: mask },
  };
};

export const textHostSteps: Record<string, HostStep> = { 'text.tokenize': tokenizeStep };
