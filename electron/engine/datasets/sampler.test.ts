import { describe, expect, it } from 'vitest';
import { EpochSampler } from './sampler.js';

describe('EpochSampler', () => {
  it('visits every sample once per epoch, in a seeded order', () => {
    const s = new EpochSampler(10, { seed: 3 });
    const epoch0 = [...s.next(4).indices, ...s.next(4).indices, ...s.next(4).indices];
    expect(epoch0.length).toBe(10); // the last batch is short
    expect([...epoch0].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const b = s.next(4);
    expect(b.epoch).toBe(1);
    expect(s.epochOrder(1).slice(0, 4)).toEqual(b.indices);
    expect(s.epochOrder(1)).not.toEqual(s.epochOrder(0));
    expect(new EpochSampler(10, { seed: 3 }).epochOrder(0)).toEqual(epoch0);
    expect(new EpochSampler(10, { seed: 4 }).epochOrder(0)).not.toEqual(epoch0);
    expect(new EpochSampler(4, { shuffle: false }).next(3).indices).toEqual([0, 1, 2]);
  });

  it('drops the short last batch when asked', () => {
    const s = new EpochSampler(10, { seed: 1, dropLast: true });
    expect(s.next(4).epoch).toBe(0);
    expect(s.next(4).epoch).toBe(0);
    const third = s.next(4);
    expect(third.epoch).toBe(1);
    expect(third.indices.length).toBe(4);
    expect(() => s.next(11)).toThrow(/exceeds/);
  });

  it('resumes the exact batch sequence from its JSON state', () => {
    const a = new EpochSampler(7, { seed: 'run' });
    for (let i = 0; i < 5; i++) a.next(3);
    const saved = JSON.parse(JSON.stringify(a.state()));
    const expected = Array.from({ length: 6 }, () => a.next(3));
    const b = new EpochSampler(7, { seed: 'run' });
    b.restore(saved);
    expect(Array.from({ length: 6 }, () => b.next(3))).toEqual(expected);
    expect(() => b.restore({ epoch: 0, position: 8 })).toThrow(/beyond/);
    expect(() => b.restore({ epoch: -1, position: 0 })).toThrow(/sampler state/);
    expect(() => new EpochSampler(0)).toThrow(/positive/);
  });
});
