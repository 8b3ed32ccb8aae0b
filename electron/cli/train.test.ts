import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError } from './args.js';
import { parseAdapterFlag, trainCommand } from './train.js';

const graph = join(import.meta.dirname, '..', '..', 'graphs', 'blip2.graph.json');
const tmp = mkdtempSync(join(tmpdir(), 'vlmc-train-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('vlmc train', () => {
  it('--json prints one JSON object per line; every step carries a numeric loss; --out then --resume continue', async () => {
    const lines: string[] = [];
    const out = join(tmp, 'run');
    const code = await trainCommand([graph, '--recipe', 'llava-stage1', '--steps', '2', '--batch', '2', '--dataset-size', '4', '--out', out, '--json'], (l) => lines.push(l));
    expect(code).toBe(0);
    const events = lines.map((l) => JSON.parse(l) as { type: string; loss?: unknown; step?: number });
    const steps = events.filter((e) => e.type === 'step');
    expect(steps).toHaveLength(2);
    for (const s of steps) expect(typeof s.loss).toBe('number');
    expect(events[events.length - 1].type).toBe('done');

    const more: string[] = [];
    await trainCommand([graph, '--recipe', 'llava-stage1', '--steps', '3', '--batch', '2', '--dataset-size', '4', '--resume', out, '--json'], (l) => more.push(l));
    const resumedSteps = more.map((l) => JSON.parse(l) as { type: string; step?: number }).filter((e) => e.type === 'step');
    expect(resumedSteps.map((e) => e.step)).toEqual([3]);
  });

  it('--teacher gives nextgpt-align its text-to-image graph; a missing teacher file is named', async () => {
    const graphs = join(import.meta.dirname, '..', '..', 'graphs');
    const nextgpt = join(graphs, 'nextgpt.graph.json');
    const lines: string[] = [];
    const code = await trainCommand(
      [nextgpt, '--recipe', 'nextgpt-align', '--teacher', join(graphs, 'text-to-image.graph.json'), '--steps', '2', '--batch', '2', '--dataset-size', '4', '--json'],
      (l) => lines.push(l),
    );
    expect(code).toBe(0);
    const started = lines.map((l) => JSON.parse(l) as { type: string; nodes?: { train: string[] } }).find((e) => e.type === 'started');
    expect(started?.nodes?.train).toEqual(['outproj']);
    await expect(trainCommand([nextgpt, '--recipe', 'nextgpt-align', '--teacher', join(tmp, 'missing.graph.json')], () => undefined)).rejects.toThrow(
      /cannot read --teacher graph '.*missing\.graph\.json'/,
    );
  });

  it('names bad options', async () => {
    await expect(trainCommand([graph, '--recipe', 'nope'], () => undefined)).rejects.toThrow(/unknown recipe 'nope'/);
    await expect(trainCommand([graph, '--recipe', 'lm', '--steps', '-1'], () => undefined)).rejects.toThrow(UsageError);
    expect(() => parseAdapterFlag('lorax')).toThrow(/unknown method 'lorax'/);
    expect(parseAdapterFlag('lora:r=16,lora_alpha=32,target_modules=["q_proj"]')).toEqual({
      method: 'lora',
      config: { r: 16, lora_alpha: 32, target_modules: ['q_proj'] },
    });
  });
});
