// Test support for the `--format hf` export tests: the tensor names and shapes of a folder, and the check that every
// config key the export writes is one transformers wrote (in the fixture of tools/hf_reference.py) with the same value.

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { readSafetensorsHeader } from '../onnx/safetensors.js';

export const readJsonFile = (f: string) => JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>;

/** Tensor name → shape over every .safetensors file of a folder. */
export function tensorsOf(dir: string): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.safetensors'))) for (const e of readSafetensorsHeader(join(dir, f)).entries) out[e.name] = e.shape;
  return out;
}

/** Every key we write is one transformers wrote, with the same value (numbers within 1e-7 relative). */
export function expectSubset(ours: Record<string, unknown>, ref: Record<string, unknown>, where: string): void {
  for (const [k, v] of Object.entries(ours)) {
    if (k === 'torch_dtype' || k === 'transformers_version' || (k === 'pad_token_id' && !Object.hasOwn(ref, k))) continue;
    expect(Object.hasOwn(ref, k), `${where}: '${k}' is not a key transformers writes`).toBe(true);
    const r = ref[k];
    if (v && typeof v === 'object' && !Array.isArray(v) && r && typeof r === 'object') expectSubset(v as Record<string, unknown>, r as Record<string, unknown>, `${where}.${k}`);
    else if (typeof v === 'number' && typeof r === 'number') expect(Math.abs(v - r), `${where}.${k}`).toBeLessThanOrEqual(1e-7 * Math.max(1, Math.abs(r)));
    else expect(v, `${where}.${k}`).toEqual(r);
  }
}
