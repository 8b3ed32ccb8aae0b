// Bundles the Electron side for running and packaging: main (ESM), preload (one CJS file, as sandboxed preloads
// must be), and the engine worker (its engine jobs are static imports of electron/host/engine-jobs.ts).

import { join } from 'node:path';
import { build } from 'esbuild';

/** Native and heavy packages stay as runtime requires (they are unpacked from asar at packaging time). */
const EXTERNAL = ['electron', 'onnxruntime-node', 'onnxruntime-common', 'sharp', '@huggingface/tokenizers'];

export async function bundleElectron(root: string): Promise<string> {
  const out = join(root, 'dist', 'electron');
  const common = { bundle: true, platform: 'node' as const, target: 'node20', sourcemap: true, external: EXTERNAL, logLevel: 'warning' as const };
  await build({
    ...common,
    entryPoints: [join(root, 'electron', 'main.ts'), join(root, 'electron', 'host', 'worker.ts')],
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
