import { describe, expect, it } from 'vitest';
import { Rng, RngError, hashString } from './rng.js';

const take = (r: Rng, n: number): number[] => Array.from({ length: n }, () => r.nextU32());

describe('Rng', () => {
  it('is deterministic by seed and sensitive to it', () => {
    expect(take(new Rng(42), 8)).toEqual(take(new Rng(42), 8));
    expect(take(new Rng(42), 8)).not.toEqual(take(new Rng(43), 8));
    expect(take(new Rng(1), 8)).not.toEqual(take(new Rng('1'), 8));
    expect(take(new Rng(2 ** 40), 8)).not.toEqual(take(new Rng(2 ** 40 + 1), 8));
    expect(take(new Rng(-5), 8)).not.toEqual(take(new Rng(5), 8));
    expect(() => new Rng(1.5)).toThrow(RngError);
  });

  it('forks streams from the seed lineage, not the parent position', () => {
    const a = new Rng(7);
    const before = take(a.fork('data'), 6);
    take(a, 100);
    a.normal();
    expect(take(a.fork('data'), 6)).toEqual(before);
    expect(take(a.fork('init'), 6)).not.toEqual(before);
    expect(take(a.fork('data').fork('x'), 6)).not.toEqual(take(a.fork('data'), 6));
    expect(take(new Rng(8).fork('data'), 6)).not.toEqual(before);
    expect(take(a.fork(0), 6)).not.toEqual(take(a.fork('0'), 6));
  });

  it('resumes exactly from a JSON round trip of its state, even mid Box-Muller pair', () => {
    const r = new Rng('resume');
    r.uniform();
    r.normal(); // leaves a spare normal
    const saved = JSON.parse(JSON.stringify(r.state()));
    expect(saved.spareNormal).not.toBeNull();
    const expected = [r.normal(), r.uniform(), r.int(1000), r.normal(), r.fork('f').uniform()];
    const resumed = Rng.fromState(saved);
    expect([resumed.normal(), resumed.uniform(), resumed.int(1000), resumed.normal(), resumed.fork('f').uniform()]).toEqual(expected);
  });

  it('rejects malformed states with the offending field', () => {
    const good = new Rng(1).state();
    expect(() => Rng.fromState({ ...good, s: [1, 2, 3] })).toThrow(/'s'/);
    expect(() => Rng.fromState({ ...good, s: [0, 0, 0, 0] })).toThrow(/all-zero/);
    expect(() => Rng.fromState({ ...good, key: [1, 2, 3, -1] })).toThrow(/key/);
    expect(() => Rng.fromState('nope')).toThrow(RngError);
  });

  it('has sensible uniform, normal and integer distributions', () => {
    const r = new Rng(3);
    const n = 200_000;
    let su = 0, sn = 0, sn2 = 0, minU = 1, maxU = 0;
    for (let i = 0; i < n; i++) {
      const u = r.uniform();
      minU = Math.min(minU, u);
      maxU = Math.max(maxU, u);
      su += u;
      const g = r.normal();
      sn += g;
      sn2 += g * g;
    }
    expect(minU).toBeGreaterThanOrEqual(0);
    expect(maxU).toBeLessThan(1);
    expect(su / n).toBeCloseTo(0.5, 2);
    expect(sn / n).toBeCloseTo(0, 2);
    expect(sn2 / n).toBeCloseTo(1, 1.5);
    const counts = new Array(7).fill(0);
    for (let i = 0; i < 70_000; i++) counts[r.int(7)]++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(500);
    expect(() => r.int(0)).toThrow(RngError);
    expect(() => r.int(2.5)).toThrow(RngError);
  });

  it('shuffles into a permutation, deterministically', () => {
    const p = new Rng(9).permutation(50);
    expect([...p].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(p).toEqual(new Rng(9).permutation(50));
    expect(p).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('initialises weights with PyTorch bounds', () => {
    const r = new Rng(11);
    const w = r.kaimingUniform(new Float32Array(20_000), 64); // a = √5 → bound 1/√64 = 0.125
    const maxAbs = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(maxAbs).toBeLessThanOrEqual(0.125);
    expect(maxAbs).toBeGreaterThan(0.124);
    const relu = r.kaimingUniform(new Float64Array(20_000), 24, 0); // a = 0 → bound √(6/24) = 0.5
    expect(relu.reduce((m, v) => Math.max(m, Math.abs(v)), 0)).toBeGreaterThan(0.499);
    expect(relu.reduce((m, v) => Math.max(m, Math.abs(v)), 0)).toBeLessThanOrEqual(0.5);

    const g = r.fillNormal(new Float32Array(50_000), 0.02, 1);
    const mean = g.reduce((a, b) => a + b, 0) / g.length;
    const std = Math.sqrt(g.reduce((a, b) => a + (b - mean) ** 2, 0) / g.length);
    expect(mean).toBeCloseTo(1, 3);
    expect(std).toBeCloseTo(0.02, 3);

    const t = r.truncNormal(new Float32Array(20_000), 1, 0, -0.5, 1.5);
    expect(Math.min(...t)).toBeGreaterThanOrEqual(-0.5);
    expect(Math.max(...t)).toBeLessThanOrEqual(1.5);
    expect(Math.min(...t)).toBeLessThan(-0.49);
    expect(() => r.truncNormal(new Float32Array(1), 0.01, 0, 5, 6)).toThrow(/bounds/);

    const u = r.fillUniform([0, 0, 0, 0], 2, 3);
    for (const v of u) expect(v >= 2 && v < 3).toBe(true);
  });

  it('hashString is stable', () => {
    expect(hashString('abc')).toBe(hashString('abc'));
    expect(hashString('abc')).not.toBe(hashString('abd'));
  });
});
