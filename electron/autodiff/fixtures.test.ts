// Whole-model gradients of real torch.onnx exports against PyTorch's (the fixtures of ../shared/fixtures).

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../onnx/proto.js';
import { readSafetensors } from '../onnx/safetensors.js';
import { gradcheck, splitReference } from './gradcheck.js';

// <repo>/../shared/fixtures, resolved from this file (electron/autodiff/ → repo root is two levels up).
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixturesDir = resolve(repoRoot, '..', 'shared', 'fixtures');
const present = existsSync(join(fixturesDir, 'README.md'));

if (!present) console.warn(`autodiff fixtures: skipped, no reference fixtures at ${fixturesDir}`);

describe.skipIf(!present)(`gradients of the reference exports match PyTorch (${fixturesDir})`, () => {
  for (const name of ['gpt2_tiny', 'vit_tiny', 'mlp_projector']) {
    it(name, async () => {
      const model = loadModel(join(fixturesDir, `${name}.onnx`));
      const reference = splitReference(readSafetensors(join(fixturesDir, `${name}.ref.safetensors`)).tensors);
      const report = await gradcheck(model, reference, { rtol: 1e-3, atol: 1e-5 });
      const failed = report.checks.filter((c) => !c.ok).map((c) => `${c.name}: max abs ${c.maxAbsError}, max rel ${c.maxRelError}`);
      expect(failed).toEqual([]);
      expect(report.total).toBeGreaterThan(0);
      expect(report.passed).toBe(report.total);
      expect(report.outputs.every((o) => o.ok)).toBe(true);
    });
  }
});
