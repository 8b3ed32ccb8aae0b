// Bundles the Electron side for running and packaging: main (ESM), preload (one CJS file, as sandboxed preloads
// must be), and the engine worker with every engine module as its own entry so the worker can load them on demand.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

/** Native and heavy packages stay as runtime requires (they are unpacked from asar at packaging time). */
const EXTERNAL = ['electron', 'onnxruntime-node', 'onnxruntime-common', 'sharp', '@huggingface/tokenizers'];

/** Engine modules the worker loads on demand (see electron/host/worker-protocol.ts); bundled when present. */
const ENGINE_ENTRIES = ['nodes/catalog', 'engine/document', 'engine/validate', 'engine/run', 'engine/compare', 'engine/train', 'export/index'];

export async function bundleElectron(root: string): Promise<string> {
  const out = join(root, 'dist', 'electron');
  const common = { bundle: true, platform: 'node' as const, target: 'node20', sourcemap: true, external: EXTERNAL, logLevel: 'warning' as const };
  const engine = ENGINE_ENTRIES.map((e) => join(root, 'electron', `${e}.ts`)).filter((p) => existsSync(p));
  await build({
    ...common,
    entryPoints: [join(root, 'electron', 'main.ts'), join(root, 'electron', 'host', 'worker.ts'), ...engine],
    outbase: join(root, 'electron'),
    outdir: out,
    format: 'esm',
    splitting: true,
    // Bundled CJS dependencies call require(); give ESM output one.
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  await build({
    ...common,
    entryPoints: [join(root, 'electron', 'preload.ts')],
    outfile: join(out, 'preload.cjs'),
    format: 'cjs',
  });
  return join(out, 'main.js');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const root = join(import.meta.dirname, '..');
  bundleElectron(root).then(
    (main) => process.stdout.write(`bundled ${main}\n`),
    (e: unknown) => {
      process.stderr.write(`bundle failed: ${String(e)}\n`);
      process.exit(1);
    },
  );
}
