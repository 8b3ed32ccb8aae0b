import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tensorToNumbers } from '../../onnx/ir.js';
import { type GraphDocument, graphDocumentFromJson, parseGraphDocument } from '../document.js';
import { Executor } from '../executor.js';
import { Rng } from '../rng.js';
import { tokenizerFor } from '../host-steps/text.js';
import { Trainer, train } from './trainer.js';
import { CFG_DROPOUT, DIFFUSION, MRM, diffusionFeeds, diffusionSetup, maskPatches, maskTokens } from './objectives.js';
import { generationExactMatch } from './generate-eval.js';
import { generationRequest, tokenRole } from './batches.js';
import { stage1Feeds } from './blip2-stage1.js';
import { RECIPE_NAMES, recipeByName } from './recipes.js';

const graphsDir = join(import.meta.dirname, '..', '..', '..', 'graphs');
const template = (name: string): GraphDocument => parseGraphDocument(readFileSync(join(graphsDir, `${name}.graph.json`), 'utf8'), `${name}.graph.json`);
/** A template without its zoo weights: training starts from the seeded init, as the loss-falls checks assume. */
const seeded = (name: string): GraphDocument => {
  const doc = template(name);
  for (const n of doc.nodes) delete n.weights;
  return doc;
};
/** Trains, noting which nodes the trainer put in the training model and which in the cached prefix. */
const trainNoting = async (o: Parameters<typeof train>[0]) => {
  let nodes: { train: string[]; prefix: string[] } | undefined;
  const res = await train({ ...o, onEvent: (e) => (e.type === 'started' ? (nodes = e.nodes) : undefined) });
  return { res, nodes };
};
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const falls = (losses: number[], minDrop: number) => {
  expect(losses.every(Number.isFinite)).toBe(true);
  expect(losses[0] - mean(losses.slice(-2))).toBeGreaterThan(minDrop);
};
const fixed = { baseDir: graphsDir, dataset: 'shapes', datasetSize: 8, fixedBatch: true } as const;

const bertGraph = () =>
  graphDocumentFromJson(
    {
      format: 'composer.graph', version: 1, name: 'bert',
      nodes: [
        { id: 'caption', type: 'io.text', params: {} },
        { id: 'tokenize', type: 'text.tokenize', params: {} },
        { id: 'bert', type: 'encoder.bert', params: {} },
      ],
      edges: [
        { from: { node: 'caption', port: 'text' }, to: { node: 'tokenize', port: 'text' } },
        { from: { node: 'tokenize', port: 'input_ids' }, to: { node: 'bert', port: 'input_ids' } },
        { from: { node: 'tokenize', port: 'attention_mask' }, to: { node: 'bert', port: 'attention_mask' } },
      ],
    },
    'bert',
  );
const vitGraph = () =>
  graphDocumentFromJson(
    {
      format: 'composer.graph', version: 1, name: 'vit',
      nodes: [{ id: 'image', type: 'io.image', params: { size: 64 } }, { id: 'vit', type: 'encoder.clip_vit', params: {} }],
      edges: [{ from: { node: 'image', port: 'pixel_values' }, to: { node: 'vit', port: 'pixel_values' } }],
    },
    'vit',
  );

describe('recipes: every name resolves', () => {
  it('lists the new recipes and none is left as planned', () => {
    for (const name of ['nextgpt-output', 'blip2-stage1', 'bert-mlm', 'vit-mrm']) expect(recipeByName(name).name).toBe(name);
    expect(RECIPE_NAMES).toContain('blip2-stage1');
    expect(() => recipeByName('nope')).toThrow(/unknown recipe 'nope'/);
  });
});

describe('nextgpt-output: the output projector by diffusion MSE through the UNet, on graphs/nextgpt.graph.json', () => {
  it('trains outproj over a cached frozen LLM prefix, the UNet frozen as in NExT-GPT; the loss falls', async () => {
    const { res, nodes } = await trainNoting({ ...fixed, graph: seeded('nextgpt'), recipe: 'nextgpt-output', steps: 4, batchSize: 2, learningRate: 2e-3 });
    expect(nodes).toEqual({ train: ['outproj', 'unet'], prefix: ['vit', 'proj', 'embed', 'merge', 'llm'] });
    expect(new Set(res.built.trainables.map((t) => t.node))).toEqual(new Set(['outproj']));
    falls(res.losses, 0.01);
  }, 120_000);

  it('trains the UNet too when it is unfrozen on the canvas', async () => {
    const doc = seeded('nextgpt');
    doc.nodes.find((n) => n.id === 'unet')!.frozen = false;
    const res = await train({ ...fixed, graph: doc, recipe: 'nextgpt-output', steps: 4, batchSize: 2, learningRate: 2e-3 });
    expect(new Set(res.built.trainables.map((t) => t.node))).toEqual(new Set(['outproj', 'unet']));
    falls(res.losses, 0.2);
  }, 120_000);
});

describe('text-to-image: the UNet on a frozen text encoder, on graphs/text-to-image.graph.json', () => {
  it('trains only the UNet; the text encoder states are a cached prefix; the loss falls', async () => {
    const { res, nodes } = await trainNoting({ ...fixed, graph: seeded('text-to-image'), recipe: 'text-to-image', steps: 4, batchSize: 2, learningRate: 2e-3 });
    expect(nodes).toEqual({ train: ['unet'], prefix: ['text_encoder'] });
    falls(res.losses, 0.2);
  }, 120_000);
});

describe('nextgpt-align: NExT-GPT decoding-side alignment against a text-to-image teacher', () => {
  it("the output projector learns the teacher's text encoder states for the same request (MSE); the loss falls", async () => {
    const res = await train({
      ...fixed, graph: template('nextgpt'), recipe: 'nextgpt-align', steps: 6, batchSize: 2, learningRate: 3e-3,
      teacher: { graph: template('text-to-image'), baseDir: graphsDir },
    });
    expect(new Set(res.built.trainables.map((t) => t.node))).toEqual(new Set(['outproj']));
    falls(res.losses, 0.05);
  }, 120_000);

  it('names a teacher that is not a text-to-image graph, and conditioning of the wrong size', async () => {
    await expect(
      train({ ...fixed, graph: template('nextgpt'), recipe: 'nextgpt-align', steps: 1, teacher: { graph: template('blip2'), baseDir: graphsDir } }),
    ).rejects.toThrow(/teacher graph 'BLIP-2.*' must be a text-to-image graph .*generator\.unet/);
    const eight = seeded('nextgpt');
    eight.nodes.find((n) => n.id === 'outproj')!.params = { add_input_embeds: true, num_queries: 8 };
    await expect(
      train({ ...fixed, graph: eight, recipe: 'nextgpt-align', steps: 1, teacher: { graph: template('text-to-image'), baseDir: graphsDir } }),
    ).rejects.toThrow(/output projector 'outproj' gives 8 × 64 conditioning but the teacher .* gives 16 × 64 .*num_queries to 16/);
  });

  it('says what is missing without a teacher', async () => {
    await expect(train({ ...fixed, graph: template('nextgpt'), recipe: 'nextgpt-align', steps: 1 })).rejects.toThrow(
      /nextgpt-align' needs a teacher: the text-to-image graph .*--teacher FILE/,
    );
  });
});

describe('nextgpt-output with adapters on the LLM: batches of requests of different lengths', () => {
  it("right-aligns the decoder's attention mask together with its embeddings (the signal tokens are the last positions)", async () => {
    const trainer = await Trainer.create({
      ...fixed, datasetSize: 16, graph: template('nextgpt'), recipe: 'nextgpt-output', steps: 1, batchSize: 4,
      adapter: { method: 'lora', config: { r: 4, target_modules: ['q_proj', 'v_proj'] } },
    });
    try {
      const batch = trainer.data.train.slice(0, 4);
      const feeds = await trainer.batchFeeds(batch);
      const embeds = feeds['merge.inputs_embeds'];
      const mask = feeds['merge.attention_mask'];
      expect(embeds?.dims.length).toBe(3);
      const [B, T, D] = embeds.dims;
      expect(mask.dims).toEqual([B, T]);
      const m = tensorToNumbers(mask);
      const e = embeds.data as Float32Array;
      const realTokens = new Set<number>();
      for (let r = 0; r < B; r++) {
        const row = m.slice(r * T, (r + 1) * T);
        const firstReal = row.indexOf(1);
        realTokens.add(T - firstReal);
        // Padding only on the left, and it is exactly where the embeddings are padding.
        expect(row.slice(firstReal).every((v) => v === 1)).toBe(true);
        const padEmbeds = e.subarray(r * T * D, (r * T + firstReal) * D);
        expect(padEmbeds.every((v) => v === 0)).toBe(true);
        expect(e.subarray((r * T + firstReal) * D, (r * T + firstReal + 1) * D).some((v) => v !== 0)).toBe(true);
      }
      expect(realTokens.size).toBeGreaterThan(1); // the requests really differ in length
    } finally {
      await trainer.dispose();
    }
  }, 120_000);
});

describe('token roles', () => {
  it("feeds InstructBLIP's Q-Former the instruction only (never the answer), the LLM the LM sequence", () => {
    const doc = template('instructblip');
    expect(tokenRole(doc, 'qformer_tokenize')).toBe('instruction');
    expect(tokenRole(doc, 'tokenize')).toBe('lm');
    expect(tokenRole(template('clip'), 'labels')).toBe('text');
  });
});

describe('diffusion feeds', () => {
  it("asks for each caption's image in a request phrasing fixed by the sample id", () => {
    const asks = Array.from({ length: 40 }, (_, i) => generationRequest('a small red circle on the left.', `s${i}`));
    for (const a of asks) expect(a).toContain('a small red circle on the left');
    expect(new Set(asks).size).toBeGreaterThan(2);
    expect(generationRequest('a blue square', 's7')).toBe(generationRequest('a blue square', 's7'));
  });


  it('x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε with t uniform over the schedule; about 10% of the conditioning dropped', () => {
    const setup = diffusionSetup(template('nextgpt'));
    expect([setup.unet, setup.conditioning, setup.noiseNode, setup.size]).toEqual(['unet', { node: 'outproj', port: 'conditioning' }, 'noise', 32]);
    const B = 400;
    const x0 = { dtype: 'float32' as const, dims: [B, 3, 2, 2], data: Float32Array.from({ length: B * 12 }, (_, i) => Math.sin(i)) };
    const f = diffusionFeeds({ ...setup, predictionType: 'epsilon' }, x0, new Rng(4));
    const t = Array.from(f['noise.timestep'].data as Float32Array);
    expect(Math.min(...t)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...t)).toBeLessThan(setup.alphasCumprod.length);
    expect(new Set(t).size).toBeGreaterThan(300);
    const xt = f['noise.sample'].data as Float32Array;
    const eps = f[DIFFUSION.noise].data as Float32Array;
    for (const i of [0, 17, 4799]) {
      const a = setup.alphasCumprod[t[Math.floor(i / 12)]];
      expect(xt[i]).toBeCloseTo(Math.sqrt(a) * x0.data[i] + Math.sqrt(1 - a) * eps[i], 5);
    }
    // The same draws with another prediction type: only the target changes (v, or x₀ itself).
    const v = diffusionFeeds({ ...setup, predictionType: 'v_prediction' }, x0, new Rng(4));
    const sample = diffusionFeeds({ ...setup, predictionType: 'sample' }, x0, new Rng(4));
    expect(Array.from(v['noise.sample'].data as Float32Array)).toEqual(Array.from(xt));
    for (const i of [0, 17, 4799]) {
      const a = setup.alphasCumprod[t[Math.floor(i / 12)]];
      expect((v[DIFFUSION.noise].data as Float32Array)[i]).toBeCloseTo(Math.sqrt(a) * eps[i] - Math.sqrt(1 - a) * x0.data[i], 5);
      expect((sample[DIFFUSION.noise].data as Float32Array)[i]).toBeCloseTo(x0.data[i], 6);
    }
    const kept = Array.from(f[DIFFUSION.keep].data as Float32Array);
    expect(kept.every((k) => k === 0 || k === 1)).toBe(true);
    const dropped = kept.filter((k) => k === 0).length / B;
    expect(dropped).toBeGreaterThan(CFG_DROPOUT / 2);
    expect(dropped).toBeLessThan(CFG_DROPOUT * 2);
  });
});

describe('blip2-stage1: ITC + ITM + ITG over one Q-Former', () => {
  it('trains the Q-Former and the temperature; the loss falls; retrieval R@1 at eval', async () => {
    const evals: Array<Record<string, number>> = [];
    const res = await train({
      ...fixed, graph: template('blip2'), recipe: 'blip2-stage1', steps: 5, batchSize: 3, learningRate: 2e-3, evalAtEnd: true, evalSamples: 3,
      onEvent: (e) => e.type === 'eval' && evals.push(e.metrics),
    });
    falls(res.losses, 0.3);
    const temp = tensorToNumbers(res.params.get('itc.temp')!)[0];
    expect(temp).not.toBeCloseTo(0.07, 6);
    expect(res.built.trainables.filter((t) => t.node === 'qformer').length).toBeGreaterThan(20);
    expect(res.built.trainables.some((t) => t.weight.startsWith('language_projection'))).toBe(false);
    expect(evals[0].retrieval_r1).toBeGreaterThanOrEqual(0);
    expect(() => stage1Feeds(['a red circle'], tokenizerFor('builtin', graphsDir), new Rng(0))).toThrow(/batch size of at least 2/);
  }, 120_000);
});

describe('MLM and MRM', () => {
  it('maskTokens: 15% of real non-special tokens, 80/10/10, labels only where chosen', () => {
    const tok = tokenizerFor('builtin', graphsDir);
    const B = 64;
    const T = 40;
    const ids = new BigInt64Array(B * T);
    const mask = new BigInt64Array(B * T);
    const regular = [...Array(tok.vocabSize).keys()].filter((i) => !tok.specialTokenIds.has(i));
    for (let i = 0; i < B * T; i++) {
      const t = i % T;
      ids[i] = BigInt(t === 0 ? 1 : t >= 30 ? 0 : regular[(i * 7) % regular.length]);
      mask[i] = t < 30 ? 1n : 0n;
    }
    const res = maskTokens({ dtype: 'int64', dims: [B, T], data: ids }, { dtype: 'int64', dims: [B, T], data: mask }, tok, new Rng(1), 'test');
    const out = res.ids.data as BigInt64Array;
    const labels = res.labels.data as BigInt64Array;
    const maskId = BigInt(tok.tokenToId('[MASK]')!);
    let chosen = 0;
    let masked = 0;
    let kept = 0;
    for (let i = 0; i < B * T; i++) {
      if (labels[i] === -100n) {
        expect(out[i]).toBe(ids[i]);
        continue;
      }
      expect(i % T).toBeGreaterThan(0);
      expect(i % T).toBeLessThan(30);
      expect(labels[i]).toBe(ids[i]);
      chosen++;
      if (out[i] === maskId) masked++;
      else if (out[i] === ids[i]) kept++;
    }
    expect(chosen / (B * 29)).toBeGreaterThan(0.12);
    expect(chosen / (B * 29)).toBeLessThan(0.18);
    expect(masked / chosen).toBeGreaterThan(0.72);
    expect(masked / chosen).toBeLessThan(0.88);
    expect(kept / chosen).toBeGreaterThan(0.04);
  });

  it('maskPatches: 40% of the patches blanked, targets are the original pixels', () => {
    const B = 2;
    const data = Float32Array.from({ length: B * 3 * 16 * 16 }, (_, i) => (i % 97) / 97 + 0.1);
    const res = maskPatches({ dtype: 'float32', dims: [B, 3, 16, 16], data }, 4, new Rng(2));
    expect(res.target.dims).toEqual([B, 16, 48]);
    const m = res.mask.data as Float32Array;
    expect(m.reduce((a, v) => a + v, 0)).toBe(B * Math.round(16 * MRM.ratio));
    // Patch n=5 of sample 0 is (row 1, col 1): its first target value is pixel (c0, y4, x4).
    expect((res.target.data as Float32Array)[5 * 48]).toBe(data[4 * 16 + 4]);
    const out = res.pixels.data as Float32Array;
    const blanked = m[5] === 1;
    expect(out[4 * 16 + 4] === 0).toBe(blanked);
  });

  it('bert-mlm and vit-mrm train their encoders; the loss falls', async () => {
    const mlm = await train({ ...fixed, graph: bertGraph(), recipe: 'bert-mlm', steps: 8, batchSize: 4, learningRate: 3e-3 });
    falls(mlm.losses, 0.5);
    expect(mlm.built.trainables.some((t) => t.name === 'mlm.transform.dense.weight')).toBe(true);
    const mrm = await train({ ...fixed, graph: vitGraph(), recipe: 'vit-mrm', steps: 8, batchSize: 4, learningRate: 3e-3 });
    falls(mrm.losses, 0.5);
  }, 60_000);
});

describe('templates that feed the model through prompt nodes', () => {
  it('clip (text.labels → text tower, captions as texts) and flamingo (few-shot prompt chain) train', async () => {
    const clip = await train({ ...fixed, graph: template('clip'), recipe: 'clip', steps: 5, batchSize: 4, learningRate: 2e-3 });
    falls(clip.losses, 0.5);
    const flamingo = await train({ ...fixed, graph: template('flamingo'), recipe: 'flamingo', steps: 5, batchSize: 2, learningRate: 3e-3 });
    falls(flamingo.losses, 0.05);
    expect(new Set(flamingo.built.trainables.map((t) => t.node))).toEqual(new Set(['perceiver', 'xattn']));
  }, 60_000);
});

describe('VQA exact match through generation', () => {
  it('reports exact_match at eval, and scores generated answers against targets', async () => {
    const evals: Array<Record<string, number>> = [];
    const res = await train({
      baseDir: graphsDir, dataset: 'shapes', datasetSize: 8, graph: template('instructblip'), recipe: 'instructblip', steps: 1, batchSize: 2,
      evalEvery: 1, evalSamples: 2, evalGenerate: 2, onEvent: (e) => e.type === 'eval' && evals.push(e.metrics),
    });
    expect(evals[0].exact_match).toBeGreaterThanOrEqual(0);
    expect(evals[0].exact_match).toBeLessThanOrEqual(1);
    // The same path with targets set to what the model says: every answer matches; a wrong target does not.
    const executor = new Executor();
    try {
      const common = { executor, graph: template('instructblip'), doc: res.plan.doc, baseDir: graphsDir, built: res.built, params: res.params, maxNewTokens: 4 };
      const { loadSplits } = await import('./batches.js');
      const sample = loadSplits('shapes', { size: 8 }).eval[0];
      const first = await generationExactMatch({ ...common, samples: [{ sample, prompt: 'what shape is it?', target: 'zzz' }] });
      expect(first.exactMatch).toBe(0);
      const again = await generationExactMatch({ ...common, samples: [{ sample, prompt: 'what shape is it?', target: `${first.answers[0].predicted}.` }] });
      expect(again.exactMatch).toBe(1);
    } finally {
      await executor.dispose();
    }
  }, 60_000);
});
