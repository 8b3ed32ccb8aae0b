import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { TrainEvent } from './messages.js';
import { pauseTraining, resumeTraining, startTraining, stopTraining } from './train.js';

const graphsDir = join(import.meta.dirname, '..', '..', 'graphs');

describe('engine train entry (worker protocol)', () => {
  it('reports contract train.events, pauses, resumes and stops between steps', async () => {
    const events: TrainEvent[] = [];
    const document = JSON.parse(readFileSync(join(graphsDir, 'blip2.graph.json'), 'utf8')) as unknown;
    const id = 'job-1';
    let paused = false;
    const job = startTraining(
      { id, document, baseDir: graphsDir, config: { steps: 50, learningRate: 1e-3, batchSize: 2, dataset: 'shapes', datasetSize: 8, recipe: 'captioning' } },
      (e) => {
        events.push(e as TrainEvent);
        const ev = e as TrainEvent;
        if (ev.type === 'step' && ev.step === 2 && !paused) {
          paused = true;
          pauseTraining({ id });
          setTimeout(() => resumeTraining({ id }), 50);
        }
        if (ev.type === 'step' && ev.step === 4) stopTraining({ id });
      },
    );
    await job;
    const types = events.map((e) => e.type);
    expect(types[0]).toBe('started');
    expect(types).toContain('paused');
    expect(types).toContain('resumed');
    expect(types[types.length - 1]).toBe('stopped');
    const steps = events.filter((e) => e.type === 'step');
    expect(steps.map((e) => e.step)).toEqual([1, 2, 3, 4]);
    for (const e of steps) {
      expect(e.channel).toBe('train.event');
      expect(typeof e.loss).toBe('number');
      expect(e.totalSteps).toBe(50);
    }
    expect(() => stopTraining({ id })).toThrow(/no running training job 'job-1'/);
  });

  it('rejects a bad config naming the field', async () => {
    await expect(startTraining({ id: 'x', document: {}, baseDir: graphsDir, config: { steps: 0 } }, () => undefined)).rejects.toThrow(/field 'config\.steps'/);
  });
});
