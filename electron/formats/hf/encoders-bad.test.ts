// Broken CLIP, SigLIP, BERT, BLIP-2 and InstructBLIP folders are refused at import with a message naming the
// tensor and its file, the config field, or the preprocessor field — never a stack trace from deep inside a build.

import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Tensor, tensorFromNumbers } from '../../onnx/ir.js';
import { readSafetensors, writeSafetensors } from '../../onnx/safetensors.js';
import { importHfFolder } from './import.js';
import { fixtureDir } from './fixtures.test-support.js';

const root = mkdtempSync(join(tmpdir(), 'composer-hf-encoders-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

/** A private copy of a fixture folder to break. */
function copyOf(name: string): string {
  const dir = join(root, `${name}-${n++}`);
  cpSync(fixtureDir(name), dir, { recursive: true });
  return dir;
}

function editJson(dir: string, file: string, edit: (c: Record<string, unknown>) => void): void {
  const c = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Record<string, unknown>;
  edit(c);
  writeFileSync(join(dir, file), JSON.stringify(c));
}

function sub(c: Record<string, unknown>, key: string): Record<string, unknown> {
  return c[key] as Record<string, unknown>;
}

function editWeights(dir: string, edit: (t: Map<string, Tensor>) => void): void {
  const file = join(dir, 'model.safetensors');
  const { tensors } = readSafetensors(file);
  edit(tensors);
  writeSafetensors(file, tensors, { format: 'pt' });
}

describe('bad CLIP folders', () => {
  it('a missing tensor is named with the part that needs it and the files looked in', () => {
    const dir = copyOf('clip');
    editWeights(dir, (t) => t.delete('vision_model.post_layernorm.weight'));
    expect(() => importHfFolder(dir)).toThrow(/CLIP vision tower: the folder has no tensor 'vision_model\.post_layernorm\.weight'.*files: model\.safetensors/);
  });

  it('a tensor of the wrong shape is named with its file, its shape and the one config.json implies', () => {
    const dir = copyOf('clip');
    editWeights(dir, (t) => t.set('text_projection.weight', tensorFromNumbers('float32', [24, 39], new Array(24 * 39).fill(0))));
    expect(() => importHfFolder(dir)).toThrow(/tensor 'text_projection\.weight' in 'model\.safetensors' has shape \[24,39\], but config\.json implies \[24,40\]/);
  });

  it('a tensor no node uses is named', () => {
    const dir = copyOf('clip');
    editWeights(dir, (t) => t.set('vision_model.extra_head.weight', tensorFromNumbers('float32', [2], [1, 2])));
    expect(() => importHfFolder(dir)).toThrow(/'vision_model\.extra_head\.weight' \(model\.safetensors\)/);
  });

  it('config fields out of range or not implemented are named with their path', () => {
    const heads = copyOf('clip');
    editJson(heads, 'config.json', (c) => (sub(c, 'vision_config').num_attention_heads = 5));
    expect(() => importHfFolder(heads)).toThrow(/config\.json: vision_config\.num_attention_heads = 5: must divide hidden_size 32/);
    const act = copyOf('clip');
    editJson(act, 'config.json', (c) => (sub(c, 'text_config').hidden_act = 'selu'));
    expect(() => importHfFolder(act)).toThrow(/config\.json: text_config\.hidden_act is 'selu'; Composer supports 'gelu', 'quick_gelu'/);
    const patch = copyOf('clip');
    editJson(patch, 'config.json', (c) => (sub(c, 'vision_config').image_size = 36));
    expect(() => importHfFolder(patch)).toThrow(/config\.json: vision_config\.image_size = 36: must be a multiple of patch_size 8/);
    const channels = copyOf('clip_vision');
    editJson(channels, 'config.json', (c) => (c.num_channels = 1));
    expect(() => importHfFolder(channels)).toThrow(/config\.json: num_channels = 1: Composer encodes RGB images/);
    const layers = copyOf('clip');
    editJson(layers, 'config.json', (c) => (sub(c, 'text_config').num_hidden_layers = 0));
    expect(() => importHfFolder(layers)).toThrow(/config\.json: text_config\.num_hidden_layers must be ≥ 1, got 0/);
  });

  it("a field left out takes the config class's default, as transformers' from_pretrained does", () => {
    const act = copyOf('clip');
    editJson(act, 'config.json', (c) => delete sub(c, 'vision_config').hidden_act);
    expect(importHfFolder(act).doc.nodes.find((x) => x.id === 'vit')?.params.act).toBe('quick_gelu');
    // CLIPVisionConfig's default of 12 heads does not divide this tower's width: refused by name.
    const heads = copyOf('clip');
    editJson(heads, 'config.json', (c) => delete sub(c, 'vision_config').num_attention_heads);
    expect(() => importHfFolder(heads)).toThrow(/config\.json: vision_config\.num_attention_heads = 12 \(the default\): must divide hidden_size 32/);
  });

  it('preprocessor_config.json the encoder cannot take is refused naming the field', () => {
    const crop = copyOf('clip');
    editJson(crop, 'preprocessor_config.json', (c) => (c.crop_size = { height: 24, width: 24 }));
    expect(() => importHfFolder(crop)).toThrow(/preprocessor_config\.json: crop_size is 24×24, but the vision encoder takes 32×32/);
    const noResize = copyOf('clip');
    editJson(noResize, 'preprocessor_config.json', (c) => (c.do_resize = false));
    expect(() => importHfFolder(noResize)).toThrow(/preprocessor_config\.json: do_resize = false/);
    const noCrop = copyOf('clip');
    editJson(noCrop, 'preprocessor_config.json', (c) => (c.do_center_crop = false));
    expect(() => importHfFolder(noCrop)).toThrow(/preprocessor_config\.json: do_center_crop = false with size\.shortest_edge/);
    const size = copyOf('siglip');
    editJson(size, 'preprocessor_config.json', (c) => (c.size = { height: 48, width: 48 }));
    expect(() => importHfFolder(size)).toThrow(/preprocessor_config\.json: size is 48×48, but the vision encoder takes 32×32/);
  });

  it('a logit_scale that is not one value is refused by name', () => {
    const dir = copyOf('clip');
    editWeights(dir, (t) => t.set('logit_scale', tensorFromNumbers('float32', [2], [1, 2])));
    expect(() => importHfFolder(dir)).toThrow(/tensor 'logit_scale' in 'model\.safetensors' has shape \[2\]; a single value is expected/);
  });
});

describe('bad SigLIP, BERT and BLIP folders', () => {
  it('SigLIP without logit_bias, or without its pooling head', () => {
    const bias = copyOf('siglip');
    editWeights(bias, (t) => t.delete('logit_bias'));
    expect(() => importHfFolder(bias)).toThrow(/the folder has no tensor 'logit_bias'/);
    const head = copyOf('siglip');
    editJson(head, 'config.json', (c) => (sub(c, 'vision_config').vision_use_head = false));
    expect(() => importHfFolder(head)).toThrow(/config\.json: vision_config\.vision_use_head = false/);
  });

  it('SigLIP with only a SentencePiece model (as the hub folders of SigLIP 1 ship) is refused naming the file', () => {
    const dir = copyOf('siglip');
    rmSync(join(dir, 'tokenizer.json'));
    writeFileSync(join(dir, 'spiece.model'), 'not read');
    expect(() => importHfFolder(dir)).toThrow(/no tokenizer\.json .*only the SentencePiece model 'spiece\.model'/);
  });

  it('BERT with relative positions is refused naming the field', () => {
    const dir = copyOf('bert');
    editJson(dir, 'config.json', (c) => (c.position_embedding_type = 'relative_key'));
    expect(() => importHfFolder(dir)).toThrow(/config\.json: position_embedding_type = "relative_key": only absolute position embeddings/);
  });

  it('BLIP-2: a missing q/v bias, an unsupported Q-Former and language model are named', () => {
    const bias = copyOf('blip2');
    editWeights(bias, (t) => t.delete('vision_model.encoder.layers.1.self_attn.qkv.bias'));
    expect(() => importHfFolder(bias)).toThrow(/BLIP-2 vision tower: the folder has no tensor 'vision_model\.encoder\.layers\.1\.self_attn\.q_bias'/);
    const rel = copyOf('blip2');
    editJson(rel, 'config.json', (c) => (sub(c, 'qformer_config').position_embedding_type = 'relative_key'));
    expect(() => importHfFolder(rel)).toThrow(/config\.json: qformer_config\.position_embedding_type = "relative_key"/);
    const t5 = copyOf('blip2');
    editJson(t5, 'config.json', (c) => (sub(c, 'text_config').model_type = 't5'));
    expect(() => importHfFolder(t5)).toThrow(/language model type 't5' is not supported/);
    const act = copyOf('blip2');
    editJson(act, 'config.json', (c) => (sub(c, 'vision_config').hidden_act = 'mish'));
    expect(() => importHfFolder(act)).toThrow(/config\.json: vision_config\.hidden_act is 'mish'/);
  });

  it("InstructBLIP without its Q-Former tokenizer, or with the instruction embeddings missing", () => {
    const tok = copyOf('instructblip');
    rmSync(join(tok, 'qformer_tokenizer'), { recursive: true });
    expect(() => importHfFolder(tok)).toThrow(/the folder has no qformer_tokenizer\/tokenizer\.json/);
    const emb = copyOf('instructblip');
    editWeights(emb, (t) => t.delete('qformer.embeddings.word_embeddings.weight'));
    expect(() => importHfFolder(emb)).toThrow(/InstructBLIP Q-Former: the folder has no tensor 'qformer\.embeddings\.word_embeddings\.weight'/);
  });
});
