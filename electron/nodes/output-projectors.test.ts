import { describe, expect, it } from 'vitest';
import { type Tensor, newModel } from '../onnx/ir.js';
import { runModel } from '../onnx/ort.js';
import { assertSupported } from '../onnx/support.js';
import { Rng } from '../engine/rng.js';
import { SignalTokenParams, buildSignalProjector, describeSignalProjector, nodeTypes } from './output-projectors.js';
import { downstreamKey } from './types.js';

const f32 = (dims: number[], seed: number): Tensor => {
  const n = dims.reduce((a, d) => a * d, 1);
  return { dtype: 'float32', dims, data: new Rng(seed).fillNormal(new Float32Array(n), 1) };
};
const i64 = (dims: number[], values: number[]): Tensor => ({ dtype: 'int64', dims, data: BigInt64Array.from(values.map(BigInt)) });
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
const shapes = { hidden_states: ['B', 'T', 96] };

async function project(params: unknown, feeds: Record<string, Tensor>, seed = 1) {
  const frag = buildSignalProjector(SignalTokenParams.parse(params), { nodeId: 'op', seed, inputShapes: shapes });
  assertSupported(newModel(frag.graph, frag.opset), undefined, { requireKnownOps: true });
  const out = (await runModel(newModel(frag.graph, frag.opset), feeds)).conditioning;
  return { out, frag };
}

// ---- float64 reference of the transformer mode, written from the formulas (pre-norm nn.Transformer, ReLU FF) ----
type Mat = number[][]; // [tokens][width]
const get = (frag: { graph: { initializers: Map<string, Tensor> } }, name: string): Float32Array => {
  const t = frag.graph.initializers.get(name);
  if (!t) throw new Error(`missing ${name}`);
  return t.data as Float32Array;
};
function lin(x: Mat, w: Float32Array, b: Float32Array | null, outDim: number, rowOffset = 0): Mat {
  const inDim = x[0].length;
  return x.map((row) =>
    Array.from({ length: outDim }, (_, o) => {
      let s = b ? b[rowOffset + o] : 0;
      for (let i = 0; i < inDim; i++) s += w[(rowOffset + o) * inDim + i] * row[i];
      return s;
    }),
  );
}
function ln(x: Mat, g: Float32Array, b: Float32Array): Mat {
  return x.map((row) => {
    const m = row.reduce((s, v) => s + v, 0) / row.length;
    const v = row.reduce((s, u) => s + (u - m) ** 2, 0) / row.length;
    return row.map((u, i) => ((u - m) / Math.sqrt(v + 1e-5)) * g[i] + b[i]);
  });
}
const add = (a: Mat, b: Mat): Mat => a.map((r, i) => r.map((v, j) => v + b[i][j]));
function mha(frag: Parameters<typeof get>[0], name: string, x: Mat, mem: Mat, d: number, heads: number): Mat {
  const W = get(frag, `${name}.in_proj_weight`);
  const B = get(frag, `${name}.in_proj_bias`);
  const q = lin(x, W, B, d, 0);
  const k = lin(mem, W, B, d, d);
  const v = lin(mem, W, B, d, 2 * d);
  const hd = d / heads;
  const out: Mat = x.map(() => new Array(d).fill(0));
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < x.length; i++) {
      const s = k.map((kr) => {
        let dot = 0;
        for (let c = h * hd; c < (h + 1) * hd; c++) dot += q[i][c] * kr[c];
        return dot / Math.sqrt(hd);
      });
      const mx = Math.max(...s);
      const e = s.map((u) => Math.exp(u - mx));
      const z = e.reduce((a, u) => a + u, 0);
      for (let j = 0; j < mem.length; j++) for (let c = h * hd; c < (h + 1) * hd; c++) out[i][c] += (e[j] / z) * v[j][c];
    }
  return lin(out, get(frag, `${name}.out_proj.weight`), get(frag, `${name}.out_proj.bias`), d);
}
function ff(frag: Parameters<typeof get>[0], p: string, x: Mat, d: number, f: number): Mat {
  const h = lin(x, get(frag, `${p}.linear1.weight`), get(frag, `${p}.linear1.bias`), f).map((r) => r.map((v) => Math.max(0, v)));
  return lin(h, get(frag, `${p}.linear2.weight`), get(frag, `${p}.linear2.bias`), d);
}
const norm = (frag: Parameters<typeof get>[0], n: string, x: Mat) => ln(x, get(frag, `${n}.weight`), get(frag, `${n}.bias`));

describe('outproj.signal_tokens', () => {
  it('transformer mode (tiny): [B,T,96] → [B,8,64] and matches a float64 reference of the pre-norm transformer', async () => {
    const hidden = f32([2, 7, 96], 3);
    const { out, frag } = await project({}, { hidden_states: hidden });
    expect(out.dims).toEqual([2, 8, 64]);
    const d = 64;
    const heads = 4;
    const got = out.data as Float32Array;
    for (let b = 0; b < 2; b++) {
      const h = hidden.data as Float32Array;
      const sig: Mat = [3, 4, 5, 6].map((t) => Array.from(h.subarray((b * 7 + t) * 96, (b * 7 + t + 1) * 96)));
      let mem = lin(sig, get(frag, 'fc.weight'), get(frag, 'fc.bias'), d);
      const e = 'tfm.encoder.layers.0';
      mem = add(mem, mha(frag, `${e}.self_attn`, norm(frag, `${e}.norm1`, mem), norm(frag, `${e}.norm1`, mem), d, heads));
      mem = add(mem, ff(frag, e, norm(frag, `${e}.norm2`, mem), d, 256));
      mem = norm(frag, 'tfm.encoder.norm', mem);
      const qe = get(frag, 'query_embs');
      let x: Mat = Array.from({ length: 8 }, (_, i) => Array.from(qe.subarray(i * d, (i + 1) * d)));
      const dl = 'tfm.decoder.layers.0';
      x = add(x, mha(frag, `${dl}.self_attn`, norm(frag, `${dl}.norm1`, x), norm(frag, `${dl}.norm1`, x), d, heads));
      x = add(x, mha(frag, `${dl}.multihead_attn`, norm(frag, `${dl}.norm2`, x), mem, d, heads));
      x = add(x, ff(frag, dl, norm(frag, `${dl}.norm3`, x), d, 256));
      x = norm(frag, 'tfm.decoder.norm', x);
      const y = lin(x, get(frag, 'model.weight'), get(frag, 'model.bias'), 64);
      expect(maxAbsDiff(y.flat(), got.subarray(b * 8 * 64, (b + 1) * 8 * 64))).toBeLessThan(1e-4);
    }
  });

  it('linear mode: conditioning = W·h + b at the last k positions, [B,k,D_cond]', async () => {
    const hidden = f32([1, 6, 96], 4);
    const { out, frag } = await project({ mode: 'linear', num_signal_tokens: 3, d_cond: 32 }, { hidden_states: hidden });
    expect(out.dims).toEqual([1, 3, 32]);
    const h = hidden.data as Float32Array;
    const ref = lin([3, 4, 5].map((t) => Array.from(h.subarray(t * 96, (t + 1) * 96))), get(frag, 'model.weight'), get(frag, 'model.bias'), 32);
    expect(maxAbsDiff(ref.flat(), out.data as Float32Array)).toBeLessThan(1e-4);
    expect(frag.weights.sort()).toEqual(['model.bias', 'model.weight']);
  });

  it('signal_positions input gathers per example; inputs_embeds are added at the same positions', async () => {
    const hidden = f32([2, 6, 96], 5);
    const embeds = f32([2, 6, 96], 6);
    const params = { mode: 'linear', positions: 'input', add_input_embeds: true, num_signal_tokens: 2 };
    const { out } = await project(params, { hidden_states: hidden, inputs_embeds: embeds, signal_positions: i64([2, 2], [1, 3, 0, -1]) });
    // The same through 'last' positions on hand-gathered, pre-added inputs.
    const h = hidden.data as Float32Array;
    const e = embeds.data as Float32Array;
    const picked = new Float32Array(2 * 2 * 96);
    [[0, 1], [0, 3], [1, 0], [1, 5]].forEach(([b, t], row) => {
      for (let c = 0; c < 96; c++) picked[row * 96 + c] = h[(b * 6 + t) * 96 + c] + e[(b * 6 + t) * 96 + c];
    });
    const { out: ref } = await project({ mode: 'linear', num_signal_tokens: 2 }, { hidden_states: { dtype: 'float32', dims: [2, 2, 96], data: picked } });
    expect(out.dims).toEqual([2, 2, 64]);
    expect(maxAbsDiff(out.data as Float32Array, ref.data as Float32Array)).toBeLessThan(1e-5);
  });

  it('resolves widths from neighbours and reports missing or mismatched ones', () => {
    const def = nodeTypes.find((d) => d.info.type === 'outproj.signal_tokens');
    if (!def) throw new Error('not registered');
    const p = def.params.parse({});
    expect(def.outputShapes(p, { hidden_states: ['B', 'T', 96], [downstreamKey('conditioning')]: ['B', 'Q', 768] })).toEqual({
      conditioning: ['B', 8, 768],
    });
    const frag = buildSignalProjector(SignalTokenParams.parse({}), { nodeId: 'w', seed: 0, inputShapes: { hidden_states: ['B', 'T', 96], [downstreamKey('conditioning')]: ['B', 'Q', 48] } });
    expect(frag.graph.initializers.get('model.weight')?.dims).toEqual([48, 64]);
    expect(() => buildSignalProjector(SignalTokenParams.parse({}), { nodeId: 'x', seed: 0, inputShapes: {} })).toThrow(/node 'x': d_llm is 'auto'.*hidden_states/);
    expect(() => buildSignalProjector(SignalTokenParams.parse({ d_model: 30 }), { nodeId: 'y', seed: 0, inputShapes: shapes })).toThrow(/d_model 30.*heads 4/);
    const ports = def.ports?.(def.params.parse({ positions: 'input', add_input_embeds: true }));
    expect(ports?.inputs.map((i) => i.name)).toEqual(['hidden_states', 'signal_positions', 'inputs_embeds']);
    for (const key of Object.keys((def.params as unknown as { shape: Record<string, unknown> }).shape)) expect(def.paramDocs[key]).toBeTruthy();
  });

  it("the 'nextgpt' preset has NExT-GPT's shapes (4096 → 512, 4+4 layers, 77×768) and describes without allocating", () => {
    const d = describeSignalProjector(SignalTokenParams.parse({ preset: 'nextgpt' }), { hidden_states: ['B', 'T', 4096] });
    const m = 512;
    const f = 2048;
    const mha = 3 * m * m + 3 * m + m * m + m;
    const ffn = m * f + f + f * m + m;
    const enc = mha + ffn + 2 * 2 * m;
    const dec = 2 * mha + ffn + 3 * 2 * m;
    const expected = 4096 * m + m + 4 * enc + 2 * m + 4 * dec + 2 * m + 77 * m + m * 768 + 768;
    expect(d.parameterCount).toBe(expected);
    expect(d.weights.find((w) => w.name === 'query_embs')?.shape).toEqual([1, 77, 512]);
    expect(d.weights.find((w) => w.name === 'tfm.decoder.layers.3.multihead_attn.in_proj_weight')?.shape).toEqual([1536, 512]);
  });
});
