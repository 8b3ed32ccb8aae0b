// Task heads (host side): turn embeddings into an answer. CLIP zero-shot classification needs two pieces: the
// candidate labels as one padded token batch (so the CLIP text encoder embeds all of them in one run), and the head
// that scores the image against every label by cosine similarity and names the best one.

import { z } from 'zod';
import type { NodeTypeDef } from './types.js';

/** Shapes-dataset classes, phrased as CLIP prompts ("a photo of a {label}"). */
export const DEFAULT_LABELS = [
  'a photo of a red circle',
  'a photo of a green square',
  'a photo of a blue triangle',
  'a photo of a yellow star',
  'a photo of a purple diamond',
  'a photo of an orange hexagon',
];

// ---------------------------------------------------------------------------------------------------------------
// text.labels

export const labelsParams = z.strictObject({
  labels: z.array(z.string().trim().min(1, 'a label cannot be empty')).min(1, 'give at least one label').default(DEFAULT_LABELS),
  tokenizer: z.string().default('builtin'),
  max_length: z.number().int().min(2).max(512).default(77),
  padding: z.enum(['longest', 'max_length']).default('longest'),
  append_eos: z.boolean().default(true),
});

/** Labels typed as one text: separated by ';' or new lines; empty pieces are dropped. */
export function splitLabels(text: string): string[] {
  return text
    .split(/[;\n]/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

const labelsNode: NodeTypeDef<typeof labelsParams> = {
  info: {
    type: 'text.labels',
    typeVersion: 1,
    family: 'prompt',
    title: 'Candidate labels',
    aliases: ['labels'],
    inputs: [
      {
        name: 'text',
        kind: 'text',
        optional: true,
        doc: "Labels separated by ';' or new lines; when connected and not empty they replace the labels param.",
      },
    ],
    outputs: [
      { name: 'input_ids', kind: 'tokens', shape: ['L', 'T'], doc: 'One row per label: <s> label </s>, right-padded with <pad>.' },
      { name: 'attention_mask', kind: 'mask', shape: ['L', 'T'], doc: '1 for real tokens, 0 for padding.' },
      { name: 'labels', kind: 'text', doc: 'The labels, one per line, in row order.' },
    ],
    doc: {
      summary:
        'The candidate classes of a zero-shot classifier, tokenised as one batch (one row per label, end-of-text ' +
        'token appended so the CLIP text encoder pools there).',
      usedBy: ['CLIP zero-shot classification', 'open_clip', 'ALIGN-style retrieval'],
      details:
        'Rows are right-padded; the CLIP text encoder is causal, so padding after the end-of-text token never changes ' +
        'the pooled embedding.',
    },
  },
  params: labelsParams,
  paramDocs: {
    labels: 'The candidate labels (CLIP works best with prompts such as "a photo of a red circle").',
    tokenizer: "'builtin' or the path of a tokenizer.json (relative to the graph file).",
    max_length: 'Longest label in tokens, end-of-text included (77 in CLIP); longer labels are an error.',
    padding:
      "'longest': rows are padded to the longest label (CLIP: its causal text tower pools at the end-of-text token, " +
      "so padding never matters); 'max_length': every row is padded to max_length, as SigLIP's processor does (its " +
      'text tower pools at the last position).',
    append_eos:
      "Append the end-of-text token when the tokenizer's post-processor did not put one last (the built-in tokenizer adds " +
      'only <s>); an imported folder turns it off so labels are tokenised exactly as its tokenizer.json says.',
  },
  outputShapes: (p) => ({ input_ids: [p.labels.length, 'T'], attention_mask: [p.labels.length, 'T'] }),
  host: 'text.labels',
};

// ---------------------------------------------------------------------------------------------------------------
// head.zero_shot

export const zeroShotParams = z.strictObject({
  logit_scale: z.number().positive().max(1000).default(100),
  logit_bias: z.number().default(0),
  activation: z.enum(['softmax', 'sigmoid']).default('softmax'),
});

const zeroShotNode: NodeTypeDef<typeof zeroShotParams> = {
  info: {
    type: 'head.zero_shot',
    typeVersion: 1,
    // No 'head' family exists yet; a head maps model outputs to an answer, like an output projector.
    family: 'output-projector',
    title: 'Zero-shot classifier',
    aliases: ['zero_shot'],
    inputs: [
      { name: 'image_embeds', kind: 'pooled', shape: ['B', 'P'], doc: 'Image embeddings (e.g. CLIP ViT image_embeds).' },
      { name: 'text_embeds', kind: 'pooled', shape: ['L', 'P'], doc: 'One embedding per label (CLIP text encoder text_embeds).' },
      { name: 'labels', kind: 'text', doc: 'The labels, one per line, in the order of text_embeds.' },
    ],
    outputs: [
      { name: 'text', kind: 'text', doc: 'The best label (one line per image).' },
      { name: 'scores', kind: 'logits', shape: ['B', 'L'], doc: 'Probabilities: softmax over the labels (CLIP) or sigmoid of each logit (SigLIP).' },
      { name: 'logits', kind: 'logits', shape: ['B', 'L'], doc: "s · cosine similarity + b, before the softmax or sigmoid (transformers' logits_per_image)." },
    ],
    doc: {
      summary:
        'Zero-shot classification: L2-normalise image and label embeddings, score every label by cosine similarity ' +
        'times the logit scale (plus a bias), and return the most likely label with its probabilities: a softmax over ' +
        'the labels as CLIP, or an independent sigmoid per label as SigLIP.',
      usedBy: ['CLIP', 'open_clip', 'SigLIP (sigmoid with a learned bias)'],
      formula: 'logits = s · (x/‖x‖)(t/‖t‖)ᵀ + b;  scores = softmax(logits) or σ(logits);  answer = labels[argmax]',
      details:
        'CLIP learns s = exp(logit_scale) and clamps it at 100 (trained CLIP models sit at that bound), b = 0; SigLIP ' +
        'learns s = exp(logit_scale) ≈ 117 and b = logit_bias ≈ −13. An imported folder sets both from its tensors.',
    },
  },
  params: zeroShotParams,
  paramDocs: {
    logit_scale: "Multiplier s of the cosine similarities (exp of the model's learned logit_scale; 100 for a trained CLIP).",
    logit_bias: "Added to every logit (SigLIP's learned logit_bias; 0 for CLIP).",
    activation: "'softmax' over the labels (CLIP: the scores of an image sum to 1) or 'sigmoid' per label (SigLIP).",
  },
  outputShapes: (_p, inputs) => {
    const dims = [inputs.image_embeds?.[0] ?? 'B', inputs.text_embeds?.[0] ?? 'L'];
    return { scores: dims, logits: dims };
  },
  host: 'head.zero_shot',
};

export const nodeTypes: NodeTypeDef[] = [labelsNode as unknown as NodeTypeDef, zeroShotNode as unknown as NodeTypeDef];
