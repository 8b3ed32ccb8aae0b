// Writes models/tokenizer.json: the built-in word-level tokenizer over the shapes-dataset vocabulary.
//
// Run: npx tsx models/build-tokenizer.ts            (writes models/tokenizer.json)
//      npx tsx models/build-tokenizer.ts --check    (exits 1 if the file on disk differs from what would be written)
//
// The file is a standard HuggingFace `tokenizer.json` (WordLevel model, Lowercase normaliser, BertPreTokenizer =
// split on whitespace and isolate every punctuation character, TemplateProcessing that prepends `<s>`), so both
// `@huggingface/tokenizers` (JS) and the Rust/Python `tokenizers` library load it. Ids are stable: special tokens
// first (`<pad>` = 0), then punctuation, then words in the order listed below. Appending words keeps old ids;
// the tiny LLM preset's vocabulary size (`BUILTIN_VOCAB_SIZE` in electron/nodes/llms.ts) must follow the length,
// which electron/engine/tokenizer.test.ts checks.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../electron/onnx/atomic.js';

/** Special tokens in id order. `<pad>` must stay 0 (padding rows are zero-id). */
export const SPECIAL_TOKENS = [
  '<pad>',
  '<s>',
  '</s>',
  '<unk>',
  '<image>',
  '[IMG0]',
  '[IMG1]',
  '[IMG2]',
  '[IMG3]',
  '[CLS]',
  '[SEP]',
  '[MASK]',
  '[DEC]',
] as const;

/** Every character the BertPreTokenizer isolates that our prompts and captions use. */
const PUNCTUATION = ['.', ',', '?', '!', ':', ';', "'", '"', '-', '(', ')', '/', '#', '<', '>', '[', ']'];

/** Words grouped by role; all lowercase because the normaliser lowercases input. */
const WORD_GROUPS: Record<string, string[]> = {
  articles: ['a', 'an', 'the', 'this', 'that', 'these', 'those', 'some', 'any', 'no', 'each', 'every', 'all', 'both'],
  colours: [
    'red', 'green', 'blue', 'yellow', 'orange', 'purple', 'pink', 'brown', 'black', 'white', 'gray', 'grey',
    'cyan', 'magenta', 'color', 'colour', 'colors', 'colored', 'dark', 'light', 'bright',
  ],
  shapes: [
    'circle', 'circles', 'square', 'squares', 'triangle', 'triangles', 'rectangle', 'rectangles', 'star', 'stars',
    'diamond', 'diamonds', 'ellipse', 'oval', 'hexagon', 'pentagon', 'cross', 'heart', 'dot', 'line', 'shape',
    'shapes', 'object', 'objects', 'thing', 'things', 'background', 'canvas',
  ],
  sizes: ['small', 'large', 'big', 'tiny', 'medium', 'huge', 'little', 'size', 'sized', 'smaller', 'larger', 'bigger'],
  positions: [
    'left', 'right', 'top', 'bottom', 'center', 'centre', 'middle', 'corner', 'upper', 'lower', 'side', 'edge',
    'above', 'below', 'under', 'over', 'next', 'beside', 'between', 'near', 'far', 'behind', 'front', 'position',
    'where', 'located',
  ],
  numbers: [
    'zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten', 'single', 'pair',
    'first', 'second', 'third', 'many', 'much', 'number', 'count', 'only', 'more', 'less', 'most', 'several',
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9',
  ],
  questions: ['what', 'which', 'how', 'who', 'why', 'when', 'whose', 'yes', 'not', 'true', 'false'],
  verbs: [
    'is', 'are', 'was', 'were', 'be', 'been', 'being', 'am', 'do', 'does', 'did', 'have', 'has', 'had', 'can',
    'could', 'will', 'would', 'should', 'may', 'see', 'seen', 'shown', 'show', 'shows', 'contain', 'contains',
    'describe', 'answer', 'tell', 'give', 'write', 'look', 'looks', 'appear', 'appears', 'placed', 'drawn',
    'there', 'here', 'let', 'please',
  ],
  instructions: [
    'image', 'images', 'picture', 'pictures', 'photo', 'photos', 'scene', 'caption', 'question', 'questions',
    'word', 'words', 'sentence', 'short', 'briefly', 'brief', 'detail', 'details', 'detailed', 'describe',
    'description', 'generate', 'draw', 'create', 'make', 'paint', 'render',
  ],
  roles: ['user', 'assistant', 'system', 'human', 'gpt', 'bot', 'instruction', 'input', 'output', 'response'],
  function_words: [
    'and', 'or', 'but', 'of', 'in', 'on', 'at', 'to', 'from', 'with', 'without', 'by', 'for', 'as', 'into',
    'onto', 'it', 'its', 'they', 'them', 'their', 'i', 'you', 'your', 'me', 'my', 'we', 'our', 'he', 'she',
    'other', 'another', 'same', 'different', 'also', 'too', 'very', 'just', 'then', 'than', 'so', 'if', 'up',
    'down', 'out', 'off', 'together', 'alone', 'else', 'nothing', 'something', 'everything', 'empty', 'filled',
    'plain', 'solid', 'st', 'nd', 'rd', 'th', 's',
  ],
};

/** The full vocabulary in id order (specials, punctuation, words; duplicates keep their first id). */
export function builtinVocabulary(): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const push = (t: string): void => {
    if (seen.has(t)) return;
    seen.add(t);
    out.push(t);
  };
  for (const t of SPECIAL_TOKENS) push(t);
  for (const t of PUNCTUATION) push(t);
  for (const group of Object.values(WORD_GROUPS)) for (const w of group) push(w);
  return out;
}

/** The tokenizer.json object (HuggingFace `tokenizers` serialisation format). */
export function buildTokenizerJson(): Record<string, unknown> {
  const vocab = builtinVocabulary();
  const vocabMap: Record<string, number> = {};
  vocab.forEach((t, i) => (vocabMap[t] = i));
  const special = new Set<string>(SPECIAL_TOKENS);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: vocab
      .map((content, id) => ({ content, id }))
      .filter(({ content }) => special.has(content))
      .map(({ content, id }) => ({
        id,
        content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      })),
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [vocabMap['<s>']], tokens: ['<s>'] } },
    },
    decoder: null,
    model: { type: 'WordLevel', vocab: vocabMap, unk_token: '<unk>' },
  };
}

export function tokenizerJsonText(): string {
  return `${JSON.stringify(buildTokenizerJson(), null, 2)}\n`;
}

export const TOKENIZER_PATH = join(dirname(fileURLToPath(import.meta.url)), 'tokenizer.json');

function main(): void {
  const text = tokenizerJsonText();
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(TOKENIZER_PATH, 'utf8');
    } catch {
      // missing file: reported below
    }
    if (current !== text) {
      console.error(`${TOKENIZER_PATH} is out of date: run npx tsx models/build-tokenizer.ts`);
      process.exit(1);
    }
    console.log(`${TOKENIZER_PATH} is up to date (${builtinVocabulary().length} tokens)`);
    return;
  }
  writeFileAtomic(TOKENIZER_PATH, text);
  console.log(`wrote ${TOKENIZER_PATH} (${builtinVocabulary().length} tokens)`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
