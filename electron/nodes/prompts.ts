// Prompt nodes (host side): chat templates, instruction wrappers, few-shot examples with interleaved images, and
// chain-of-thought prompts. Each turns text into the text the tokenizer sees; the rendering is pure and tested here.

import { Template } from '@huggingface/jinja';
import { z } from 'zod';
import type { NodeTypeDef, ResolvedShapes } from './types.js';

export class PromptError extends Error {
  override name = 'PromptError';
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export const chatMessageSchema = z.strictObject({
  role: z.enum(['system', 'user', 'assistant']),
  content: z.string(),
});

export const CHAT_STYLES = ['plain', 'vicuna', 'llama-2', 'chatml'] as const;
export type ChatStyle = (typeof CHAT_STYLES)[number];

const NL = '{{ "\\n" }}';

/**
 * Jinja sources of the shipped styles. Variables: messages, add_generation_prompt, bos_token, eos_token.
 * Newlines are written as expressions so whitespace control never eats them.
 */
export const CHAT_TEMPLATES: Record<ChatStyle, string> = {
  // Contents one per line; the model continues the last line (BLIP-2 style "a photo of").
  plain: `{%- for m in messages -%}{{ m.content }}{% if not loop.last %}${NL}{% endif %}{%- endfor -%}`,
  // Vicuna v1.1: "SYSTEM USER: q ASSISTANT: a</s>USER: q2 ASSISTANT:"
  vicuna:
    `{%- if messages[0].role == 'system' -%}{% set turns = messages[1:] %}{% if messages[0].content %}{{ messages[0].content }} {% endif %}` +
    `{%- else -%}{% set turns = messages %}{%- endif -%}` +
    `{%- for m in turns -%}` +
    `{%- if m.role == 'user' -%}USER: {{ m.content }} {% elif m.role == 'assistant' %}ASSISTANT: {{ m.content }}{{ eos_token }}{% endif -%}` +
    `{%- endfor -%}` +
    `{%- if add_generation_prompt -%}ASSISTANT:{%- endif -%}`,
  // LLaMA-2 chat: the system prompt sits inside the first [INST] block; the prompt ends after [/INST].
  'llama-2':
    `{%- set ns = namespace(sys='') -%}` +
    `{%- for m in messages -%}` +
    `{%- if m.role == 'system' -%}{% set ns.sys = m.content %}` +
    `{%- elif m.role == 'user' -%}{{ bos_token }}[INST] ` +
    `{%- if ns.sys %} <<SYS>>${NL}{{ ns.sys }}${NL}<</SYS>>${NL}${NL}{% set ns.sys = '' %}{% else %} {% endif -%}` +
    `{{ m.content }} [/INST]` +
    `{%- elif m.role == 'assistant' %} {{ m.content }} {{ eos_token }}{%- endif -%}` +
    `{%- endfor -%}`,
  // ChatML: <|im_start|>role\ncontent<|im_end|>\n ... <|im_start|>assistant\n
  chatml:
    `{%- for m in messages -%}<|im_start|>{{ m.role }}${NL}{{ m.content }}<|im_end|>${NL}{%- endfor -%}` +
    `{%- if add_generation_prompt -%}<|im_start|>assistant${NL}{%- endif -%}`,
};

/** The system prompt a style uses when the node gives none. */
export const DEFAULT_SYSTEM: Record<ChatStyle, string> = {
  plain: '',
  vicuna:
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions.",
  'llama-2': '',
  chatml: '',
};

export interface RenderOptions {
  addGenerationPrompt?: boolean;
  bosToken?: string;
  eosToken?: string;
}

const compiled = new Map<string, Template>();

function compile(source: string, what: string): Template {
  let t = compiled.get(source);
  if (!t) {
    try {
      t = new Template(source);
    } catch (e) {
      throw new PromptError(`${what}: the chat template does not parse: ${(e as Error).message}`);
    }
    compiled.set(source, t);
  }
  return t;
}

/** Renders messages with a shipped style or a custom Jinja template (`{ source }`), as HF chat templates do. */
export function renderChatPrompt(
  template: ChatStyle | { source: string },
  messages: readonly ChatMessage[],
  options: RenderOptions = {},
): string {
  const source = typeof template === 'string' ? CHAT_TEMPLATES[template] : template.source;
  const what = typeof template === 'string' ? `chat style '${template}'` : 'custom chat template';
  if (source === undefined) throw new PromptError(`unknown chat style '${String(template)}' (known: ${CHAT_STYLES.join(', ')})`);
  if (messages.length === 0) throw new PromptError(`${what}: there are no messages to render`);
  const t = compile(source, what);
  try {
    return t.render({
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: options.addGenerationPrompt ?? true,
      bos_token: options.bosToken ?? '<s>',
      eos_token: options.eosToken ?? '</s>',
    });
  } catch (e) {
    throw new PromptError(`${what}: rendering failed: ${(e as Error).message}`);
  }
}

/** Puts the image placeholder before or after the text unless the text already places it. */
export function placeImage(text: string, placeholder: string, position: 'before' | 'after' | 'none'): string {
  if (position === 'none' || placeholder === '' || text.includes(placeholder)) return text;
  return position === 'before' ? `${placeholder}\n${text}` : `${text}\n${placeholder}`;
}

// ---------------------------------------------------------------------------------------------------------------
// prompt.chat

export const chatParams = z.strictObject({
  style: z.enum([...CHAT_STYLES, 'custom']).default('plain'),
  template: z.string().default(''),
  system: z.string().nullable().default(null),
  history: z.array(chatMessageSchema).default([]),
  image_placeholder: z.string().default('<image>'),
  image_position: z.enum(['before', 'after', 'none']).default('before'),
  add_generation_prompt: z.boolean().default(true),
  bos_token: z.string().default('<s>'),
  eos_token: z.string().default('</s>'),
});
export type ChatPromptParams = z.infer<typeof chatParams>;

/** What the prompt.chat host step computes: the user's text (and an optional system text) → the prompt text. */
export function renderChatNode(params: ChatPromptParams, userText: string, systemText?: string): string {
  if (params.style === 'custom' && params.template.trim() === '') {
    throw new PromptError("style 'custom' needs a Jinja template in the 'template' param");
  }
  const style = params.style === 'custom' ? { source: params.template } : params.style;
  const system = systemText ?? params.system ?? (params.style === 'custom' ? '' : DEFAULT_SYSTEM[params.style]);
  const messages: ChatMessage[] = [];
  if (system) messages.push({ role: 'system', content: system });
  messages.push(...params.history);
  messages.push({ role: 'user', content: placeImage(userText, params.image_placeholder, params.image_position) });
  return renderChatPrompt(style, messages, {
    addGenerationPrompt: params.add_generation_prompt,
    bosToken: params.bos_token,
    eosToken: params.eos_token,
  });
}

/** Text ports carry no tensor shape. */
const textOut = (): ResolvedShapes => ({});

const chatNode: NodeTypeDef<typeof chatParams> = {
  info: {
    type: 'prompt.chat',
    typeVersion: 1,
    family: 'prompt',
    title: 'Chat prompt',
    aliases: ['chat'],
    inputs: [
      { name: 'text', kind: 'text', doc: "The user's message; may contain the image placeholder." },
      { name: 'system', kind: 'text', optional: true, doc: 'Overrides the system param when connected.' },
    ],
    outputs: [{ name: 'text', kind: 'text', doc: 'The rendered prompt, ready for the tokenizer.' }],
    doc: {
      summary:
        'Wraps the user message in a chat template (plain, Vicuna, LLaMA-2, ChatML or your own Jinja) and marks where the image goes with <image>.',
      usedBy: ['LLaVA (Vicuna / LLaMA-2 templates)', 'MiniGPT-4 (Vicuna)', 'InstructBLIP (Vicuna)', 'Qwen-VL (ChatML)'],
      details:
        'Rendered with @huggingface/jinja exactly like Hugging Face chat templates. The merge node later replaces each <image> with the image tokens.',
    },
  },
  params: chatParams,
  paramDocs: {
    style: "Template family: plain (one line per message), vicuna, llama-2, chatml, or custom (the 'template' param).",
    template: 'Jinja source used when style is custom; variables: messages, add_generation_prompt, bos_token, eos_token.',
    system: 'System prompt; null uses the style default (Vicuna has one, the others none).',
    history: 'Earlier turns ({role, content}) placed before the user message.',
    image_placeholder: 'Text that marks where the image features go.',
    image_position: 'Where to put the placeholder when the message has none: before or after the text, or none.',
    add_generation_prompt: 'End with the assistant cue (e.g. "ASSISTANT:") so the model answers.',
    bos_token: 'Begin-of-sequence text the template writes (LLaMA-2 style); match your tokenizer.',
    eos_token: 'End-of-sequence text written after assistant turns; match your tokenizer.',
  },
  outputShapes: textOut,
  host: 'prompt.chat',
};

// ---------------------------------------------------------------------------------------------------------------
// prompt.instruction

export const instructionParams = z.strictObject({
  template: z
    .string()
    .default('Question: {input} Answer:')
    .refine((t) => t.includes('{input}'), { message: "the template must contain '{input}'" }),
  image_token: z.string().min(1).default('<image>'),
  image_tokens: z.number().int().min(1).max(16384).default(1),
});
export type InstructionParams = z.infer<typeof instructionParams>;

/**
 * Places the input into the template; each `image_token` of the template then expands to `image_tokens` copies, as
 * LLaVA's processor expands `<image>` to one token per image feature (processor_config.json).
 */
export function renderInstruction(params: Pick<InstructionParams, 'template'> & Partial<InstructionParams>, input: string): string {
  const { template } = params;
  if (!template.includes('{input}')) throw new PromptError(`instruction template '${template}' has no {input}`);
  const withImages = params.image_token && (params.image_tokens ?? 1) > 1 ? template.split(params.image_token).join(params.image_token.repeat(params.image_tokens ?? 1)) : template;
  return withImages.split('{input}').join(input);
}

const instructionNode: NodeTypeDef<typeof instructionParams> = {
  info: {
    type: 'prompt.instruction',
    typeVersion: 1,
    family: 'prompt',
    title: 'Instruction',
    aliases: ['instruction'],
    inputs: [{ name: 'text', kind: 'text', doc: 'The question or task text.' }],
    outputs: [{ name: 'text', kind: 'text' }],
    doc: {
      summary: 'Places the input into an instruction template such as "Question: {input} Answer:".',
      usedBy: ['BLIP-2 zero-shot VQA', 'InstructBLIP', 'Flamingo VQA prompts'],
    },
  },
  params: instructionParams,
  paramDocs: {
    template: "The instruction text; every '{input}' is replaced by the input text.",
    image_token: 'The image placeholder the template may contain (LLaVA: <image>).',
    image_tokens: 'How many tokens each image placeholder expands to: one per image feature (LLaVA-1.5: 576), 1 = as written.',
  },
  outputShapes: textOut,
  host: 'prompt.instruction',
};

// ---------------------------------------------------------------------------------------------------------------
// prompt.few_shot (Flamingo-style in-context examples with interleaved images)

export const fewShotExampleSchema = z.strictObject({
  /** Image file of the example ('' for a text-only example). */
  image: z.string().default(''),
  text: z.string(),
});
export type FewShotExample = z.infer<typeof fewShotExampleSchema>;

export const fewShotParams = z.strictObject({
  examples: z.array(fewShotExampleSchema).default([]),
  image_placeholder: z.string().default('<image>'),
  separator: z.string().default('<|endofchunk|>'),
  image_size: z.number().int().min(8).max(1024).default(64),
});

export interface FewShotPrompt {
  text: string;
  /** Image files in the order their placeholders appear; the query image (if any) follows them. */
  exampleImages: string[];
}

/** Interleaves examples and the query: "<image>caption<|endofchunk|><image>query". */
export function renderFewShotPrompt(
  examples: readonly FewShotExample[],
  query: string,
  opts: { placeholder: string; separator: string; queryHasImage: boolean },
): FewShotPrompt {
  const parts: string[] = [];
  const exampleImages: string[] = [];
  for (const ex of examples) {
    if (ex.image) exampleImages.push(ex.image);
    parts.push(`${ex.image ? opts.placeholder : ''}${ex.text}${opts.separator}`);
  }
  parts.push(`${opts.queryHasImage ? opts.placeholder : ''}${query}`);
  return { text: parts.join(''), exampleImages };
}

const fewShotNode: NodeTypeDef<typeof fewShotParams> = {
  info: {
    type: 'prompt.few_shot',
    typeVersion: 1,
    family: 'prompt',
    title: 'In-context examples',
    aliases: ['few-shot', 'fewshot'],
    inputs: [
      { name: 'text', kind: 'text', doc: 'The query text that follows the examples.' },
      { name: 'pixel_values', kind: 'image', shape: [1, 3, 'H', 'W'], optional: true, doc: 'The query image.' },
    ],
    outputs: [
      { name: 'text', kind: 'text', doc: 'Examples and query interleaved with image placeholders.' },
      { name: 'pixel_values', kind: 'image', shape: ['N', 3, 'H', 'W'], doc: 'Example images then the query image.' },
    ],
    doc: {
      summary:
        'Few-shot prompting with interleaved images: each example contributes "<image>text<|endofchunk|>", then the query follows.',
      usedBy: ['Flamingo / OpenFlamingo few-shot captioning and VQA'],
      details: 'Images are returned in placeholder order so a vision encoder can embed them in one batch.',
    },
  },
  params: fewShotParams,
  paramDocs: {
    examples: 'Examples as {image, text}; image is a file path, or empty for a text-only example.',
    image_placeholder: 'Marks where each image goes.',
    separator: 'Ends each example (OpenFlamingo uses <|endofchunk|>).',
    image_size: 'Square size the example images are resized to (match the vision encoder).',
  },
  outputShapes(params, inputs) {
    const query = inputs.pixel_values;
    const size = query ? query.slice(2) : [params.image_size, params.image_size];
    const count = params.examples.filter((e) => e.image).length + (query ? 1 : 0);
    return { pixel_values: [count, 3, ...size] };
  },
  host: 'prompt.few_shot',
};

// ---------------------------------------------------------------------------------------------------------------
// prompt.chain_of_thought

export const cotParams = z.strictObject({
  trigger: z.string().default("Let's think step by step."),
  position: z.enum(['after', 'before']).default('after'),
});

/** Zero-shot chain of thought: the question with a reasoning trigger after (or before) it. */
export function renderChainOfThought(question: string, trigger: string, position: 'after' | 'before'): string {
  if (!trigger) return question;
  return position === 'after' ? `${question}\n${trigger}` : `${trigger}\n${question}`;
}

const cotNode: NodeTypeDef<typeof cotParams> = {
  info: {
    type: 'prompt.chain_of_thought',
    typeVersion: 1,
    family: 'prompt',
    title: 'Chain-of-thought prompt',
    aliases: ['cot'],
    inputs: [{ name: 'text', kind: 'text', doc: 'The question.' }],
    outputs: [{ name: 'text', kind: 'text' }],
    doc: {
      summary: 'Adds a reasoning trigger ("Let\'s think step by step.") so the model writes its reasoning before the answer.',
      usedBy: ['Multimodal-CoT', 'LLaVA / MiniGPT-4 reasoning prompts'],
    },
  },
  params: cotParams,
  paramDocs: {
    trigger: 'The sentence that asks for step-by-step reasoning; empty leaves the question unchanged.',
    position: 'Put the trigger after the question (zero-shot CoT) or before it.',
  },
  outputShapes: textOut,
  host: 'prompt.chain_of_thought',
};

export const nodeTypes: NodeTypeDef[] = [chatNode, instructionNode, fewShotNode, cotNode];
