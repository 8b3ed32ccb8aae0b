/**
 * Text ↔ token ids for any HuggingFace `tokenizer.json` (WordLevel, BPE, WordPiece, Unigram), via
 * `@huggingface/tokenizers`. The file is validated with zod before the library sees it, so a broken file fails
 * with a message naming the file and the field. An optional sibling `tokenizer_config.json` supplies the
 * bos/eos/pad/unk roles; without it the roles are found by the usual token spellings.
 *
 * Ids are plain numbers; `encodeBatch` returns int64 rows (BigInt64Array) ready to feed as `input_ids` and
 * `attention_mask`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '@huggingface/tokenizers';
import { z } from 'zod';
import type { Tensor } from '../onnx/ir.js';

export class TokenizerError extends Error {
  override name = 'TokenizerError';
}

const addedTokenSchema = z.looseObject({
  id: z.number().int().nonnegative(),
  content: z.string().min(1),
  special: z.boolean().default(false),
  single_word: z.boolean().optional(),
  lstrip: z.boolean().optional(),
  rstrip: z.boolean().optional(),
  normalized: z.boolean().optional(),
});

const componentSchema = z.looseObject({ type: z.string() }).nullable().optional();

const modelSchema = z.looseObject({
  type: z.string().optional(),
  // WordLevel/BPE/WordPiece: token → id; Unigram: [token, score] pairs.
  vocab: z.union([z.record(z.string(), z.number().int().nonnegative()), z.array(z.tuple([z.string(), z.number()]))]),
  unk_token: z.string().nullable().optional(),
  unk_id: z.number().int().nullable().optional(),
  merges: z.array(z.union([z.string(), z.tuple([z.string(), z.string()])])).optional(),
});

export const TokenizerFileSchema = z.looseObject({
  version: z.string().optional(),
  added_tokens: z.array(addedTokenSchema).default([]),
  normalizer: componentSchema,
  pre_tokenizer: componentSchema,
  post_processor: componentSchema,
  decoder: componentSchema,
  model: modelSchema,
});
export type TokenizerFile = z.infer<typeof TokenizerFileSchema>;

/** A token in tokenizer_config.json is a string or an AddedToken-like object. */
const configTokenSchema = z.union([z.string(), z.looseObject({ content: z.string() })]).nullable().optional();
export const TokenizerConfigSchema = z.looseObject({
  bos_token: configTokenSchema,
  eos_token: configTokenSchema,
  pad_token: configTokenSchema,
  unk_token: configTokenSchema,
  clean_up_tokenization_spaces: z.boolean().optional(),
});
export type TokenizerConfig = z.infer<typeof TokenizerConfigSchema>;

export interface SpecialIds {
  pad?: number;
  bos?: number;
  eos?: number;
  unk?: number;
}

export interface EncodeOptions {
  /** Apply the file's post-processor (e.g. prepend `<s>`). Default true. */
  addSpecialTokens?: boolean;
}

export interface BatchEncodeOptions extends EncodeOptions {
  /** Where padding goes; decoders generating from a batch want 'left'. Default 'right'. */
  padSide?: 'left' | 'right';
  /** Pad (or check) every row to this length; rows longer than it are an error. Default: longest row. */
  length?: number;
}

export interface BatchEncoding {
  /** int64 [B, T] `input_ids`, padded with the pad id. */
  inputIds: Tensor;
  /** int64 [B, T] `attention_mask` (1 = real token). */
  attentionMask: Tensor;
  /** Unpadded ids per row. */
  rows: number[][];
}

function describeError(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function zodMessage(error: z.ZodError): string {
  const issue = error.issues[0];
  const at = issue && issue.path.length > 0 ? `field '${issue.path.join('.')}'` : 'top level';
  return `${at}: ${issue?.message ?? 'invalid'}`;
}

function tokenText(t: TokenizerConfig['bos_token']): string | undefined {
  if (t == null) return undefined;
  return typeof t === 'string' ? t : t.content;
}

const ROLE_SPELLINGS: Record<keyof SpecialIds, string[]> = {
  pad: ['<pad>', '[PAD]', '<|pad|>', '<|endoftext|>'],
  bos: ['<s>', '<bos>', '<|begin_of_text|>', '<|endoftext|>', '[CLS]'],
  eos: ['</s>', '<eos>', '<|end_of_text|>', '<|endoftext|>', '[SEP]'],
  unk: ['<unk>', '[UNK]', '<|unk|>'],
};

export class TextTokenizer {
  readonly vocabSize: number;
  readonly specialIds: SpecialIds;
  /** Ids of every token marked `special` in the file (skipped by `decode`). */
  readonly specialTokenIds: ReadonlySet<number>;
  private readonly tok: Tokenizer;

  private constructor(
    readonly source: string,
    file: TokenizerFile,
    config: TokenizerConfig,
  ) {
    // The library reads the unk token of vocabulary-only (WordLevel) models from the config object.
    const unk = tokenText(config.unk_token) ?? file.model.unk_token ?? undefined;
    const libConfig: Record<string, unknown> = { ...config };
    if (unk !== undefined) libConfig.unk_token = unk;
    try {
      this.tok = new Tokenizer(file, libConfig);
    } catch (e) {
      throw new TokenizerError(`tokenizer '${source}' could not be loaded: ${describeError(e)}`);
    }
    const vocab = this.tok.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    if (this.vocabSize === 0) throw new TokenizerError(`tokenizer '${source}' has an empty vocabulary`);
    this.specialTokenIds = new Set(file.added_tokens.filter((t) => t.special).map((t) => t.id));

    const roles: SpecialIds = {};
    const fromConfig: Record<keyof SpecialIds, string | undefined> = {
      pad: tokenText(config.pad_token),
      bos: tokenText(config.bos_token),
      eos: tokenText(config.eos_token),
      unk,
    };
    for (const role of Object.keys(ROLE_SPELLINGS) as Array<keyof SpecialIds>) {
      const named = fromConfig[role];
      if (named !== undefined) {
        const id = this.tokenToId(named);
        if (id === undefined) {
          throw new TokenizerError(`tokenizer '${source}': ${role}_token '${named}' is not in the vocabulary`);
        }
        roles[role] = id;
        continue;
      }
      for (const spelling of ROLE_SPELLINGS[role]) {
        const id = this.tokenToId(spelling);
        if (id !== undefined) {
          roles[role] = id;
          break;
        }
      }
    }
    this.specialIds = roles;
  }

  /** Parses an in-memory tokenizer.json object; `source` names it in errors. */
  static fromJson(json: unknown, source = 'tokenizer.json', config: unknown = {}): TextTokenizer {
    const parsed = TokenizerFileSchema.safeParse(json);
    if (!parsed.success) throw new TokenizerError(`tokenizer '${source}' is invalid at ${zodMessage(parsed.error)}`);
    const cfg = TokenizerConfigSchema.safeParse(config ?? {});
    if (!cfg.success) throw new TokenizerError(`tokenizer config for '${source}' is invalid at ${zodMessage(cfg.error)}`);
    return new TextTokenizer(source, parsed.data, cfg.data);
  }

  /** Loads a tokenizer.json file (and `tokenizer_config.json` next to it, if present). */
  static fromFile(path: string): TextTokenizer {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      throw new TokenizerError(`cannot read tokenizer file '${path}': ${describeError(e)}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new TokenizerError(`tokenizer file '${path}' is not valid JSON: ${describeError(e)}`);
    }
    const configPath = join(dirname(path), 'tokenizer_config.json');
    let config: unknown = {};
    if (existsSync(configPath)) {
      try {
        config = JSON.parse(readFileSync(configPath, 'utf8'));
      } catch (e) {
        throw new TokenizerError(`tokenizer config '${configPath}' is not valid JSON: ${describeError(e)}`);
      }
    }
    return TextTokenizer.fromJson(json, path, config);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    return this.tok.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  /** Token strings (after normalisation and pre-tokenisation) without special tokens added. */
  tokenize(text: string): string[] {
    return this.tok.tokenize(text);
  }

  /** Encodes several texts into padded int64 `input_ids` / `attention_mask` tensors. */
  encodeBatch(texts: string[], opts: BatchEncodeOptions = {}): BatchEncoding {
    if (texts.length === 0) throw new TokenizerError(`tokenizer '${this.source}': encodeBatch needs at least one text`);
    const pad = this.specialIds.pad;
    const rows = texts.map((t) => this.encode(t, opts));
    const longest = Math.max(...rows.map((r) => r.length));
    const length = opts.length ?? longest;
    if (longest > length) {
      throw new TokenizerError(`tokenizer '${this.source}': a text encodes to ${longest} tokens, more than length ${length}`);
    }
    if (pad === undefined && rows.some((r) => r.length < length)) {
      throw new TokenizerError(`tokenizer '${this.source}' has no pad token, so texts of different lengths cannot be batched`);
    }
    const ids = new BigInt64Array(texts.length * length).fill(BigInt(pad ?? 0));
    const mask = new BigInt64Array(texts.length * length);
    rows.forEach((row, b) => {
      const start = b * length + (opts.padSide === 'left' ? length - row.length : 0);
      for (let i = 0; i < row.length; i++) {
        ids[start + i] = BigInt(row[i]);
        mask[start + i] = 1n;
      }
    });
    return {
      inputIds: { dtype: 'int64', dims: [texts.length, length], data: ids },
      attentionMask: { dtype: 'int64', dims: [texts.length, length], data: mask },
      rows,
    };
  }

  /**
   * Ids → text; special tokens are skipped unless `skipSpecialTokens` is false. Ids past the vocabulary (a model's
   * embedding is often padded beyond its tokenizer: Qwen2, LLaVA) decode to nothing, as Hugging Face tokenizers do.
   */
  decode(ids: ArrayLike<number | bigint>, opts: { skipSpecialTokens?: boolean } = {}): string {
    const all = Array.from(ids, (v) => Number(v));
    for (const id of all) {
      if (!Number.isInteger(id) || id < 0) throw new TokenizerError(`tokenizer '${this.source}': id ${id} is not a token id`);
    }
    const list = all.filter((id) => id < this.vocabSize);
    const skip = opts.skipSpecialTokens ?? true;
    const kept = skip ? list.filter((id) => !this.specialTokenIds.has(id)) : list;
    if (kept.length === 0) return '';
    return this.tok.decode(kept, { skip_special_tokens: skip });
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  /** Like tokenToId but an unknown token is an error naming the tokenizer file. */
  requireId(token: string): number {
    const id = this.tokenToId(token);
    if (id === undefined) throw new TokenizerError(`tokenizer '${this.source}' has no token '${token}'`);
    return id;
  }
}

/** Path of the built-in tokenizer (models/tokenizer.json, written by models/build-tokenizer.ts). */
export const BUILTIN_TOKENIZER_PATH = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'models',
  'tokenizer.json',
);

let builtin: TextTokenizer | undefined;

/** The built-in shapes-vocabulary tokenizer, loaded once. */
export function builtinTokenizer(): TextTokenizer {
  builtin ??= TextTokenizer.fromFile(BUILTIN_TOKENIZER_PATH);
  return builtin;
}
