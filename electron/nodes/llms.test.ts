import { afterAll, describe, expect, it } from 'vitest';
import type * as ort from 'onnxruntime-node';
import { loadModel } from '../onnx/proto.js';
import { readSafetensors } from '../onnx/safetensors.js';
import { type Tensor, newModel, tensorFromNumbers } from '../onnx/ir.js';
import { createSession, runModel, runSession } from '../onnx/ort.js';
import { Rng } from '../engine/rng.js';
import type { BuildContext, OnnxFragment } from './types.js';
import { Catalog, describeNodeType } from './catalog.js';
import { type MetaBuildContext, parameterCount } from './blocks.js';
import {
  type DecoderParamsInput,
  BUILTIN_VOCAB_SIZE,
  FLAVOURS,
  IGNORE_INDEX,
  LlmError,
  WORD_EMBEDDING,
  buildDecoder,
  buildEmbedTokens,
  buildMergeImageText,
  decoderWeightSpecs,
  describeDecoder,
  headDim,
  hfCheckpointName,
  weightsFromHfStateDict,
  nodeTypes,
  resolveDecoderConfig,
} from './llms.js';

const FIXTURES = '/work/shared/fixtures';

function ctx(seed = 1, weights?: Map<string, Tensor>): BuildContext {
  return { nodeId: 'llm1', seed, inputShapes: {}, weights };
}

function randomTensor(dims: number[], seed: number, scale = 1): Tensor {
  const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
  new Rng(seed).fillNormal(data, scale);
  return { dtype: 'float32', dims, data };
}

function ints(dims: number[], values: number[]): Tensor {
  return tensorFromNumbers('int64', dims, values);
}

/** Sessions are cached per fragment so each test pays for session creation once. */
const sessions = new Map<OnnxFragment, ort.InferenceSession>();
afterAll(async () => {
  for (const s of sessions.values()) await s.release();
});

async function run(frag: OnnxFragment, feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
  let s = sessions.get(frag);
  if (!s) {
    s = await createSession(newModel(frag.graph, frag.opset));
    sessions.set(frag, s);
  }
  return runSession(s, feeds);
}

/** Feeds for one decoder call: positions from the mask (cumsum − 1), given past or zero-length past. */
function decoderFeeds(
  params: DecoderParamsInput,
  embeds: Tensor,
  mask: number[][],
  past?: Record<string, Tensor>,
): Record<string, Tensor> {
  const cfg = resolveDecoderConfig(params);
  const [B, S] = embeds.dims;
  const T = mask[0].length;
  const pos: number[] = [];
  for (const row of mask) {
    let seen = 0;
    const all = row.map((m) => (seen += m) - 1);
    pos.push(...all.slice(T - S).map((p, i) => (row[T - S + i] === 0 ? 1 : p)));
  }
  const feeds: Record<string, Tensor> = {
    inputs_embeds: embeds,
    attention_mask: ints([B, T], mask.flat()),
    position_ids: ints([B, S], pos),
  };
  for (let i = 0; i < cfg.numLayers; i++) {
    for (const part of ['key', 'value']) {
      const name = `past_key_values.${i}.${part}`;
      feeds[name] = past?.[`present.${i}.${part}`] ?? {
        dtype: 'float32',
        dims: [B, cfg.numKvHeads, 0, headDim(cfg)],
        data: new Float32Array(0),
      };
    }
  }
  return feeds;
}

/** Rows [b, s0:s1) of a [B,S,X] tensor as a flat array. */
function slice3(t: Tensor, b: number, s0: number, s1: number): Float32Array {
  const [, S, X] = t.dims;
  return (t.data as Float32Array).slice((b * S + s0) * X, (b * S + s1) * X);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const tinyFragments = new Map(FLAVOURS.map((f) => [f, buildDecoder({ flavour: f }, ctx(7))]));

describe('llm.decoder: shapes and ports', () => {
  for (const flavour of FLAVOURS) {
    for (const B of [1, 2]) {
      it(`${flavour} runs at batch ${B} with the exact port names and shapes`, async () => {
        const params = { flavour };
        const cfg = resolveDecoderConfig(params);
        const frag = tinyFragments.get(flavour)!;
        const S = 6;
        const out = await run(frag, decoderFeeds(params, randomTensor([B, S, cfg.hiddenSize], 3), Array(B).fill(Array(S).fill(1))));
        expect(out.logits.dims).toEqual([B, S, BUILTIN_VOCAB_SIZE]);
        expect(out.last_hidden_state.dims).toEqual([B, S, cfg.hiddenSize]);
        for (let i = 0; i < cfg.numLayers; i++) {
          expect(out[`present.${i}.key`].dims).toEqual([B, cfg.numKvHeads, S, headDim(cfg)]);
          expect(out[`present.${i}.value`].dims).toEqual([B, cfg.numKvHeads, S, headDim(cfg)]);
        }
        expect(Array.from(out.logits.data as Float32Array).every(Number.isFinite)).toBe(true);
        const inputs = frag.graph.inputs.map((v) => v.name);
        expect(inputs.slice(0, 3)).toEqual(['inputs_embeds', 'attention_mask', 'position_ids']);
        expect(frag.graph.outputs.map((v) => v.name).slice(0, 2)).toEqual(['logits', 'last_hidden_state']);
        expect(frag.opset).toBe(17);
        expect(frag.graph.nodes.every((n) => n.domain === '')).toBe(true);
      });
    }
  }

  it('names weights like the PyTorch state dicts and shares the word embedding name', () => {
    const names = (f: (typeof FLAVOURS)[number]) => tinyFragments.get(f)!.weights;
    expect(names('gpt2')).toContain('h.1.attn.c_attn.weight');
    expect(names('gpt2')).toContain('wpe.weight');
    expect(names('gpt2')).toContain(WORD_EMBEDDING);
    expect(names('opt')).toContain('layers.0.self_attn.out_proj.bias');
    expect(names('opt')).toContain('embed_positions.weight');
    expect(names('llama')).toContain('layers.1.mlp.gate_proj.weight');
    expect(names('llama')).toContain('lm_head.weight');
    expect(names('llama')).not.toContain(WORD_EMBEDDING); // untied head: the table lives in llm.embed_tokens
    expect(names('llama').some((n) => n.endsWith('.bias'))).toBe(false);
    expect(tinyFragments.get('llama')!.graph.initializers.get('layers.0.self_attn.k_proj.weight')!.dims).toEqual([48, 96]);
    expect(hfCheckpointName('gpt2', WORD_EMBEDDING)).toBe('transformer.wte.weight');
    expect(hfCheckpointName('opt', 'layers.0.fc1.weight')).toBe('model.decoder.layers.0.fc1.weight');
    expect(hfCheckpointName('llama', 'norm.weight')).toBe('model.norm.weight');
  });

  it('registers in a catalogue with every param documented', () => {
    const catalog = new Catalog(nodeTypes);
    expect(catalog.get('llm').info.type).toBe('llm.decoder');
    for (const def of nodeTypes) {
      const info = describeNodeType(def);
      for (const p of info.params) expect(p.doc, `${def.info.type}.${p.name}`).not.toBe('');
      expect(info.doc.summary.length).toBeGreaterThan(40);
    }
    const preset = describeNodeType(nodeTypes[0]).params.find((p) => p.name === 'preset')!;
    expect(preset.options).toEqual(['tiny', 'gpt2', 'opt-125m', 'opt-2.7b', 'vicuna-7b']);
  });

  it('maps HuggingFace checkpoint names onto its weights', () => {
    const specs = decoderWeightSpecs(resolveDecoderConfig({ flavour: 'gpt2' }));
    const state = new Map(specs.map((s, i) => [hfCheckpointName('gpt2', s.name), randomTensor(s.shape, i)]));
    const mapped = weightsFromHfStateDict(specs, 'gpt2', state);
    expect(mapped.get(WORD_EMBEDDING)).toBe(state.get('transformer.wte.weight'));
    state.delete('transformer.h.1.mlp.c_fc.bias');
    expect(() => weightsFromHfStateDict(specs, 'gpt2', state)).toThrow("checkpoint has no tensor 'transformer.h.1.mlp.c_fc.bias'");
  });

  it('is deterministic for a seed and differs across seeds', () => {
    const a = buildDecoder({ flavour: 'opt' }, ctx(5)).graph.initializers.get('layers.0.fc1.weight')!;
    const b = buildDecoder({ flavour: 'opt' }, ctx(5)).graph.initializers.get('layers.0.fc1.weight')!;
    const c = buildDecoder({ flavour: 'opt' }, ctx(6)).graph.initializers.get('layers.0.fc1.weight')!;
    expect(Array.from(a.data as Float32Array)).toEqual(Array.from(b.data as Float32Array));
    expect(maxAbsDiff(a.data as Float32Array, c.data as Float32Array)).toBeGreaterThan(0);
  });

  it('describes ports per layer for the catalogue', () => {
    const def = nodeTypes.find((d) => d.info.type === 'llm.decoder')!;
    const ports = def.ports!({ flavour: 'llama', num_layers: 3 });
    expect(ports.inputs.filter((p) => p.kind === 'kv').map((p) => p.name)).toContain('past_key_values.2.value');
    expect(ports.outputs.filter((p) => p.kind === 'kv')).toHaveLength(6);
    expect(def.outputShapes(def.params.parse({ flavour: 'llama' }), { inputs_embeds: [2, 9, 96] })).toMatchObject({
      logits: [2, 9, BUILTIN_VOCAB_SIZE],
      'present.1.key': [2, 2, 'P+S', 24],
    });
  });
});

describe('llm.decoder: masking and cache', () => {
  for (const flavour of FLAVOURS) {
    it(`${flavour}: changing a later token never changes earlier logits`, async () => {
      const params = { flavour };
      const D = resolveDecoderConfig(params).hiddenSize;
      const frag = tinyFragments.get(flavour)!;
      const S = 7;
      const a = randomTensor([1, S, D], 11);
      const b = randomTensor([1, S, D], 11);
      const bd = b.data as Float32Array;
      const noise = randomTensor([S * D], 12).data as Float32Array;
      for (let i = 4 * D; i < S * D; i++) bd[i] += noise[i]; // perturb positions 4..6 (not by a constant: LayerNorm ignores shifts)
      const mask = [Array(S).fill(1)];
      const la = (await run(frag, decoderFeeds(params, a, mask))).logits;
      const lb = (await run(frag, decoderFeeds(params, b, mask))).logits;
      expect(maxAbsDiff(slice3(la, 0, 0, 4), slice3(lb, 0, 0, 4))).toBe(0);
      expect(maxAbsDiff(slice3(la, 0, 4, 5), slice3(lb, 0, 4, 5))).toBeGreaterThan(1e-4);
    });

    it(`${flavour}: a cached step gives the same logits as the full sequence`, async () => {
      const params = { flavour };
      const D = resolveDecoderConfig(params).hiddenSize;
      const frag = tinyFragments.get(flavour)!;
      const B = 2;
      const S = 7;
      const P = 4;
      const full = randomTensor([B, S, D], 21);
      const mask = [Array(S).fill(1), [0, 0, 1, 1, 1, 1, 1]]; // row 1 left-padded
      const ref = (await run(frag, decoderFeeds(params, full, mask))).logits;
      const prefix: Tensor = { dtype: 'float32', dims: [B, P, D], data: new Float32Array(B * P * D) };
      const rest: Tensor = { dtype: 'float32', dims: [B, S - P, D], data: new Float32Array(B * (S - P) * D) };
      for (let b = 0; b < B; b++) {
        (prefix.data as Float32Array).set(slice3(full, b, 0, P), b * P * D);
        (rest.data as Float32Array).set(slice3(full, b, P, S), b * (S - P) * D);
      }
      const first = await run(frag, decoderFeeds(params, prefix, mask.map((r) => r.slice(0, P))));
      const second = await run(frag, decoderFeeds(params, rest, mask, first));
      for (let b = 0; b < B; b++) {
        expect(maxAbsDiff(slice3(first.logits, b, 2, P), slice3(ref, b, 2, P))).toBeLessThan(1e-5);
        expect(maxAbsDiff(slice3(second.logits, b, 0, S - P), slice3(ref, b, P, S))).toBeLessThan(1e-5);
      }
      expect(second['present.1.key'].dims[2]).toBe(S);
    });

    it(`${flavour}: padding is ignored (a left-padded row equals the row alone)`, async () => {
      const params = { flavour };
      const D = resolveDecoderConfig(params).hiddenSize;
      const frag = tinyFragments.get(flavour)!;
      const alone = randomTensor([1, 4, D], 31);
      const padded = randomTensor([1, 6, D], 99); // two garbage pad rows, then the same four rows
      (padded.data as Float32Array).set(alone.data as Float32Array, 2 * D);
      const ref = (await run(frag, decoderFeeds(params, alone, [[1, 1, 1, 1]]))).logits;
      const got = (await run(frag, decoderFeeds(params, padded, [[0, 0, 1, 1, 1, 1]]))).logits;
      expect(maxAbsDiff(slice3(got, 0, 2, 6), slice3(ref, 0, 0, 4))).toBeLessThan(1e-5);
    });
  }

  it('llama: rotary positions make the output depend only on relative positions', async () => {
    const params = { flavour: 'llama' as const };
    const frag = tinyFragments.get('llama')!;
    const x = randomTensor([1, 5, 96], 41);
    const feeds = decoderFeeds(params, x, [[1, 1, 1, 1, 1]]);
    const ref = (await run(frag, feeds)).logits;
    const shifted = (await run(frag, { ...feeds, position_ids: ints([1, 5], [10, 11, 12, 13, 14]) })).logits;
    expect(maxAbsDiff(ref.data as Float32Array, shifted.data as Float32Array)).toBeLessThan(1e-4);
    const scrambled = (await run(frag, { ...feeds, position_ids: ints([1, 5], [0, 2, 1, 3, 4]) })).logits;
    expect(maxAbsDiff(ref.data as Float32Array, scrambled.data as Float32Array)).toBeGreaterThan(1e-4);
  });

  it('llama: grouped-query attention equals full attention with repeated kv heads', async () => {
    const gqa = { flavour: 'llama' as const, num_kv_heads: 2 };
    const full = { flavour: 'llama' as const, num_kv_heads: 4 };
    const gqaFrag = buildDecoder(gqa, ctx(3));
    // kv head j of the GQA model serves query heads 2j and 2j+1: repeat its 24 rows for both.
    const weights = new Map<string, Tensor>();
    for (const [name, t] of gqaFrag.graph.initializers) {
      if (!gqaFrag.weights.includes(name)) continue;
      if (/self_attn\.[kv]_proj\.weight$/.test(name)) {
        const src = t.data as Float32Array;
        const out = new Float32Array(96 * 96);
        for (let h = 0; h < 4; h++) out.set(src.subarray(Math.floor(h / 2) * 24 * 96, (Math.floor(h / 2) + 1) * 24 * 96), h * 24 * 96);
        weights.set(name, { dtype: 'float32', dims: [96, 96], data: out });
      } else {
        weights.set(name, t);
      }
    }
    const fullFrag = buildDecoder(full, ctx(99, weights));
    const x = randomTensor([2, 5, 96], 8);
    const mask = [Array(5).fill(1), [0, 1, 1, 1, 1]];
    const a = await runModel(newModel(gqaFrag.graph, 17), decoderFeeds(gqa, x, mask));
    const b = await runModel(newModel(fullFrag.graph, 17), decoderFeeds(full, x, mask));
    expect(maxAbsDiff(a.logits.data as Float32Array, b.logits.data as Float32Array)).toBeLessThan(1e-5);
  });
});

describe('llm.decoder: GPT-2 against the PyTorch fixture', () => {
  it('reproduces gpt2_tiny logits with the fixture weights', async () => {
    const fixture = loadModel(`${FIXTURES}/gpt2_tiny.onnx`);
    const ref = readSafetensors(`${FIXTURES}/gpt2_tiny.ref.safetensors`).tensors;
    const init = fixture.graph.initializers;
    // The fixture stores nn.Linear weights [out,in]; GPT-2's Conv1D layout (ours) is [in,out].
    const transpose = (t: Tensor): Tensor => {
      const [r, c] = t.dims;
      const src = t.data as Float32Array;
      const out = new Float32Array(r * c);
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = src[i * c + j];
      return { dtype: 'float32', dims: [c, r], data: out };
    };
    const weights = new Map<string, Tensor>([
      [WORD_EMBEDDING, init.get('wte.weight')!],
      ['wpe.weight', init.get('wpe.weight')!],
      ['ln_f.weight', init.get('ln_f.weight')!],
      ['ln_f.bias', init.get('ln_f.bias')!],
    ]);
    for (let i = 0; i < 2; i++) {
      const f = (n: string) => init.get(`h.${i}.${n}`)!;
      for (const ln of ['ln_1', 'ln_2']) {
        weights.set(`h.${i}.${ln}.weight`, f(`${ln}.weight`));
        weights.set(`h.${i}.${ln}.bias`, f(`${ln}.bias`));
      }
      const pairs: Array<[string, string]> = [
        ['c_attn', 'attn.c_attn'],
        ['c_proj', 'attn.c_proj'],
        ['c_fc', 'mlp.c_fc'],
        ['mlp_proj', 'mlp.c_proj'],
      ];
      for (const [theirs, ours] of pairs) {
        weights.set(`h.${i}.${ours}.weight`, transpose(f(`${theirs}.weight`)));
        weights.set(`h.${i}.${ours}.bias`, f(`${theirs}.bias`));
      }
    }
    const params = {
      flavour: 'gpt2' as const,
      vocab_size: 64,
      hidden_size: 32,
      num_layers: 2,
      num_heads: 4,
      intermediate_size: 128,
      max_positions: 16,
    };
    const frag = buildDecoder(params, ctx(0, weights));
    expect(new Set(frag.weights)).toEqual(new Set(weights.keys())); // every weight came from the fixture
    const ids = ref.get('input.input_ids')!;
    const [B, S] = ids.dims;
    const wte = init.get('wte.weight')!.data as Float32Array;
    const embeds = new Float32Array(B * S * 32);
    (ids.data as BigInt64Array).forEach((id, i) => embeds.set(wte.subarray(Number(id) * 32, Number(id) * 32 + 32), i * 32));
    const out = await runModel(
      newModel(frag.graph, 17),
      decoderFeeds(params, { dtype: 'float32', dims: [B, S, 32], data: embeds }, Array(B).fill(Array(S).fill(1))),
    );
    const expected = ref.get('output.logits')!;
    expect(out.logits.dims).toEqual(expected.dims);
    expect(maxAbsDiff(out.logits.data as Float32Array, expected.data as Float32Array)).toBeLessThan(2e-5);
  });
});

describe('llm.decoder: presets and weights', () => {
  it('counts real checkpoint parameters without allocating them', () => {
    expect(describeDecoder({ preset: 'opt-2.7b' }).totalParameters).toBe(2_651_596_800);
    const vicuna = describeDecoder({ preset: 'vicuna-7b' });
    expect(vicuna.totalParameters).toBe(6_738_415_616);
    expect(vicuna.decoderParameters).toBe(6_738_415_616 - 32000 * 4096); // embedding lives in llm.embed_tokens
    expect(vicuna.config).toMatchObject({ flavour: 'llama', hiddenSize: 4096, numLayers: 32, intermediateSize: 11008 });
    expect(describeDecoder({ preset: 'gpt2' }).totalParameters).toBe(124_439_808); // HF gpt2
    expect(describeDecoder({ preset: 'opt-125m' }).totalParameters).toBe(125_239_296); // HF facebook/opt-125m
  });

  it('meta-builds a real-size model (structure and count, no weight memory)', () => {
    const meta: MetaBuildContext = { ...ctx(), meta: true };
    const frag = buildDecoder({ preset: 'vicuna-7b' }, meta);
    expect(parameterCount(frag)).toBe(6_738_415_616 - 32000 * 4096);
    expect(frag.graph.initializers.get('layers.31.mlp.down_proj.weight')!.dims).toEqual([4096, 11008]);
    expect(parameterCount(buildDecoder({ preset: 'opt-2.7b' }, meta))).toBe(2_651_596_800);
  });

  it('refuses to randomly initialise a real-size model', () => {
    expect(() => buildDecoder({ preset: 'opt-2.7b' }, ctx())).toThrow(/GiB.*load a checkpoint/);
  });

  it('builds with supplied weights and checks their names and shapes', () => {
    const cfg = resolveDecoderConfig({ flavour: 'opt' });
    const specs = decoderWeightSpecs(cfg);
    const supplied = new Map(specs.map((s, i) => [s.name, randomTensor(s.shape, 100 + i)]));
    const frag = buildDecoder({ flavour: 'opt' }, ctx(1, supplied));
    for (const [name, t] of supplied) expect(frag.graph.initializers.get(name)).toBe(t);
    const wrongShape = new Map([['layers.0.fc1.weight', randomTensor([3, 3], 1)]]);
    expect(() => buildDecoder({ flavour: 'opt' }, ctx(1, wrongShape))).toThrow(
      "llm.decoder node 'llm1': weight 'layers.0.fc1.weight' has shape [3,3], expected [384,96]",
    );
    const unknown = new Map([['layers.0.mlp.nope', randomTensor([3], 1)]]);
    expect(() => buildDecoder({ flavour: 'opt' }, ctx(1, unknown))).toThrow(/'layers.0.mlp.nope' is not a weight of this node/);
  });

  it('rejects inconsistent params with the param named', () => {
    expect(() => resolveDecoderConfig({ hidden_size: 100, num_heads: 3 })).toThrow(/hidden_size 100 is not divisible by num_heads 3/);
    expect(() => resolveDecoderConfig({ flavour: 'opt', num_kv_heads: 2 })).toThrow(LlmError);
    expect(() => resolveDecoderConfig({ preset: 'vicuna-7b', flavour: 'gpt2' })).toThrow(/is a llama model/);
    expect(() => resolveDecoderConfig({ num_layers: 0 })).toThrow(/param 'num_layers'/);
  });
});

describe('llm.embed_tokens and llm.merge_image_text', () => {
  it('embed_tokens gathers rows of embed_tokens.weight', async () => {
    const frag = buildEmbedTokens({ flavour: 'opt' }, ctx(4));
    expect(frag.weights).toEqual([WORD_EMBEDDING]);
    const table = frag.graph.initializers.get(WORD_EMBEDDING)!;
    expect(table.dims).toEqual([BUILTIN_VOCAB_SIZE, 96]);
    const out = await runModel(newModel(frag.graph, 17), { input_ids: ints([2, 2], [5, 0, 7, 315]) });
    expect(out.inputs_embeds.dims).toEqual([2, 2, 96]);
    const t = table.data as Float32Array;
    expect(Array.from(slice3(out.inputs_embeds, 1, 1, 2))).toEqual(Array.from(t.subarray(315 * 96, 316 * 96)));
  });

  it('prefix mode puts image rows first with mask ones and ignored labels', async () => {
    const frag = buildMergeImageText({ mode: 'prefix', with_labels: true }, ctx());
    const img = randomTensor([2, 3, 4], 1);
    const txt = randomTensor([2, 2, 4], 2);
    const out = await runModel(newModel(frag.graph, 17), {
      image_features: img,
      token_embeds: txt,
      token_attention_mask: ints([2, 2], [1, 1, 0, 1]),
      token_labels: ints([2, 2], [7, 8, IGNORE_INDEX, 9]),
    });
    expect(out.inputs_embeds.dims).toEqual([2, 5, 4]);
    expect(Array.from(slice3(out.inputs_embeds, 1, 0, 3))).toEqual(Array.from(slice3(img, 1, 0, 3)));
    expect(Array.from(slice3(out.inputs_embeds, 1, 3, 5))).toEqual(Array.from(slice3(txt, 1, 0, 2)));
    expect(Array.from(out.attention_mask.data as BigInt64Array, Number)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 0, 1]);
    expect(Array.from(out.text_mask.data as BigInt64Array, Number)).toEqual([0, 0, 0, 1, 1, 0, 0, 0, 1, 1]);
    expect(Array.from(out.labels.data as BigInt64Array, Number)).toEqual([-100, -100, -100, 7, 8, -100, -100, -100, -100, 9]);
  });

  it('scatter mode replaces the k-th <image> placeholder of each row with feature k', async () => {
    const frag = buildMergeImageText({ mode: 'scatter', image_token_id: 4, with_labels: true }, ctx());
    const img = randomTensor([2, 2, 3], 5);
    const txt = randomTensor([2, 4, 3], 6);
    const out = await runModel(newModel(frag.graph, 17), {
      image_features: img,
      token_embeds: txt,
      token_attention_mask: ints([2, 4], [1, 1, 1, 1, 0, 1, 1, 1]),
      input_ids: ints([2, 4], [1, 4, 4, 9, 0, 1, 4, 4]),
      token_labels: ints([2, 4], [1, 4, 4, 9, -100, 1, 4, 4]),
    });
    const got = out.inputs_embeds;
    expect(Array.from(slice3(got, 0, 0, 1))).toEqual(Array.from(slice3(txt, 0, 0, 1)));
    expect(Array.from(slice3(got, 0, 1, 3))).toEqual(Array.from(slice3(img, 0, 0, 2)));
    expect(Array.from(slice3(got, 0, 3, 4))).toEqual(Array.from(slice3(txt, 0, 3, 4)));
    expect(Array.from(slice3(got, 1, 0, 2))).toEqual(Array.from(slice3(txt, 1, 0, 2)));
    expect(Array.from(slice3(got, 1, 2, 4))).toEqual(Array.from(slice3(img, 1, 0, 2)));
    expect(Array.from(out.attention_mask.data as BigInt64Array, Number)).toEqual([1, 1, 1, 1, 0, 1, 1, 1]);
    expect(Array.from(out.text_mask.data as BigInt64Array, Number)).toEqual([1, 0, 0, 1, 1, 1, 0, 0]);
    expect(Array.from(out.labels.data as BigInt64Array, Number)).toEqual([1, -100, -100, 9, -100, 1, -100, -100]);
  });

  it('merge rejects bad params naming the node', () => {
    expect(() => buildMergeImageText({ mode: 'splice' as 'prefix' }, ctx())).toThrow(/llm.merge_image_text node 'llm1': param 'mode'/);
  });

  it('merge ports follow the mode', () => {
    const def = nodeTypes.find((d) => d.info.type === 'llm.merge_image_text')!;
    expect(def.ports!({ mode: 'prefix' }).inputs.map((p) => p.name)).toEqual(['image_features', 'token_embeds', 'token_attention_mask']);
    expect(def.ports!({ mode: 'scatter', with_labels: true }).outputs.map((p) => p.name)).toContain('labels');
    expect(def.outputShapes(def.params.parse({}), { image_features: [1, 8, 96], token_embeds: [1, 5, 96] }).inputs_embeds).toEqual([1, 13, 96]);
  });
});
