import { describe, expect, it } from 'vitest';
import {
  type ChatMessage,
  PromptError,
  nodeTypes,
  placeImage,
  renderChainOfThought,
  renderChatNode,
  renderChatPrompt,
  renderFewShotPrompt,
  renderInstruction,
} from './prompts.js';

const convo: ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: '<image>\nWhat is this?' },
  { role: 'assistant', content: 'A red circle.' },
  { role: 'user', content: 'And its size?' },
];

describe('renderChatPrompt', () => {
  it('plain: one message per line, nothing added', () => {
    expect(renderChatPrompt('plain', [{ role: 'user', content: 'a photo of' }])).toBe('a photo of');
    expect(renderChatPrompt('plain', convo)).toBe('Be brief.\n<image>\nWhat is this?\nA red circle.\nAnd its size?');
  });

  it('vicuna v1.1', () => {
    expect(renderChatPrompt('vicuna', convo)).toBe(
      'Be brief. USER: <image>\nWhat is this? ASSISTANT: A red circle.</s>USER: And its size? ASSISTANT:',
    );
    expect(renderChatPrompt('vicuna', [{ role: 'user', content: 'hi' }], { addGenerationPrompt: false })).toBe('USER: hi ');
  });

  it('llama-2 with the system prompt inside the first [INST]', () => {
    expect(renderChatPrompt('llama-2', convo)).toBe(
      '<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n<image>\nWhat is this? [/INST] A red circle. </s><s>[INST] And its size? [/INST]',
    );
    expect(renderChatPrompt('llama-2', [{ role: 'user', content: 'hi' }], { bosToken: '[BOS]' })).toBe('[BOS][INST] hi [/INST]');
  });

  it('chatml', () => {
    expect(renderChatPrompt('chatml', convo)).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n' +
        '<|im_start|>user\n<image>\nWhat is this?<|im_end|>\n' +
        '<|im_start|>assistant\nA red circle.<|im_end|>\n' +
        '<|im_start|>user\nAnd its size?<|im_end|>\n' +
        '<|im_start|>assistant\n',
    );
  });

  it('custom Jinja templates render, and broken ones name the problem', () => {
    const src = '{% for m in messages %}[{{ m.role }}] {{ m.content }}|{% endfor %}{% if add_generation_prompt %}>{% endif %}';
    expect(renderChatPrompt({ source: src }, [{ role: 'user', content: 'x' }])).toBe('[user] x|>');
    expect(() => renderChatPrompt({ source: '{% for %}' }, convo)).toThrow(/custom chat template.*does not parse/);
    expect(() => renderChatPrompt('plain', [])).toThrow(PromptError);
  });
});

describe('prompt node rendering', () => {
  const chat = nodeTypes.find((t) => t.info.type === 'prompt.chat');
  const parse = (p: Record<string, unknown>) => chat?.params.parse(p) as Parameters<typeof renderChatNode>[0];

  it('places the image placeholder and uses the style default system prompt', () => {
    const out = renderChatNode(parse({ style: 'vicuna' }), 'What colour is the square?');
    expect(out).toBe(
      "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions. " +
        'USER: <image>\nWhat colour is the square? ASSISTANT:',
    );
    expect(renderChatNode(parse({ style: 'chatml', image_position: 'none' }), 'hi')).toBe(
      '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(renderChatNode(parse({ style: 'plain', system: 'S' }), 'x <image> y')).toBe('S\nx <image> y');
  });

  it('custom style needs a template', () => {
    expect(() => renderChatNode(parse({ style: 'custom' }), 'x')).toThrow(/template/);
  });

  it('placeImage keeps an existing placeholder', () => {
    expect(placeImage('a <image> b', '<image>', 'before')).toBe('a <image> b');
    expect(placeImage('q', '<image>', 'after')).toBe('q\n<image>');
  });

  it('instruction, chain of thought and few-shot', () => {
    expect(renderInstruction({ template: 'Question: {input} Answer:' }, 'how many?')).toBe('Question: how many? Answer:');
    expect(() => renderInstruction({ template: 'no slot' }, 'x')).toThrow(PromptError);
    // LLaVA's processor: each <image> becomes one token per image feature; the user's text is never expanded.
    expect(renderInstruction({ template: 'USER: <image>\n{input} ASSISTANT:', image_token: '<image>', image_tokens: 3 }, 'a <image>?')).toBe(
      'USER: <image><image><image>\na <image>? ASSISTANT:',
    );
    expect(renderChainOfThought('Q?', "Let's think step by step.", 'after')).toBe("Q?\nLet's think step by step.");
    const fs = renderFewShotPrompt(
      [
        { image: 'a.png', text: 'A red circle.' },
        { image: '', text: 'Shapes are fun.' },
        { image: 'b.png', text: 'A blue square.' },
      ],
      'A',
      { placeholder: '<image>', separator: '<|endofchunk|>', queryHasImage: true },
    );
    expect(fs.text).toBe('<image>A red circle.<|endofchunk|>Shapes are fun.<|endofchunk|><image>A blue square.<|endofchunk|><image>A');
    expect(fs.exampleImages).toEqual(['a.png', 'b.png']);
  });

  it('few-shot output shape counts the images', () => {
    const def = nodeTypes.find((t) => t.info.type === 'prompt.few_shot');
    const params = def?.params.parse({ examples: [{ image: 'a.png', text: 'x' }, { text: 'y' }] });
    expect(def?.outputShapes(params, { pixel_values: [1, 3, 64, 64] })).toEqual({ pixel_values: [2, 3, 64, 64] });
    expect(def?.outputShapes(params, {})).toEqual({ pixel_values: [1, 3, 64, 64] });
  });

  it('the instruction template param must contain {input}', () => {
    const def = nodeTypes.find((t) => t.info.type === 'prompt.instruction');
    expect(def?.params.safeParse({ template: 'Describe:' }).success).toBe(false);
  });
});
