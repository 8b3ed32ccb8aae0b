// Export entry points: `runExport` for the CLI and tests, `exportGraph(args, emit)` for the host worker
// (electron/host/engine-jobs.ts), which reports through export.event messages (engine/messages.ts).

import { z } from 'zod';
import { type GraphDocument, graphDocumentFromJson } from '../engine/document.js';
import type { Executor } from '../engine/executor.js';
import type { ExportEvent } from '../engine/messages.js';
import { type ExportProgress, type ExportResult, exportBundle } from './bundle.js';
import { ExportError } from './manifest.js';
import { type ExternalDataMode, exportFusedOnnx, exportTritonRepository } from './onnx.js';
import { exportPeftAdapters } from './peft.js';
import { type HfDtype, exportHfFolder } from './hf.js';
import { exportTrainJob } from './train-job.js';

export { exportBundle, pinAutoParams, BUNDLE_GRAPH_FILE } from './bundle.js';
export { exportFusedOnnx, exportTritonRepository, fusedVisionModel, visionPath, tritonConfig } from './onnx.js';
export { ExportError, readManifest, verifyExport, MANIFEST_FILE } from './manifest.js';

export { exportPeftAdapters } from './peft.js';
export { exportHfFolder, HF_DTYPES, type HfDtype } from './hf.js';
export { exportTrainJob } from './train-job.js';

export const EXPORT_FORMATS = ['bundle', 'onnx', 'triton', 'peft', 'hf', 'train-job'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface RunExportOptions {
  baseDir: string;
  outDir: string;
  externalData?: ExternalDataMode;
  executor?: Executor;
  onProgress?: (p: ExportProgress) => void;
  /** peft: also write the LoRA-merged base weights. */
  merge?: boolean;
  /** hf: the weights' dtype (default f32). */
  dtype?: HfDtype;
  /** hf: shard the weights past this many bytes (default 5 GB, as save_pretrained). */
  maxShardBytes?: number;
  /** train-job: what LLaMA-Factory should run (see train-job.ts). */
  trainJob?: { recipe: string; dataset: string; datasetSize?: number; steps?: number; batchSize?: number; learningRate?: number; adapter?: 'lora'; zero?: 2 | 3 };
}

export async function runExport(doc: GraphDocument, format: ExportFormat, opts: RunExportOptions): Promise<ExportResult> {
  switch (format) {
    case 'bundle':
      return exportBundle(doc, opts);
    case 'onnx':
      return exportFusedOnnx(doc, opts);
    case 'triton':
      return exportTritonRepository(doc, opts);
    case 'peft':
      return exportPeftAdapters(doc, opts);
    case 'hf':
      return exportHfFolder(doc, opts);
    case 'train-job':
      if (!opts.trainJob) throw new ExportError('--format train-job needs --recipe NAME and --dataset shapes|PATH');
      return exportTrainJob(doc, { ...opts, ...opts.trainJob });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Host worker entry

/** The contract's export formats (electron/host/contract.ts export.start) → ours. */
const CONTRACT_FORMATS: Record<string, ExportFormat> = {
  bundle: 'bundle',
  'fused-onnx': 'onnx',
  'server-repository': 'triton',
  'peft-adapters': 'peft',
  'hf-folder': 'hf',
};

const exportJobArgs = z.object({
  id: z.string().min(1),
  document: z.unknown(),
  format: z.string().min(1),
  /** Checked by the host's file policy. */
  folder: z.string().min(1),
  baseDir: z.string().min(1),
});
export type ExportJobArgs = z.input<typeof exportJobArgs>;

/** The contract's `export.event` (electron/engine/messages.ts, which the host validates them against). */
export type ExportJobEvent = ExportEvent;

export async function exportGraph(raw: ExportJobArgs, emit: (e: ExportJobEvent) => void): Promise<void> {
  const args = exportJobArgs.parse(raw);
  const base = { channel: 'export.event' as const, id: args.id };
  try {
    const format = Object.hasOwn(CONTRACT_FORMATS, args.format) ? CONTRACT_FORMATS[args.format] : undefined;
    if (!format) throw new ExportError(`unknown export format '${args.format}' (expected ${Object.keys(CONTRACT_FORMATS).join(', ')})`);
    const doc = graphDocumentFromJson(args.document, 'the exported graph');
    emit({ ...base, type: 'started', path: args.folder, message: `exporting '${doc.name}' as ${format}` });
    const result = await runExport(doc, format, {
      baseDir: args.baseDir,
      outDir: args.folder,
      onProgress: (p) => emit({ ...base, type: 'progress', path: p.file }),
    });
    emit({
      ...base,
      type: 'done',
      path: result.dir,
      files: result.files.map((f) => ({ path: f.path, bytes: f.bytes })),
      message: result.notes.join('\n') || undefined,
    });
  } catch (e) {
    emit({ ...base, type: 'error', message: e instanceof Error ? e.message : String(e) });
  }
}
