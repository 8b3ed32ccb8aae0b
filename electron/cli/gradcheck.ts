// vlmc gradcheck MODEL.onnx [REF.safetensors] [--rtol R] [--atol A] [--fd] [--json]

import { z } from 'zod';
import { gradcheck, splitReference } from '../autodiff/gradcheck.js';
import { loadModel } from '../onnx/proto.js';
import { readSafetensors } from '../onnx/safetensors.js';
import { UsageError, parseArgs, validateFlags } from './args.js';

const flagsSchema = z
  .object({
    rtol: z.coerce.number().positive().default(1e-3),
    atol: z.coerce.number().nonnegative().default(1e-5),
    fd: z.boolean().default(false),
    json: z.boolean().default(false),
    'max-elements': z.coerce.number().int().positive().default(64),
  })
  .strict();

export const gradcheckUsage = 'vlmc gradcheck MODEL.onnx [REF.safetensors] [--rtol R] [--atol A] [--fd] [--json]';

export async function gradcheckCommand(argv: string[], out: (line: string) => void): Promise<number> {
  const { positionals, flags } = parseArgs(argv, ['fd', 'json']);
  const opts = validateFlags(flagsSchema, flags);
  const [modelPath, refPath] = positionals;
  if (!modelPath || positionals.length > 2) throw new UsageError(`usage: ${gradcheckUsage}`);
  if (!refPath && !opts.fd) throw new UsageError('give a reference .safetensors file, or --fd to check by finite differences');
  const model = loadModel(modelPath);
  const reference = refPath ? splitReference(readSafetensors(refPath).tensors) : null;
  const report = await gradcheck(model, reference, {
    rtol: opts.rtol,
    atol: opts.atol,
    finiteDifferences: opts.fd,
    maxElementsPerTensor: opts['max-elements'],
  });
  const against = opts.fd ? 'finite differences' : 'reference';
  // The forward pass must reproduce the reference outputs too: otherwise the gradients are of a different model.
  const outputsOk = report.outputs.every((o) => o.ok);
  const ok = report.passed === report.total && outputsOk;
  if (opts.json) {
    for (const o of report.outputs) out(JSON.stringify({ type: 'output', ...o }));
    for (const c of report.checks) out(JSON.stringify({ type: 'tensor', against, ...c }));
    out(JSON.stringify({ type: 'summary', passed: report.passed, total: report.total, outputsOk, ok }));
  } else {
    for (const o of report.outputs) {
      out(
        `output ${o.name} [${o.shape.join(',')}]  max abs ${o.maxAbsError.toExponential(2)}  ` +
          `${o.ok ? 'matches the reference' : 'FAIL: differs from the reference output'}`,
      );
    }
    if (report.finiteDifferences?.float32Ops.length) {
      out(`note: finite differences ran ${report.finiteDifferences.float32Ops.join(', ')} in float32 (no float64 kernel)`);
    }
    const width = Math.max(...report.checks.map((c) => c.name.length), 6);
    for (const c of report.checks) {
      out(
        `${c.name.padEnd(width)}  [${c.shape.join(',')}]`.padEnd(width + 16) +
          `  max abs ${c.maxAbsError.toExponential(2)}  max rel ${c.maxRelError.toExponential(2)}  ${c.ok ? 'ok' : 'FAIL'}`,
      );
    }
    out(`gradcheck: ${report.passed}/${report.total} tensors within tolerance`);
  }
  return ok ? 0 : 1;
}
