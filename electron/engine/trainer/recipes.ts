// Training recipes: presets that decide what trains (freezing by node family/type), the objective, the text the
// samples turn into, and the reference hyper-parameters (research/vlm-components.md §5.4, peft-training.md §3).

import type { NodeFamily } from '../../nodes/types.js';
import { isGeneratingDecoder } from '../../nodes/imported.js';
import type { DocNode } from '../document.js';

export const RECIPE_NAMES = [
  'lm',
  'blip2-stage2',
  'instructblip',
  'minigpt4-stage1',
  'llava-stage1',
  'llava-stage2',
  'flamingo',
  'clip',
  'encoder-contrastive',
  'captioning',
  'vqa',
  'instruction',
  'nextgpt-output',
  'text-to-image',
  'nextgpt-align',
  'bert-mlm',
  'vit-mrm',
  'blip2-stage1',
] as const;
export type RecipeName = (typeof RECIPE_NAMES)[number];

/** Recipes the issue names that this trainer does not implement yet (named so the error can say so). */
export const PLANNED_RECIPES: readonly string[] = [];

export type Objective = 'lm' | 'itc' | 'diffusion' | 'align' | 'mlm' | 'mrm' | 'blip2-stage1';
/**
 * What text a sample becomes: a caption after the graph's own prompt, a VQA answer after its question, a chat, or
 * (generation) the caption as the user's request for an image, the image being the target.
 */
export type Task = 'caption' | 'vqa' | 'conversation' | 'generation';

export interface Hyper {
  learningRate: number;
  warmupRatio: number;
  weightDecay: number;
  maxGradNorm: number;
  batchSize: number;
}

export interface Recipe {
  name: RecipeName;
  summary: string;
  objective: Objective;
  task: Task;
  /** What `trains` selects, for error messages. */
  trainsWhat: string;
  /** true: trains, false: frozen, undefined: keep the document's flag. Adapters always train. */
  trains(node: DocNode, family: NodeFamily): boolean | undefined;
  hyper: Hyper;
  /** Hyper-parameters when `--adapter` is given (PEFT defaults: lr 2e-4). */
  adapterHyper?: Partial<Hyper>;
}

const base: Hyper = { learningRate: 1e-4, warmupRatio: 0.03, weightDecay: 0.05, maxGradNorm: 1.0, batchSize: 4 };
const isProjector = (f: NodeFamily) => f === 'input-projector';
/** The LLM itself (decoder and its token embedding), not the nodes around it. */
const isDecoder = (n: DocNode) => n.type === 'llm.decoder' || n.type === 'llm.embed_tokens' || isGeneratingDecoder(n);
const onlyFamilies = (...families: NodeFamily[]) => (_n: DocNode, f: NodeFamily) => families.includes(f);

export const RECIPES: Record<RecipeName, Recipe> = {
  lm: {
    name: 'lm',
    trainsWhat: 'the LLM decoder (and its tied embedding)',
    summary: 'Language modelling on the decoder itself: captions (after the graph prompt) are the targets.',
    objective: 'lm',
    task: 'caption',
    trains: (n, f) => (f === 'llm' && (n.type === 'llm.decoder' || n.type === 'llm.embed_tokens')) || isGeneratingDecoder(n),
    hyper: { ...base, learningRate: 1e-3, weightDecay: 0.01 },
  },
  'blip2-stage1': {
    name: 'blip2-stage1',
    trainsWhat: 'the Q-Former',
    summary:
      'BLIP-2 stage 1 (representation learning): the Q-Former with ITC (learnable temperature from 0.07), ITM on hard ' +
      'negatives drawn from the ITC similarities, and ITG (multimodal causal), sharing one set of weights; ViT frozen.',
    objective: 'blip2-stage1',
    task: 'caption',
    trains: (n) => n.type === 'projector.qformer',
    hyper: { ...base, learningRate: 1e-4 },
  },
  'blip2-stage2': {
    name: 'blip2-stage2',
    trainsWhat: 'input projectors (Q-Former, linear)',
    summary: 'BLIP-2 stage 2: Q-Former + projection learn to prompt the frozen LLM with captions (ViT and LLM frozen).',
    objective: 'lm',
    task: 'caption',
    trains: (_n, f) => isProjector(f),
    hyper: { ...base, learningRate: 1e-4 },
  },
  instructblip: {
    name: 'instructblip',
    trainsWhat: 'input projectors (Q-Former, linear)',
    summary: 'InstructBLIP: instruction-aware Q-Former + projection trained on answers only (ViT and LLM frozen).',
    objective: 'lm',
    task: 'vqa',
    trains: (_n, f) => isProjector(f),
    hyper: { ...base, learningRate: 1e-5 },
  },
  'minigpt4-stage1': {
    name: 'minigpt4-stage1',
    trainsWhat: 'projector.linear nodes (llama_proj)',
    summary: 'MiniGPT-4 stage 1: only the linear llama_proj trains (ViT, Q-Former and LLM frozen).',
    objective: 'lm',
    task: 'caption',
    trains: (n) => n.type === 'projector.linear',
    hyper: { ...base, learningRate: 1e-4 },
  },
  'llava-stage1': {
    name: 'llava-stage1',
    trainsWhat: 'input projectors',
    summary: 'LLaVA stage 1 (feature alignment): only the projector trains, on captions (CLIP and LLM frozen).',
    objective: 'lm',
    task: 'caption',
    trains: (_n, f) => isProjector(f),
    hyper: { ...base, learningRate: 1e-3, weightDecay: 0 },
  },
  'llava-stage2': {
    name: 'llava-stage2',
    trainsWhat: 'input projectors and the LLM decoder',
    summary: 'LLaVA stage 2 (instruction tuning): projector + LLM on conversations, user turns masked (or LLM adapters).',
    objective: 'lm',
    task: 'conversation',
    trains: (n, f) => isProjector(f) || n.type === 'llm.decoder' || n.type === 'llm.embed_tokens',
    hyper: { ...base, learningRate: 2e-5, weightDecay: 0 },
    adapterHyper: { learningRate: 2e-4 },
  },
  flamingo: {
    name: 'flamingo',
    trainsWhat: 'input projectors (perceiver, gated cross-attention)',
    summary: 'OpenFlamingo: the perceiver resampler and gated cross-attention train; vision encoder and LM frozen.',
    objective: 'lm',
    task: 'caption',
    trains: (_n, f) => isProjector(f),
    hyper: { ...base, learningRate: 1e-4, weightDecay: 0.1 },
  },
  clip: {
    name: 'clip',
    trainsWhat: 'encoders',
    summary: 'CLIP: symmetric InfoNCE between image and text embeddings, both towers and the temperature train.',
    objective: 'itc',
    task: 'caption',
    trains: onlyFamilies('encoder'),
    hyper: { ...base, learningRate: 5e-4, weightDecay: 0.2 },
  },
  'encoder-contrastive': {
    name: 'encoder-contrastive',
    trainsWhat: 'encoders',
    summary: 'CLIP-style ITC between any image encoder and any text encoder of the graph (the zoo pre-trains with it).',
    objective: 'itc',
    task: 'caption',
    trains: onlyFamilies('encoder'),
    hyper: { ...base, learningRate: 5e-4, weightDecay: 0.1 },
  },
  'nextgpt-output': {
    name: 'nextgpt-output',
    trainsWhat: 'the output projector (and the LLM and UNet where they are not frozen)',
    summary:
      'NExT-GPT output alignment: the LLM (frozen) reads a request for a caption\'s image and emits signal tokens; the ' +
      'output projector learns to turn them into conditioning the UNet denoises the image with (diffusion MSE, ' +
      'uniform t, 10% conditioning dropout for classifier-free guidance). The UNet stays frozen, as in NExT-GPT, and ' +
      'the LLM learns through adapters (--adapter), unless either is unfrozen on the canvas.',
    objective: 'diffusion',
    task: 'generation',
    trains: (n, f) => (f === 'output-projector' ? true : n.type === 'generator.unet' || isDecoder(n) ? undefined : false),
    hyper: { ...base, learningRate: 1e-4, weightDecay: 0 },
  },
  'nextgpt-align': {
    name: 'nextgpt-align',
    trainsWhat: 'the output projector (and the LLM where it is not frozen)',
    summary:
      'NExT-GPT decoding-side alignment: the output projector learns to reproduce, from the signal tokens\' hidden ' +
      'states, the conditioning a text-to-image graph\'s text encoder gives the same request (MSE), so a UNet trained ' +
      'on that text encoder draws what the LLM asks for. Needs the text-to-image graph as the teacher (--teacher).',
    objective: 'align',
    task: 'generation',
    trains: (n, f) => (f === 'output-projector' ? true : isDecoder(n) ? undefined : false),
    hyper: { ...base, learningRate: 1e-3, weightDecay: 0 },
  },
  'text-to-image': {
    name: 'text-to-image',
    trainsWhat: 'the UNet',
    summary:
      'Text-to-image pre-training of the generator (Stable Diffusion-style): the UNet learns to denoise each caption\'s ' +
      'image conditioned on a frozen text encoder\'s states (diffusion MSE, uniform t, 10% conditioning dropout).',
    objective: 'diffusion',
    task: 'generation',
    trains: (n) => n.type === 'generator.unet',
    hyper: { ...base, learningRate: 1e-4, weightDecay: 0 },
  },
  'bert-mlm': {
    name: 'bert-mlm',
    trainsWhat: 'encoders',
    summary: 'Masked language modelling on captions: 15% of tokens chosen (80% [MASK], 10% random, 10% kept), BERT head tied to the word embedding.',
    objective: 'mlm',
    task: 'caption',
    trains: onlyFamilies('encoder'),
    hyper: { ...base, learningRate: 1e-4, weightDecay: 0.01, warmupRatio: 0.1 },
  },
  'vit-mrm': {
    name: 'vit-mrm',
    trainsWhat: 'encoders',
    summary: 'Masked region modelling: 40% of the image patches blanked, a linear head reconstructs their pixels (MSE on masked patches).',
    objective: 'mrm',
    task: 'caption',
    trains: onlyFamilies('encoder'),
    hyper: { ...base, learningRate: 1.5e-4, weightDecay: 0.05 },
  },
  // The Train panel's recipes: the document's own freeze flags and adapters decide what trains.
  captioning: {
    name: 'captioning',
    trainsWhat: 'the nodes the document leaves unfrozen',
    summary: 'Captioning with the graph as drawn: frozen flags and adapters on the canvas decide what trains.',
    objective: 'lm',
    task: 'caption',
    trains: () => undefined,
    hyper: { ...base, learningRate: 1e-4 },
  },
  vqa: {
    name: 'vqa',
    trainsWhat: 'the nodes the document leaves unfrozen',
    summary: 'Visual question answering with the graph as drawn; the loss covers the answer only.',
    objective: 'lm',
    task: 'vqa',
    trains: () => undefined,
    hyper: { ...base, learningRate: 1e-4 },
  },
  instruction: {
    name: 'instruction',
    trainsWhat: 'the nodes the document leaves unfrozen',
    summary: 'Multi-turn instruction tuning with the graph as drawn; user turns are masked.',
    objective: 'lm',
    task: 'conversation',
    trains: () => undefined,
    hyper: { ...base, learningRate: 1e-4 },
  },
};

export function recipeByName(name: string): Recipe {
  if ((RECIPE_NAMES as readonly string[]).includes(name)) return RECIPES[name as RecipeName];
  if ((PLANNED_RECIPES as readonly string[]).includes(name)) {
    throw new Error(`recipe '${name}' is not implemented yet (available: ${RECIPE_NAMES.join(', ')})`);
  }
  throw new Error(`unknown recipe '${name}' (available: ${RECIPE_NAMES.join(', ')})`);
}
