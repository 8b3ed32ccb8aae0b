import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BUILTIN_TOKENIZER_PATH, TextTokenizer, TokenizerError, builtinTokenizer } from './tokenizer.js';
import { SPECIAL_TOKENS, builtinVocabulary, tokenizerJsonText } from '../../models/build-tokenizer.js';
import { BUILTIN_VOCAB_SIZE } from '../nodes/llms.js';
import {
  SHAPE_COLORS,
  SHAPE_KINDS,
  SHAPE_POSITIONS,
  SHAPE_SIZES,
  type ShapeSpec,
  captionFor,
  questionsFor,
} from './datasets/shapes.js';

const tmp = mkdtempSync(join(tmpdir(), 'tokenizer-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function allSingleShapes(): ShapeSpec[] {
  const out: ShapeSpec[] = [];
  for (const shape of SHAPE_KINDS)
    for (const color of SHAPE_COLORS)
      for (const size of SHAPE_SIZES) for (const position of SHAPE_POSITIONS) out.push({ shape, color, size, position });
  return out;
}

describe('built-in tokenizer (models/tokenizer.json)', () => {
  const tok = builtinTokenizer();

  it('is what models/build-tokenizer.ts writes, and matches the tiny LLM vocabulary', () => {
    expect(readFileSync(BUILTIN_TOKENIZER_PATH, 'utf8')).toBe(tokenizerJsonText());
    expect(tok.vocabSize).toBe(builtinVocabulary().length);
    expect(tok.vocabSize).toBe(BUILTIN_VOCAB_SIZE);
  });

  it('has the special tokens at fixed ids', () => {
    SPECIAL_TOKENS.forEach((t, i) => expect(tok.tokenToId(t)).toBe(i));
    expect(tok.specialIds).toEqual({ pad: 0, bos: 1, eos: 2, unk: 3 });
    expect(tok.idToToken(4)).toBe('<image>');
    expect(tok.tokenToId('[IMG3]')).toBe(8);
    expect(tok.tokenToId('[DEC]')).toBe(12);
  });

  it('covers every caption, question and answer of the shapes dataset and round-trips them', () => {
    const unk = tok.specialIds.unk!;
    const shapes = allSingleShapes();
    const texts = new Set<string>();
    shapes.forEach((s, i) => {
      const scene = [s, shapes[(i * 7 + 3) % shapes.length], shapes[(i * 13 + 5) % shapes.length]];
      for (const n of [1, 2, 3]) {
        texts.add(captionFor(scene.slice(0, n)));
        for (const qa of questionsFor(scene.slice(0, n))) {
          texts.add(qa.question);
          texts.add(qa.answer);
        }
      }
    });
    for (const text of texts) {
      const ids = tok.encode(text, { addSpecialTokens: false });
      expect(ids, text).not.toContain(unk);
      expect(tok.decode(ids)).toBe(text);
    }
    expect(texts.size).toBeGreaterThan(500);
  });

  it('handles instructions and chat roles (lowercased, punctuation split)', () => {
    const unk = tok.specialIds.unk!;
    for (const text of ['Describe the image.', 'What is in the picture?', 'Write a short caption for this image.', 'USER:', 'ASSISTANT:']) {
      const tokens = tok.tokenize(text);
      expect(tokens.join(' ')).toBe(tokens.join(' ').toLowerCase());
      expect(tok.encode(text)).not.toContain(unk);
    }
    expect(tok.tokenize('USER: <image>\nWhat is in the picture? ASSISTANT:')).toEqual([
      'user', ':', '<image>', 'what', 'is', 'in', 'the', 'picture', '?', 'assistant', ':',
    ]);
    expect(tok.encode('hi')).toEqual([1, 3]); // <s> <unk>
  });

  it('adds <s> only with special tokens and skips specials when decoding', () => {
    const withSpecial = tok.encode('a red circle');
    const without = tok.encode('a red circle', { addSpecialTokens: false });
    expect(withSpecial).toEqual([1, ...without]);
    const ids = [...tok.encode('[IMG0] [IMG1] a red circle'), 2];
    expect(tok.decode(ids)).toBe('a red circle');
    expect(tok.decode(ids, { skipSpecialTokens: false })).toBe('<s> [IMG0] [IMG1] a red circle </s>');
    expect(tok.decode([])).toBe('');
    // A padded embedding row past the vocabulary decodes to nothing (as Hugging Face tokenizers); -1 is a bug.
    expect(tok.decode([...tok.encode('a red circle', { addSpecialTokens: false }), tok.vocabSize + 3])).toBe('a red circle');
    expect(() => tok.decode([-1])).toThrow(/id -1 is not a token id/);
  });

  it('batches with left or right padding as int64 tensors', () => {
    const right = tok.encodeBatch(['a red circle', 'two']);
    expect(right.inputIds.dims).toEqual([2, 4]);
    expect(Array.from(right.attentionMask.data as BigInt64Array, Number)).toEqual([1, 1, 1, 1, 1, 1, 0, 0]);
    const left = tok.encodeBatch(['a red circle', 'two'], { padSide: 'left', length: 5 });
    const two = tok.requireId('two');
    expect(Array.from(left.inputIds.data as BigInt64Array, Number).slice(5)).toEqual([0, 0, 0, 1, two]);
    expect(() => tok.encodeBatch(['a red circle'], { length: 2 })).toThrow(/more than length 2/);
  });
});

describe('TextTokenizer loading', () => {
  it('errors name the file and the field', () => {
    const missing = join(tmp, 'nope.json');
    expect(() => TextTokenizer.fromFile(missing)).toThrow(new RegExp(`cannot read tokenizer file '${missing}'`));
    const notJson = join(tmp, 'bad.json');
    writeFileSync(notJson, '{ nope');
    expect(() => TextTokenizer.fromFile(notJson)).toThrow(/bad\.json' is not valid JSON/);
    const noModel = join(tmp, 'nomodel.json');
    writeFileSync(noModel, JSON.stringify({ added_tokens: [] }));
    expect(() => TextTokenizer.fromFile(noModel)).toThrow(/nomodel\.json' is invalid at field 'model'/);
    const badVocab = join(tmp, 'badvocab.json');
    writeFileSync(badVocab, JSON.stringify({ model: { type: 'WordLevel', vocab: { a: -1 } } }));
    expect(() => TextTokenizer.fromFile(badVocab)).toThrow(TokenizerError);
  });

  it('loads a byte-level BPE tokenizer (GPT-2 style) with a tokenizer_config.json', () => {
    const dir = mkdtempSync(join(tmp, 'bpe-'));
    const vocab: Record<string, number> = {};
    for (const t of ['<|endoftext|>', 'h', 'e', 'l', 'o', 'w', 'r', 'd', 'Ġ', 'he', 'll', 'hell', 'hello', 'Ġw', 'or', 'Ġwor', 'Ġworl', 'Ġworld']) {
      vocab[t] = Object.keys(vocab).length;
    }
    const json = {
      version: '1.0',
      added_tokens: [{ id: 0, content: '<|endoftext|>', special: true, normalized: false, lstrip: false, rstrip: false, single_word: false }],
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: null,
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        vocab,
        merges: ['h e', 'l l', 'he ll', 'hell o', 'Ġ w', 'o r', 'Ġw or', 'Ġwor l', 'Ġworl d'],
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: '',
        end_of_word_suffix: '',
        fuse_unk: false,
      },
    };
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<|endoftext|>', eos_token: '<|endoftext|>' }));
    const tok = TextTokenizer.fromFile(join(dir, 'tokenizer.json'));
    expect(tok.encode('hello world')).toEqual([vocab.hello, vocab['Ġworld']]);
    expect(tok.encode('hello hello')).toEqual([vocab.hello, vocab['Ġ'], vocab.hello]); // 'Ġhello' has no merge for Ġ+h
    expect(tok.decode([vocab.hello, vocab['Ġworld'], 0])).toBe('hello world');
    expect(tok.specialIds.bos).toBe(0);
    expect(tok.specialIds.eos).toBe(0);
    expect(tok.vocabSize).toBe(18);
  });
});
