// Colours per node family and per port kind; the CSS reads them through custom properties.

export const FAMILY_LABEL: Record<string, string> = {
  encoder: 'Encoder',
  'input-projector': 'Input projector',
  llm: 'Language model',
  'output-projector': 'Output projector',
  generator: 'Generator',
  io: 'Input / output',
  prompt: 'Prompt',
  loss: 'Loss',
  imported: 'Imported',
};

export const FAMILY_ORDER = ['io', 'prompt', 'encoder', 'input-projector', 'llm', 'output-projector', 'generator', 'loss', 'imported'];

export const FAMILY_COLOR: Record<string, string> = {
  encoder: '#3b82f6',
  'input-projector': '#8b5cf6',
  llm: '#f59e0b',
  'output-projector': '#ec4899',
  generator: '#10b981',
  io: '#64748b',
  prompt: '#06b6d4',
  loss: '#ef4444',
  imported: '#a3a3a3',
};

export const KIND_COLOR: Record<string, string> = {
  image: '#22c55e',
  video: '#16a34a',
  audio: '#eab308',
  text: '#f97316',
  tokens: '#fb923c',
  mask: '#94a3b8',
  embeds: '#6366f1',
  pooled: '#818cf8',
  logits: '#f43f5e',
  latent: '#14b8a6',
  loss: '#ef4444',
  kv: '#a855f7',
  any: '#9ca3af',
};

export const familyColor = (family: string | undefined) => FAMILY_COLOR[family ?? ''] ?? '#94a3b8';
export const kindColor = (kind: string | undefined) => KIND_COLOR[kind ?? ''] ?? '#9ca3af';
