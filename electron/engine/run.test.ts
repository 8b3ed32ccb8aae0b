import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseGraphDocument } from './document.js';
import { cancelRun, mapRunInputs, runGraph, type RunJobEvent } from './run.js';

const graphsDir = join(import.meta.dirname, '..', '..', 'graphs');
const blip2Text = readFileSync(join(graphsDir, 'blip2.graph.json'), 'utf8');
const blip2 = () => JSON.parse(blip2Text) as Record<string, unknown> & { nodes: Array<Record<string, unknown>> };

async function run(id: string, args: Partial<Parameters<typeof runGraph>[0]>): Promise<RunJobEvent[]> {
  const events: RunJobEvent[] = [];
  await runGraph({ id, document: blip2(), baseDir: graphsDir, ...args }, (e) => events.push(e));
  return events;
}

describe('run entry', () => {
  let png: Uint8Array;
  beforeAll(async () => {
    png = new Uint8Array(await sharp({ create: { width: 64, height: 64, channels: 3, background: '#2a6' } }).png().toBuffer());
  });

  it('maps the image to every io.image node and the prompt to the first io.text node, or the named one', () => {
    const doc = parseGraphDocument(blip2Text, 'blip2');
    const bytes = new Uint8Array([1, 2, 3]);
    expect(mapRunInputs(doc, { image: { name: 'a.png', bytes }, prompt: 'hi' })).toEqual({ image: { bytes }, prompt: { text: 'hi' } });
    const two = { ...doc, nodes: [...doc.nodes, { ...doc.nodes.find((n) => n.id === 'prompt')!, id: 'question' }] };
    expect(mapRunInputs(two, { prompt: 'q' })).toEqual({ prompt: { text: 'q' } });
    expect(mapRunInputs(two, { prompt: 'q', promptNode: 'question' })).toEqual({ question: { text: 'q' } });
    expect(() => mapRunInputs(doc, { prompt: 'q', promptNode: 'vit' })).toThrow(/node 'vit', which is a encoder\.eva_vit, not a Text/);
    expect(() => mapRunInputs(doc, { prompt: 'q', promptNode: 'nope' })).toThrow(/'nope', which is not in the graph/);
    const noImage = { ...doc, nodes: doc.nodes.filter((n) => n.type !== 'io.image') };
    expect(() => mapRunInputs(noImage, { image: { name: 'x.png', bytes } })).toThrow(/no Image \(io\.image\) node/);
  });

  it('runs BLIP-2 on image bytes to text on the output node, then answers a rerun from the cache', async () => {
    const first = await run('r1', { inputs: { image: { name: 'green.png', bytes: png }, prompt: 'What shape is it?' } });
    const result = first.find((e) => e.type === 'result');
    expect(result?.node).toBe('answer');
    expect(typeof result?.text).toBe('string');
    expect(first.filter((e) => e.type === 'started').map((e) => e.node)).toContain('qformer');
    expect(first.some((e) => e.type === 'progress' && e.node === 'llm' && e.total !== undefined)).toBe(true);
    const done = first.at(-1);
    expect(done?.type).toBe('done');
    expect(done?.computed).toContain('llm');
    expect(first.every((e) => e.channel === 'run.event' && e.id === 'r1')).toBe(true);

    const again = await run('r2', { inputs: { image: { name: 'green.png', bytes: png }, prompt: 'What shape is it?' } });
    expect(again.at(-1)?.computed).toEqual([]);
    expect(again.filter((e) => e.type === 'cached').map((e) => e.node)).toEqual(expect.arrayContaining(['vit', 'qformer', 'llm']));
    expect(again.find((e) => e.type === 'result')?.text).toBe(result?.text);

    // A new prompt reruns the text path and the LLM, not the vision path.
    const reworded = await run('r3', { inputs: { image: { name: 'green.png', bytes: png }, prompt: 'What colour is it?' } });
    expect(reworded.at(-1)?.cached).toEqual(expect.arrayContaining(['image', 'vit', 'qformer']));
    expect(reworded.at(-1)?.computed).toEqual(expect.arrayContaining(['prompt', 'llm']));
  });

  it('reports a failing node by id and closes the run with an error', async () => {
    const doc = blip2();
    const events: RunJobEvent[] = [];
    // No image anywhere: the image node fails.
    await runGraph({ id: 'r4', document: doc, baseDir: graphsDir }, (e) => events.push(e));
    expect(events.find((e) => e.type === 'error' && e.node === 'image')?.message).toMatch(/no image/);
    expect(events.at(-1)?.type).toBe('error');
    expect(events.at(-1)?.node).toBeUndefined();
    expect(events.at(-1)?.message).toMatch(/node 'image'/);
  });

  it('a bad document or misaddressed input fails the run with a clear message', async () => {
    const events: RunJobEvent[] = [];
    await runGraph({ id: 'r5', document: { ...blip2(), nodes: [{ id: 'x' }] }, baseDir: graphsDir }, (e) => events.push(e));
    expect(events).toEqual([expect.objectContaining({ type: 'error', message: expect.stringMatching(/nodes\[0\]\.type/) })]);
    const misaddressed = await run('r6', { inputs: { prompt: 'q', promptNode: 'ghost' } });
    expect(misaddressed).toEqual([expect.objectContaining({ type: 'error', message: expect.stringMatching(/'ghost'/) })]);
  });

  it('cancel stops a run during generation', async () => {
    const doc = blip2();
    const llm = doc.nodes.find((n) => n.id === 'llm')!;
    llm.params = { ...(llm.params as object), max_new_tokens: 64, sample_seed: 99, temperature: 0.9 };
    const events: RunJobEvent[] = [];
    const job = runGraph({ id: 'r7', document: doc, baseDir: graphsDir, inputs: { image: { name: 'g.png', bytes: png }, prompt: 'cancel me' } }, (e) => {
      events.push(e);
      if (e.type === 'progress' && e.node === 'llm') cancelRun({ id: 'r7' });
    });
    await job;
    expect(events.at(-1)?.type).toBe('cancelled');
  });
});
