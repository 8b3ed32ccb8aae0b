// The execution-provider policy (providers.ts), shared by the app's worker and `vlmc run`: COMPOSER_EP parsing, and
// the probe's choice (CPU here) creating and running a real onnxruntime session.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Model } from '../onnx/ir.js';
import { createSession, runSession } from '../onnx/ort.js';
import { runCommand } from '../cli/run.js';
import { Executor } from './executor.js';
import { sharedExecutor } from './run.js';
import { EXECUTION_PROVIDERS, ExecutionProviderError, chooseExecutionProviders, executionProviderPolicy, providerOverride } from './providers.js';

/** y = x + x: one op, so the session's providers are all that matters. */
const doubling: Model = {
  irVersion: 8,
  producerName: 'providers.test',
  producerVersion: '0',
  opsets: { '': 17 },
  metadata: {},
  graph: {
    name: 'double',
    nodes: [{ name: 'add', opType: 'Add', domain: '', inputs: ['x', 'x'], outputs: ['y'], attrs: {} }],
    inputs: [{ name: 'x', dtype: 'float32', shape: [3] }],
    outputs: [{ name: 'y', dtype: 'float32', shape: [3] }],
    initializers: new Map(),
    valueInfo: new Map(),
  },
};

afterEach(() => vi.unstubAllEnvs());

describe('COMPOSER_EP', () => {
  it('unset or empty means the probe; a provider name (any case) forces it with the CPU behind it', () => {
    expect(providerOverride(undefined)).toBeUndefined();
    expect(providerOverride('')).toBeUndefined();
    expect(providerOverride('  ')).toBeUndefined();
    expect(providerOverride('CUDA')).toBe('cuda');
    expect(providerOverride(' dml ')).toBe('dml');
    expect(executionProviderPolicy(undefined)).toBe('auto');
    expect(executionProviderPolicy('cpu')).toEqual(['cpu']);
    expect(executionProviderPolicy('coreml')).toEqual(['coreml', 'cpu']);
    expect(executionProviderPolicy('cuda')).toEqual(['cuda', 'cpu']);
  });

  it('any other value is an error naming it and the providers there are', () => {
    expect(() => providerOverride('gpu')).toThrow(ExecutionProviderError);
    expect(() => executionProviderPolicy('tensorrt')).toThrow(/COMPOSER_EP='tensorrt' is not an execution provider \(expected one of cpu, cuda, dml, coreml/);
  });

  it('reads the environment by default', () => {
    vi.stubEnv('COMPOSER_EP', 'cpu');
    expect(executionProviderPolicy()).toEqual(['cpu']);
    vi.stubEnv('COMPOSER_EP', 'npu');
    expect(() => executionProviderPolicy()).toThrow(/COMPOSER_EP='npu'/);
  });
});

describe('the probe', () => {
  it('falls back to the CPU: the chosen providers end with cpu and a real session runs on them', async () => {
    const chosen = await chooseExecutionProviders(undefined);
    expect(chosen.at(-1)).toBe('cpu');
    for (const ep of chosen) expect(EXECUTION_PROVIDERS).toContain(ep);
    expect(await chooseExecutionProviders('cpu')).toEqual(['cpu']);
    const session = await createSession(doubling, { executionProviders: chosen });
    const { y } = await runSession(session, { x: { dtype: 'float32', dims: [3], data: new Float32Array([1, 2, -3]) } });
    expect([...(y!.data as Float32Array)]).toEqual([2, 4, -6]);
    await session.release();
    // An executor given the policy resolves to the same choice.
    expect(await new Executor({ executionProviders: executionProviderPolicy(undefined) }).resolveExecutionProviders()).toEqual(chosen);
  });
});

describe('app and CLI use the same policy', () => {
  it('the worker executor and `vlmc run` refuse an unknown COMPOSER_EP by name', async () => {
    const image = join(mkdtempSync(join(tmpdir(), 'composer-ep-')), 'red.png');
    await sharp({ create: { width: 32, height: 32, channels: 3, background: '#c33' } }).png().toFile(image);
    vi.stubEnv('COMPOSER_EP', 'gpu');
    const graph = join(import.meta.dirname, '..', '..', 'graphs', 'blip.graph.json');
    await expect(runCommand([graph, '--image', image, '--prompt', 'a'], () => undefined)).rejects.toThrow(/COMPOSER_EP='gpu'/);
    expect(() => sharedExecutor()).toThrow(/COMPOSER_EP='gpu'/);
  });
});
