import { describe, expect, it } from 'vitest';
import { Rng } from './rng.js';
import { SCHEDULER_PRESETS, Scheduler, SchedulerError, betaSchedule, inferenceTimesteps, parseSchedulerConfig } from './schedulers.js';

// Reference values are recomputed here from the formulas, in float64 and written independently of the module.
function refAlphaBar(kind: 'linear' | 'scaled_linear', b0: number, b1: number, T: number, t: number): number {
  let p = 1;
  for (let s = 0; s <= t; s++) {
    const f = s / (T - 1);
    const beta = kind === 'linear' ? b0 * (1 - f) + b1 * f : (Math.sqrt(b0) * (1 - f) + Math.sqrt(b1) * f) ** 2;
    p *= 1 - beta;
  }
  return p;
}

function randn(n: number, seed: number): Float32Array {
  return new Rng(seed).fillNormal(new Float32Array(n), 1);
}

describe('beta schedules and timesteps', () => {
  it('linear and scaled_linear betas hit the ends and the midpoint', () => {
    const lin = betaSchedule({ betaStart: 1e-4, betaEnd: 0.02, betaSchedule: 'linear', numTrainTimesteps: 1000 });
    expect(lin[0]).toBeCloseTo(1e-4, 15);
    expect(lin[999]).toBeCloseTo(0.02, 15);
    expect(lin[500]).toBeCloseTo(1e-4 + (0.02 - 1e-4) * (500 / 999), 15);
    const sc = betaSchedule({ betaStart: 0.00085, betaEnd: 0.012, betaSchedule: 'scaled_linear', numTrainTimesteps: 1000 });
    expect(sc[0]).toBeCloseTo(0.00085, 15);
    expect(sc[999]).toBeCloseTo(0.012, 15);
    const mid = Math.sqrt(0.00085) + (Math.sqrt(0.012) - Math.sqrt(0.00085)) * (300 / 999);
    expect(sc[300]).toBeCloseTo(mid * mid, 15);
  });

  it('alphas_cumprod matches the product of (1 − β)', () => {
    const s = new Scheduler(SCHEDULER_PRESETS.sd15);
    for (const t of [0, 1, 17, 500, 999]) expect(s.alphasCumprod[t]).toBeCloseTo(refAlphaBar('scaled_linear', 0.00085, 0.012, 1000, t), 14);
  });

  it('leading spacing with steps_offset gives 981, 961, …, 1 for 50 steps (SD 1.5)', () => {
    const ts = inferenceTimesteps(parseSchedulerConfig(SCHEDULER_PRESETS.sd15), 50);
    expect(ts.length).toBe(50);
    expect(ts.slice(0, 3)).toEqual([981, 961, 941]);
    expect(ts[49]).toBe(1);
  });

  it('trailing and linspace spacings', () => {
    const trailing = inferenceTimesteps(parseSchedulerConfig({ timestepSpacing: 'trailing' }), 3);
    // round(arange(1000, 0, −333.33)) − 1 = [999, 666, 332]
    expect(trailing).toEqual([999, 666, 332]);
    const lin = inferenceTimesteps(parseSchedulerConfig({ timestepSpacing: 'linspace' }), 4);
    // linspace(0, 999, 4) = 0, 333, 666, 999
    expect(lin).toEqual([999, 666, 333, 0]);
    const lin6 = inferenceTimesteps(parseSchedulerConfig({ timestepSpacing: 'linspace' }), 6);
    // 0, 199.8, 399.6, 599.4, 799.2, 999 → rounded
    expect(lin6).toEqual([999, 799, 599, 400, 200, 0]);
  });

  it('rejects bad configs and step counts with the field named', () => {
    expect(() => parseSchedulerConfig({ betaStart: 0.1, betaEnd: 0.01 })).toThrow(/betaEnd/);
    expect(() => parseSchedulerConfig({ kind: 'euler' })).toThrow(/kind/);
    expect(() => parseSchedulerConfig({ bogus: 1 })).toThrow(SchedulerError);
    expect(() => new Scheduler({}).setTimesteps(0)).toThrow(/1\.\.1000/);
    expect(() => new Scheduler({ stepsOffset: 1 }).setTimesteps(1000)).toThrow(/stepsOffset/);
    const s = new Scheduler({});
    s.setTimesteps(10);
    expect(() => s.step(new Float32Array(2), 5, new Float32Array(2))).toThrow(/not one of the 10/);
  });
});

describe('DDIM step', () => {
  it('matches hand-computed values for the first steps (SD 1.5 config, η = 0)', () => {
    const s = new Scheduler(SCHEDULER_PRESETS.sd15);
    const ts = s.setTimesteps(10); // leading: 901, 801, …, 1
    expect(ts[0]).toBe(901);
    let x = randn(6, 1);
    for (let k = 0; k < 3; k++) {
      const t = ts[k];
      const eps = randn(6, 100 + k);
      const aT = refAlphaBar('scaled_linear', 0.00085, 0.012, 1000, t);
      const aP = refAlphaBar('scaled_linear', 0.00085, 0.012, 1000, t - 100);
      const { prevSample } = s.step(eps, t, x);
      for (let i = 0; i < 6; i++) {
        const x0 = (x[i] - Math.sqrt(1 - aT) * eps[i]) / Math.sqrt(aT);
        const expected = Math.sqrt(aP) * x0 + Math.sqrt(1 - aP) * eps[i];
        expect(prevSample[i]).toBeCloseTo(expected, 5);
      }
      x = prevSample;
    }
  });

  it('uses ᾱ₀ (set_alpha_to_one false) or 1 after the last step', () => {
    const x = randn(4, 2);
    const eps = randn(4, 3);
    for (const setAlphaToOne of [false, true]) {
      const s = new Scheduler({ ...SCHEDULER_PRESETS.sd15, setAlphaToOne });
      const ts = s.setTimesteps(10);
      const t = ts[9];
      expect(t).toBe(1);
      const aT = refAlphaBar('scaled_linear', 0.00085, 0.012, 1000, t);
      const aP = setAlphaToOne ? 1 : refAlphaBar('scaled_linear', 0.00085, 0.012, 1000, 0);
      const { prevSample } = s.step(eps, t, x);
      for (let i = 0; i < 4; i++) {
        const x0 = (x[i] - Math.sqrt(1 - aT) * eps[i]) / Math.sqrt(aT);
        expect(prevSample[i]).toBeCloseTo(Math.sqrt(aP) * x0 + Math.sqrt(1 - aP) * eps[i], 5);
      }
    }
  });

  it('η > 0 adds σ z with σ = η √((1−ᾱp)/(1−ᾱt)) √(1 − ᾱt/ᾱp), and clips x̂₀', () => {
    const s = new Scheduler({ kind: 'ddim', eta: 0.7, clipSample: true, betaSchedule: 'linear' });
    const ts = s.setTimesteps(20); // leading, ratio 50: 950, 900, …
    const t = ts[2];
    expect(t).toBe(850);
    const x = randn(8, 4);
    x[0] = 5; // makes x̂₀ exceed 1 so the clip matters
    const eps = randn(8, 5);
    const z = randn(8, 6);
    const aT = refAlphaBar('linear', 1e-4, 0.02, 1000, t);
    const aP = refAlphaBar('linear', 1e-4, 0.02, 1000, t - 50);
    const sigma = 0.7 * Math.sqrt((1 - aP) / (1 - aT)) * Math.sqrt(1 - aT / aP);
    const { prevSample, predOriginalSample } = s.step(eps, t, x, z);
    for (let i = 0; i < 8; i++) {
      const x0 = Math.max(-1, Math.min(1, (x[i] - Math.sqrt(1 - aT) * eps[i]) / Math.sqrt(aT)));
      expect(predOriginalSample[i]).toBeCloseTo(x0, 5);
      const expected = Math.sqrt(aP) * x0 + Math.sqrt(1 - aP - sigma * sigma) * eps[i] + sigma * z[i];
      expect(prevSample[i]).toBeCloseTo(expected, 5);
    }
    expect(predOriginalSample[0]).toBe(1);
    expect(() => s.step(eps, t, x)).toThrow(/needs a noise array/);
  });

  it('is deterministic with η = 0', () => {
    const run = () => {
      const s = new Scheduler(SCHEDULER_PRESETS.sd15);
      let x = randn(16, 9);
      for (const t of s.setTimesteps(5)) x = s.step(Float32Array.from(x, (v) => 0.3 * v), t, x).prevSample;
      return x;
    };
    expect(Array.from(run())).toEqual(Array.from(run()));
  });

  it('recovers x₀ when the model predicts the true noise exactly (ε oracle)', () => {
    for (const preset of ['sd15', 'ddim-default'] as const) {
      const s = new Scheduler({ ...SCHEDULER_PRESETS[preset], setAlphaToOne: true, clipSample: false });
      const n = 64;
      const x0 = Float32Array.from(randn(n, 11), (v) => Math.tanh(v));
      const noise = randn(n, 12);
      const ts = s.setTimesteps(25);
      let x = s.addNoise(x0, noise, [ts[0]]);
      for (const t of ts) {
        // The exact noise that explains x_t given the known x₀.
        const a = s.alphasCumprod[t];
        const eps = Float32Array.from(x, (v, i) => (v - Math.sqrt(a) * x0[i]) / Math.sqrt(1 - a));
        x = s.step(eps, t, x).prevSample;
      }
      let maxErr = 0;
      for (let i = 0; i < n; i++) maxErr = Math.max(maxErr, Math.abs(x[i] - x0[i]));
      expect(maxErr).toBeLessThan(1e-4);
    }
  });

  it('sample and v_prediction parametrisations give the same step as the equivalent ε', () => {
    const x0 = Float32Array.from(randn(10, 20), (v) => 0.5 * v);
    const noise = randn(10, 21);
    const base = { ...SCHEDULER_PRESETS.sd15, setAlphaToOne: true };
    const sEps = new Scheduler(base);
    const ts = sEps.setTimesteps(10);
    const t = ts[3];
    const xt = sEps.addNoise(x0, noise, [t]);
    const ref = sEps.step(noise, t, xt).prevSample;
    const sX0 = new Scheduler({ ...base, predictionType: 'sample' });
    sX0.setTimesteps(10);
    const sV = new Scheduler({ ...base, predictionType: 'v_prediction' });
    sV.setTimesteps(10);
    const v = sV.velocity(x0, noise, [t]);
    const viaX0 = sX0.step(x0, t, xt).prevSample;
    const viaV = sV.step(v, t, xt).prevSample;
    for (let i = 0; i < 10; i++) {
      expect(viaX0[i]).toBeCloseTo(ref[i], 4);
      expect(viaV[i]).toBeCloseTo(ref[i], 4);
    }
  });
});

describe('DDPM step', () => {
  it('matches the posterior mean and fixed_small variance for a few steps', () => {
    const s = new Scheduler(SCHEDULER_PRESETS['ddpm-default']);
    const ts = s.setTimesteps(4); // leading, ratio 250: 750, 500, 250, 0
    expect(ts).toEqual([750, 500, 250, 0]);
    let x = randn(5, 30);
    for (let k = 0; k < 4; k++) {
      const t = ts[k];
      const prev = k < 3 ? ts[k + 1] : -1;
      const eps = randn(5, 40 + k);
      const z = randn(5, 50 + k);
      const aT = refAlphaBar('linear', 1e-4, 0.02, 1000, t);
      const aP = prev >= 0 ? refAlphaBar('linear', 1e-4, 0.02, 1000, prev) : 1;
      const alpha = aT / aP;
      const beta = 1 - alpha;
      const variance = t > 0 ? Math.max(((1 - aP) / (1 - aT)) * beta, 1e-20) : 0;
      const { prevSample } = s.step(eps, t, x, z);
      for (let i = 0; i < 5; i++) {
        const x0 = Math.max(-1, Math.min(1, (x[i] - Math.sqrt(1 - aT) * eps[i]) / Math.sqrt(aT)));
        const mu = ((Math.sqrt(aP) * beta) / (1 - aT)) * x0 + ((Math.sqrt(alpha) * (1 - aP)) / (1 - aT)) * x[i];
        expect(prevSample[i]).toBeCloseTo(mu + Math.sqrt(variance) * z[i], 5);
      }
      x = prevSample;
    }
  });

  it('the last step (t = 0) adds no noise and needs none', () => {
    const s = new Scheduler(SCHEDULER_PRESETS['ddpm-default']);
    s.setTimesteps(4);
    const x = randn(3, 1);
    const eps = randn(3, 2);
    const a = s.step(eps, 0, x).prevSample;
    const b = s.step(eps, 0, x, randn(3, 99)).prevSample;
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(() => s.step(eps, 250, x)).toThrow(/needs a noise array/);
  });
});

describe('addNoise', () => {
  it('x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε with one timestep per batch element', () => {
    const s = new Scheduler(SCHEDULER_PRESETS.sd15);
    const x0 = randn(6, 1);
    const e = randn(6, 2);
    const out = s.addNoise(x0, e, [10, 700]);
    for (let i = 0; i < 6; i++) {
      const a = refAlphaBar('scaled_linear', 0.00085, 0.012, 1000, i < 3 ? 10 : 700);
      expect(out[i]).toBeCloseTo(Math.sqrt(a) * x0[i] + Math.sqrt(1 - a) * e[i], 6);
    }
    expect(() => s.addNoise(x0, e, [1, 2, 3, 4])).toThrow(/4 batch elements/);
    expect(() => s.addNoise(x0, e, [1000, 1])).toThrow(/timestep 1000 of batch element 0/);
  });
});
