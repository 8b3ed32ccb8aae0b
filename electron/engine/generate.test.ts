import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Tensor, newModel } from '../onnx/ir.js';
import { createSession } from '../onnx/ort.js';
import { Rng } from './rng.js';
import { builtinTokenizer } from './tokenizer.js';
import {
  type DecoderRunner,
  type EmbedTokens,
  type GenerateOptions,
  GenerateError,
  argmax,
  embedFromSession,
  embedFromTable,
  generate,
  openDecoder,
  sampleToken,
} from './generate.js';
import { FLAVOURS, type Flavour, WORD_EMBEDDING, buildDecoder, buildEmbedTokens } from '../nodes/llms.js';

interface Setup {
  decoder: DecoderRunner & { release(): Promise<void> };
  embed: EmbedTokens;
}

const setups = new Map<Flavour, Setup>();

beforeAll(async () => {
  for (const flavour of FLAVOURS) {
    // Larger init so the untrained model's greedy choices are not near-ties.
    const params = { flavour, init_std: 0.2 };
    const frag = buildDecoder(params, { nodeId: `dec-${flavour}`, seed: 3, inputShapes: {} });
    // The embedding table is the decoder's tied one (gpt2/opt) or the embed node's own (llama).
    const table =
      frag.graph.initializers.get(WORD_EMBEDDING) ??
      buildEmbedTokens(params, { nodeId: `emb-${flavour}`, seed: 3, inputShapes: {} }).graph.initializers.get(WORD_EMBEDDING)!;
    const decoder = await openDecoder(newModel(frag.graph, frag.opset), { maxPositions: 128 });
    setups.set(flavour, { decoder, embed: embedFromTable(table) });
  }
});

afterAll(async () => {
  for (const s of setups.values()) await s.decoder.release();
});

/** Prompt embeddings for token rows, left-padded with id 0 (mask 0). */
async function prompt(setup: Setup, rows: number[][]): Promise<{ inputsEmbeds: Tensor; attentionMask: Tensor }> {
  const T = Math.max(...rows.map((r) => r.length));
  const ids = new BigInt64Array(rows.length * T);
  const mask = new BigInt64Array(rows.length * T);
  rows.forEach((r, b) =>
    r.forEach((id, i) => {
      ids[b * T + T - r.length + i] = BigInt(id);
      mask[b * T + T - r.length + i] = 1n;
    }),
  );
  const inputsEmbeds = await setup.embed({ dtype: 'int64', dims: [rows.length, T], data: ids });
  return { inputsEmbeds, attentionMask: { dtype: 'int64', dims: [rows.length, T], data: mask } };
}

async function gen(flavour: Flavour, rows: number[][], opts: Partial<GenerateOptions> = {}) {
  const s = setups.get(flavour)!;
  return generate({ decoder: s.decoder, embedTokens: s.embed, ...(await prompt(s, rows)), maxNewTokens: 10, ...opts });
}

const PROMPTS = [
  [1, 30, 93, 44, 65],
  [1, 166, 58],
];

describe('generate', () => {
  for (const flavour of FLAVOURS) {
    it(`${flavour}: greedy tokens with the KV cache equal those without it`, async () => {
      const cached = await gen(flavour, PROMPTS, { useCache: true, maxNewTokens: 12 });
      const full = await gen(flavour, PROMPTS, { useCache: false, maxNewTokens: 12 });
      expect(cached.tokens).toEqual(full.tokens);
      expect(cached.tokens.map((t) => t.length)).toEqual([12, 12]);
      expect(cached.steps).toBe(12);
      expect(cached.stoppedBy).toBe('max_new_tokens');
      // An untrained model still has to produce more than one distinct token, or the comparison proves little.
      expect(new Set(cached.tokens.flat()).size).toBeGreaterThan(2);
    });

    it(`${flavour}: a left-padded row generates exactly what it generates alone`, async () => {
      const batch = await gen(flavour, PROMPTS);
      const alone = await gen(flavour, [PROMPTS[1]]);
      expect(batch.tokens[1]).toEqual(alone.tokens[0]);
    });
  }

  it('top-k = 1 sampling equals greedy', async () => {
    const greedy = await gen('opt', PROMPTS);
    const topk1 = await gen('opt', PROMPTS, { sampling: { temperature: 0.7, topK: 1 }, seed: 5 });
    expect(topk1.tokens).toEqual(greedy.tokens);
  });

  it('temperature sampling is deterministic for a seed and varies across seeds', async () => {
    const a = await gen('llama', PROMPTS, { sampling: { temperature: 1.5 }, seed: 11 });
    const b = await gen('llama', PROMPTS, { sampling: { temperature: 1.5 }, seed: 11 });
    const c = await gen('llama', PROMPTS, { sampling: { temperature: 1.5 }, seed: 12 });
    expect(a.tokens).toEqual(b.tokens);
    expect(c.tokens).not.toEqual(a.tokens);
    // Sampling with and without the cache sees the same logits and the same random stream.
    const d = await gen('llama', PROMPTS, { sampling: { temperature: 1.5 }, seed: 11, useCache: false });
    expect(d.tokens).toEqual(a.tokens);
  });

  it('stops a row at a stop token and the loop when every row has stopped', async () => {
    const greedy = await gen('gpt2', [PROMPTS[0]]);
    const seq = greedy.tokens[0];
    const k = seq.findIndex((t, i) => i > 0 && !seq.slice(0, i).includes(t));
    expect(k).toBeGreaterThan(0);
    const stopped = await gen('gpt2', [PROMPTS[0]], { stopTokens: [seq[k]] });
    expect(stopped.tokens[0]).toEqual(seq.slice(0, k));
    expect(stopped.stoppedBy).toBe('stop_token');
    expect(stopped.steps).toBe(k + 1);
  });

  it('reports every token and can be cancelled between steps', async () => {
    const events: Array<Array<number | null>> = [];
    const controller = new AbortController();
    const res = await gen('opt', PROMPTS, {
      signal: controller.signal,
      onToken: (e) => {
        events.push(e.tokens);
        if (e.step === 2) controller.abort();
      },
    });
    expect(res.stoppedBy).toBe('cancelled');
    expect(res.steps).toBe(3);
    expect(events).toHaveLength(3);
    expect(res.tokens.map((t) => t.length)).toEqual([3, 3]);
    expect(events.map((e) => e[0])).toEqual(res.tokens[0]);
  });

  it('stops before running past the position table', async () => {
    const s = setups.get('opt')!;
    const decoder: DecoderRunner = { ...s.decoder, spec: { ...s.decoder.spec, maxPositions: 8 } };
    const res = await generate({ decoder, embedTokens: s.embed, ...(await prompt(s, [PROMPTS[0]])), maxNewTokens: 10 });
    expect(res.stoppedBy).toBe('max_positions');
    expect(res.tokens[0]).toHaveLength(4); // positions 5, 6, 7 were fed after the 5-token prompt
  });

  it('keeps tokens below vocabLimit and decodes with the tokenizer', async () => {
    const tok = builtinTokenizer();
    const ids = tok.encode('what color is the circle?');
    const res = await gen('opt', [ids], { vocabLimit: 40, decode: (t) => tok.decode(t) });
    expect(res.tokens[0].every((t) => t < 40)).toBe(true);
    expect(res.text?.[0]).toBe(tok.decode(res.tokens[0]));
  });

  it('rejects bad requests with clear errors', async () => {
    const s = setups.get('opt')!;
    const p = await prompt(s, [PROMPTS[0]]);
    const wide: Tensor = { dtype: 'float32', dims: [1, 2, 7], data: new Float32Array(14) };
    await expect(generate({ decoder: s.decoder, embedTokens: s.embed, inputsEmbeds: wide })).rejects.toThrow(
      /width 7 does not match the decoder width 96/,
    );
    await expect(generate({ decoder: s.decoder, embedTokens: s.embed, ...p, sampling: { topP: 0 } })).rejects.toThrow(GenerateError);
    const badMask: Tensor = { dtype: 'int64', dims: [1, 5], data: new BigInt64Array(5) };
    await expect(generate({ decoder: s.decoder, embedTokens: s.embed, inputsEmbeds: p.inputsEmbeds, attentionMask: badMask })).rejects.toThrow(
      /row 0 has no token/,
    );
  });

  it('embeds through an llm.embed_tokens session exactly like the host-side table lookup', async () => {
    const frag = buildEmbedTokens({ flavour: 'llama' }, { nodeId: 'emb', seed: 9, inputShapes: {} });
    const session = await createSession(newModel(frag.graph, frag.opset));
    try {
      const ids: Tensor = { dtype: 'int64', dims: [2, 3], data: BigInt64Array.from([1n, 2n, 3n, 315n, 0n, 4n]) };
      const viaSession = await embedFromSession(session)(ids);
      const viaTable = await embedFromTable(frag.graph.initializers.get(WORD_EMBEDDING)!)(ids);
      expect(viaSession.dims).toEqual([2, 3, 96]);
      expect(Array.from(viaSession.data as Float32Array)).toEqual(Array.from(viaTable.data as Float32Array));
      expect(() => embedFromTable(frag.graph.initializers.get(WORD_EMBEDDING)!)({ dtype: 'int64', dims: [1, 1], data: BigInt64Array.of(316n) })).toThrow(
        /token id 316 is outside the embedding table/,
      );
    } finally {
      await session.release();
    }
  });

  it('reads the cache layout from the session', () => {
    expect(setups.get('llama')!.decoder.spec).toMatchObject({ numLayers: 2, numKvHeads: 2, headDim: 24, hiddenSize: 96 });
  });
});

describe('sampleToken', () => {
  const logits = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.2), -Infinity]);

  function frequencies(opts: Parameters<typeof sampleToken>[1], n = 20000): number[] {
    const rng = new Rng(1);
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < n; i++) counts[sampleToken(logits, opts, rng)]++;
    return counts.map((c) => c / n);
  }

  it('samples from the softmax', () => {
    const f = frequencies({});
    expect(f[0]).toBeCloseTo(0.5, 1);
    expect(f[1]).toBeCloseTo(0.3, 1);
    expect(f[2]).toBeCloseTo(0.2, 1);
    expect(f[3]).toBe(0);
  });

  it('top-p keeps the smallest set reaching p, top-k the k best', () => {
    const p = frequencies({ topP: 0.7 });
    expect(p[2]).toBe(0);
    expect(p[0]).toBeCloseTo(0.625, 1);
    const k = frequencies({ topK: 2 });
    expect(k[2]).toBe(0);
    expect(k[1]).toBeCloseTo(0.375, 1);
  });

  it('temperature 0 and top-k 1 are the argmax', () => {
    const rng = new Rng(2);
    expect(sampleToken(logits, { temperature: 0 }, rng)).toBe(0);
    expect(sampleToken(Float32Array.from([0, 3, 3, 1]), { topK: 1 }, rng)).toBe(1);
    expect(argmax(Float32Array.from([0, 3, 3, 1]))).toBe(1);
    expect(argmax(Float32Array.from([0, 3, 3, 9]), 3)).toBe(1);
  });
});
