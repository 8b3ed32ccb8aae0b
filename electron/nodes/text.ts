// Text processing nodes that sit between prompts and models: tokenisation (text → token ids and mask).

import { z } from 'zod';
import type { NodeTypeDef } from './types.js';

export const tokenizeParams = z.object({
  tokenizer: z.string().default('builtin'),
  add_special_tokens: z.boolean().default(true),
  max_length: z.number().int().positive().default(128),
  padding: z.enum(['none', 'max_length']).default('none'),
});

const tokenizeNode: NodeTypeDef<typeof tokenizeParams> = {
  info: {
    type: 'text.tokenize',
    typeVersion: 1,
    family: 'prompt',
    title: 'Tokenize',
    aliases: ['tokenize', 'tokenizer'],
    inputs: [{ name: 'text', kind: 'text', doc: 'The rendered prompt.' }],
    outputs: [
      { name: 'input_ids', kind: 'tokens', shape: ['B', 'S'], doc: 'int64 token ids.' },
      { name: 'attention_mask', kind: 'mask', shape: ['B', 'S'], doc: '1 for every real token.' },
    ],
    doc: {
      summary:
        "Splits text into the LLM's token ids with a HuggingFace tokenizer.json (the built-in one covers the shapes " +
        'vocabulary); prepends the BOS token when special tokens are on.',
      usedBy: ['every text-conditioned model: BLIP-2, InstructBLIP, LLaVA, MiniGPT-4, CLIP text tower'],
    },
  },
  params: tokenizeParams,
  paramDocs: {
    tokenizer: "'builtin' or the path of a tokenizer.json (relative to the graph file).",
    add_special_tokens: 'Add the tokenizer\'s special tokens (e.g. <s> at the start).',
    max_length: 'Longer prompts are cut to this many tokens (from the left, so the question stays).',
    padding:
      "'max_length' pads every prompt on the right to max_length with the pad token (mask 0), as Stable Diffusion feeds " +
      'its text encoder 77 tokens: the conditioning then always has max_length tokens. \'none\': as long as the prompt.',
  },
  outputShapes: () => ({ input_ids: [1, 'S'], attention_mask: [1, 'S'] }),
  host: 'text.tokenize',
};

export const nodeTypes: NodeTypeDef[] = [tokenizeNode];
