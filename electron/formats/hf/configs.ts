// zod schemas for the JSON files beside a Hugging Face model's weights (tokenizer, generation, image processor and
// processor configs). The files are untrusted: every field we read is checked and normalised to one form; keys we
// do not know pass through untouched so the architecture mappings on top can still read them.

import { z } from 'zod';

/** What a value looks like, for messages ("got a list", "got 'left'"). */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'object') return 'an object';
  return String(v);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An optional field: absent or null both mean "not set" (transformers writes null for unset ids). */
function opt<T extends z.ZodType>(schema: T) {
  return schema.nullish().transform((v): z.output<T> | undefined => v ?? undefined);
}

/**
 * A field checked by hand (unions with our own wording); `.optional()` so an absent key is simply not set
 * (zod 4 would otherwise report a missing key as an issue).
 */
function customField<T>(check: (v: unknown, ctx: z.core.$RefinementCtx<unknown>) => T) {
  return z.unknown().transform(check).optional();
}

const nonNegativeInt = z.number().int().min(0);
const positiveInt = z.number().int().min(1);
const positiveNumber = z.number().positive();

// ---------------------------------------------------------------- tokenizer_config.json / special_tokens_map.json

/** tokenizers' AddedToken as transformers serialises it (`__type` is written by old versions). */
export const addedTokenSchema = z.looseObject({
  content: z.string(),
  lstrip: opt(z.boolean()),
  rstrip: opt(z.boolean()),
  normalized: opt(z.boolean()),
  single_word: opt(z.boolean()),
  special: opt(z.boolean()),
});
export type AddedToken = z.output<typeof addedTokenSchema>;

/** A special token as a plain string or an AddedToken object; normalised to its string. */
const tokenField = customField((v, ctx): string | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (isRecord(v) && typeof v.content === 'string') return v.content;
  ctx.addIssue(`must be a token string or an object with a "content" string, got ${describeValue(v)}`);
  return z.NEVER;
});

const tokenListField = customField((v, ctx): string[] | undefined => {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) {
    ctx.addIssue(`must be a list of tokens, got ${describeValue(v)}`);
    return z.NEVER;
  }
  const out: string[] = [];
  v.forEach((t, i) => {
    if (typeof t === 'string') out.push(t);
    else if (isRecord(t) && typeof t.content === 'string') out.push(t.content);
    else ctx.addIssue({ code: 'custom', message: `must be a token string or an object with a "content" string, got ${describeValue(t)}`, path: [i], input: t });
  });
  return out;
});

const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'pad_token', 'unk_token', 'sep_token', 'cls_token', 'mask_token'] as const;
const specialTokenFields = Object.fromEntries(SPECIAL_TOKEN_KEYS.map((k) => [k, tokenField])) as Record<
  (typeof SPECIAL_TOKEN_KEYS)[number],
  typeof tokenField
>;

/** `chat_template` is one template, or a list of named ones (the unnamed call uses 'default', as in transformers). */
const chatTemplateField = customField((v, ctx): { template?: string; named?: Record<string, string> } | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return { template: v };
  if (Array.isArray(v)) {
    const named: Record<string, string> = {};
    v.forEach((t, i) => {
      if (isRecord(t) && typeof t.name === 'string' && typeof t.template === 'string') named[t.name] = t.template;
      else ctx.addIssue({ code: 'custom', message: `must be {"name": string, "template": string}, got ${describeValue(t)}`, path: [i], input: t });
    });
    return { template: named.default, named };
  }
  ctx.addIssue(`must be a template string or a list of {"name", "template"}, got ${describeValue(v)}`);
  return z.NEVER;
});

export const specialTokensMapSchema = z.looseObject({
  ...specialTokenFields,
  additional_special_tokens: tokenListField,
});
export type SpecialTokensMap = z.output<typeof specialTokensMapSchema>;

const tokenizerConfigFields = z.looseObject({
  ...specialTokenFields,
  additional_special_tokens: tokenListField,
  tokenizer_class: opt(z.string()),
  add_bos_token: opt(z.boolean()),
  add_eos_token: opt(z.boolean()),
  // transformers writes 1e30 for "no limit", so any positive number is allowed.
  model_max_length: opt(positiveNumber),
  padding_side: opt(z.enum(['left', 'right'])),
  truncation_side: opt(z.enum(['left', 'right'])),
  chat_template: chatTemplateField,
  added_tokens_decoder: opt(z.record(z.string().regex(/^\d+$/, { error: 'keys must be token ids' }), addedTokenSchema)),
});
type TokenizerConfigFields = z.output<typeof tokenizerConfigFields>;

/** T without key K, keeping T's index signature (Omit would keep only the index signature). */
type Without<T, K extends PropertyKey> = { [P in keyof T as P extends K ? never : P]: T[P] };

export type TokenizerConfig = Without<TokenizerConfigFields, 'chat_template'> & {
  /** The template an unnamed apply uses: the string form, or the list entry named 'default'. */
  chat_template?: string;
  /** Every named template when the file holds a list. */
  chat_templates?: Record<string, string>;
};

export const tokenizerConfigSchema = tokenizerConfigFields.transform(({ chat_template, ...rest }): TokenizerConfig => {
  // The cast only restores the pass-through index signature that a rest spread drops from the type.
  const passThrough = rest as Without<TokenizerConfigFields, 'chat_template'>;
  return { ...passThrough, chat_template: chat_template?.template, chat_templates: chat_template?.named };
});

// ---------------------------------------------------------------- generation_config.json

/** `eos_token_id` may be one id or several; always a list here. */
const tokenIdsField = customField((v, ctx): number[] | undefined => {
  if (v === undefined || v === null) return undefined;
  const ids = Array.isArray(v) ? v : [v];
  for (const id of ids) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      ctx.addIssue(`must be a token id or a list of token ids, got ${describeValue(v)}`);
      return z.NEVER;
    }
  }
  return ids as number[];
});

export const generationConfigSchema = z.looseObject({
  do_sample: opt(z.boolean()),
  temperature: opt(z.number().min(0)),
  top_k: opt(nonNegativeInt),
  top_p: opt(z.number().min(0).max(1)),
  max_new_tokens: opt(nonNegativeInt),
  max_length: opt(nonNegativeInt),
  min_length: opt(nonNegativeInt),
  num_beams: opt(positiveInt),
  eos_token_id: tokenIdsField,
  bos_token_id: opt(nonNegativeInt),
  pad_token_id: opt(nonNegativeInt),
  decoder_start_token_id: opt(nonNegativeInt),
  repetition_penalty: opt(positiveNumber),
});
export type GenerationConfig = z.output<typeof generationConfigSchema>;

// ---------------------------------------------------------------- preprocessor_config.json

/** A size after normalisation; which keys are set depends on the processor (checked combinations below). */
export interface ImageSizeDict {
  height?: number;
  width?: number;
  shortest_edge?: number;
  longest_edge?: number;
  min_pixels?: number;
  max_pixels?: number;
}
const SIZE_KEYS = ['height', 'width', 'shortest_edge', 'longest_edge', 'min_pixels', 'max_pixels'] as const;
const SIZE_FORMS = '{"shortest_edge"}, {"height", "width"}, {"longest_edge"} or a number';

/**
 * `size` / `crop_size`: {shortest_edge[, longest_edge]} | {height, width} | {longest_edge} | {min_pixels, max_pixels}
 * | [height, width] (→ {height, width}) | a number (legacy; kept as is because its meaning depends on the processor,
 * see resolveImageSize).
 */
const imageSizeField = customField((v, ctx): ImageSizeDict | number | undefined => {
  if (v === undefined || v === null) return undefined;
  const isSide = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x > 0;
  if (isSide(v)) return v;
  if (Array.isArray(v) && v.length === 2 && v.every(isSide)) return { height: v[0], width: v[1] };
  if (!isRecord(v)) {
    ctx.addIssue(`must be ${SIZE_FORMS}, got ${describeValue(v)}`);
    return z.NEVER;
  }
  const out: ImageSizeDict = {};
  for (const key of SIZE_KEYS) {
    const side = v[key];
    if (side === undefined || side === null) continue;
    if (!isSide(side)) {
      ctx.addIssue({ code: 'custom', message: `must be a positive whole number, got ${describeValue(side)}`, path: [key], input: side });
      return z.NEVER;
    }
    out[key] = side;
  }
  const hasHeight = out.height !== undefined;
  const hasWidth = out.width !== undefined;
  const valid =
    hasHeight !== hasWidth
      ? false
      : hasHeight || out.shortest_edge !== undefined || out.longest_edge !== undefined || out.min_pixels !== undefined || out.max_pixels !== undefined;
  if (!valid) {
    ctx.addIssue(`must be ${SIZE_FORMS}, got keys ${JSON.stringify(Object.keys(v))}`);
    return z.NEVER;
  }
  return out;
});

/** transformers' get_size_dict: a bare number is a square, or the shortest edge where the processor says so (CLIP). */
export function resolveImageSize(size: ImageSizeDict | number, options: { defaultToSquare: boolean }): ImageSizeDict {
  if (typeof size !== 'number') return size;
  return options.defaultToSquare ? { height: size, width: size } : { shortest_edge: size };
}

/** PIL's resampling filters by their enum value. */
export const PIL_RESAMPLE = ['nearest', 'lanczos', 'bilinear', 'bicubic', 'box', 'hamming'] as const;
export type ResampleFilter = (typeof PIL_RESAMPLE)[number];

const resampleField = customField((v, ctx): ResampleFilter | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < PIL_RESAMPLE.length) return PIL_RESAMPLE[v];
  if (typeof v === 'string' && (PIL_RESAMPLE as readonly string[]).includes(v.toLowerCase())) return v.toLowerCase() as ResampleFilter;
  ctx.addIssue(`must be a PIL resampling filter 0-5 (${PIL_RESAMPLE.map((n, i) => `${i} ${n}`).join(', ')}), got ${describeValue(v)}`);
  return z.NEVER;
});

/** image_mean / image_std: one number per RGB channel; a std must also be positive (it divides). */
function channelsField(positive: boolean) {
  return customField((v, ctx): [number, number, number] | undefined => {
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) {
      ctx.addIssue(`must be a list of 3 numbers, got ${describeValue(v)}`);
      return z.NEVER;
    }
    if (v.length !== 3) {
      ctx.addIssue(`must have 3 numbers, got ${v.length}`);
      return z.NEVER;
    }
    for (const [i, x] of v.entries()) {
      if (typeof x !== 'number' || !Number.isFinite(x) || (positive && x <= 0)) {
        ctx.addIssue({ code: 'custom', message: `must be a ${positive ? 'positive ' : ''}number, got ${describeValue(x)}`, path: [i], input: x });
        return z.NEVER;
      }
    }
    return [v[0], v[1], v[2]];
  });
}

export const preprocessorConfigSchema = z.looseObject({
  image_processor_type: opt(z.string()),
  feature_extractor_type: opt(z.string()),
  processor_class: opt(z.string()),
  do_resize: opt(z.boolean()),
  size: imageSizeField,
  resample: resampleField,
  do_center_crop: opt(z.boolean()),
  crop_size: imageSizeField,
  do_rescale: opt(z.boolean()),
  rescale_factor: opt(positiveNumber),
  do_normalize: opt(z.boolean()),
  image_mean: channelsField(false),
  image_std: channelsField(true),
  do_convert_rgb: opt(z.boolean()),
});
export type PreprocessorConfig = z.output<typeof preprocessorConfigSchema>;

// ---------------------------------------------------------------- processor_config.json

export const processorConfigSchema = z.looseObject({
  processor_class: opt(z.string()),
  patch_size: opt(positiveInt),
  vision_feature_select_strategy: opt(z.enum(['default', 'full'])),
  num_additional_image_tokens: opt(nonNegativeInt),
  image_token: opt(z.string()),
  num_query_tokens: opt(positiveInt),
  image_seq_length: opt(positiveInt),
});
export type ProcessorConfig = z.output<typeof processorConfigSchema>;

/** chat_template.json (processors): {"chat_template": "..."}. */
export const chatTemplateFileSchema = z.looseObject({ chat_template: chatTemplateField });

// ---------------------------------------------------------------- messages

/** Phrases zod's built-in issues as "must be …, got …" so a message reads `file: field must be …`. */
const errorMap: z.core.$ZodErrorMap = (issue) => {
  const got = `got ${describeValue(issue.input)}`;
  switch (issue.code) {
    case 'invalid_type':
      return `must be ${issue.expected === 'int' ? 'a whole number' : `a${/^[aeiou]/.test(issue.expected) ? 'n' : ''} ${issue.expected}`}, ${got}`;
    case 'too_small':
      return `must be ${issue.inclusive ? 'at least' : 'greater than'} ${issue.minimum}, ${got}`;
    case 'too_big':
      return `must be ${issue.inclusive ? 'at most' : 'less than'} ${issue.maximum}, ${got}`;
    case 'invalid_value':
      return `must be one of ${issue.values.map((x) => JSON.stringify(x)).join(', ')}, ${got}`;
    default:
      return undefined;
  }
};

function pathText(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : out ? `.${String(key)}` : String(key);
  return out;
}

/** Parses one config file's JSON value; returns the normalised value or a message naming the file and field. */
export function parseConfig<T extends z.ZodType>(
  schema: T,
  value: unknown,
  file: string,
): { ok: true; value: z.output<T> } | { ok: false; message: string } {
  if (!isRecord(value)) return { ok: false, message: `${file}: must hold a JSON object, got ${describeValue(value)}` };
  const result = schema.safeParse(value, { error: errorMap });
  if (result.success) return { ok: true, value: result.data };
  const parts = result.error.issues.slice(0, 3).map((i) => `${pathText(i.path) || '(root)'} ${i.message}`);
  const more = result.error.issues.length > 3 ? ` (and ${result.error.issues.length - 3} more)` : '';
  return { ok: false, message: `${file}: ${parts.join('; ')}${more}` };
}
