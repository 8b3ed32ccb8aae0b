// `npm start`: launch the desktop app in Electron when its binary is installed, otherwise serve the same app to the
// system browser from the Node host. Builds the renderer first when dist/renderer is missing.
//   tsx electron/start.ts [--browser] [--no-open] [--port N] [--rebuild]

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { appRoot, RENDERER_DIST } from './host/paths.js';

interface StartArgs {
  browser: boolean;
  open: boolean;
  port: number;
  rebuild: boolean;
}

function parseArgs(argv: string[]): StartArgs {
  const args: StartArgs = { browser: false, open: true, port: 0, rebuild: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--browser') args.browser = true;
    else if (a === '--no-open') args.open = false;
    else if (a === '--rebuild') args.rebuild = true;
    else if (a === '--port') {
      const port = Number(argv[++i]);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port needs a number 0-65535, got '${argv[i]}'`);
      args.port = port;
    } else throw new Error(`unknown option '${a}' (known: --browser, --no-open, --port N, --rebuild)`);
  }
  return args;
}

/** The Electron binary's path, or why there is none. Never triggers a download (electron ≥42 would). */
export function findElectron(): { path: string } | { reason: string } {
  if (process.env.COMPOSER_FORCE_BROWSER) return { reason: 'COMPOSER_FORCE_BROWSER is set' };
  const require = createRequire(import.meta.url);
  let path: unknown;
  try {
    path = require('electron');
  } catch (e) {
    return { reason: `the Electron binary is not installed (${(e as Error).message.split('\n')[0]})` };
  }
  if (typeof path !== 'string' || !existsSync(path)) return { reason: `the Electron binary is not installed (${String(path)} is missing)` };
  return { path };
}

async function buildRenderer(root: string): Promise<void> {
  process.stdout.write('Building the renderer (first start)...\n');
  const { build } = await import('vite');
  await build({ configFile: join(root, 'vite.config.ts'), logLevel: 'warn' });
}

function openBrowser(url: string): void {
  const [cmd, args] =
    process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '', url]] : ['xdg-open', [url]];
  const child = spawn(cmd, args, { stdio: 'ignore', detached: true });
  child.on('error', () => process.stdout.write(`Could not open a browser (${cmd} failed); open the URL above yourself.\n`));
  child.unref();
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const root = appRoot();
  if (args.rebuild || !existsSync(join(root, RENDERER_DIST, 'index.html'))) await buildRenderer(root);

  const electron = args.browser ? { reason: '--browser was given' } : findElectron();
  if ('path' in electron) {
    const { bundleElectron } = await import('../build/bundle-electron.js');
    const mainFile = await bundleElectron(root);
    const child = spawn(electron.path, [mainFile], { stdio: 'inherit' });
    child.on('exit', (code) => process.exit(code ?? 0));
    return;
  }

  const { startServer } = await import('./server.js');
  const server = await startServer({ port: args.port });
  process.stdout.write(`Browser mode: ${electron.reason}.\n`);
  process.stdout.write(`Composer is running at ${server.url}\n`);
  if (args.open) openBrowser(server.url);
  const stop = () => {
    void server.close().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((e: unknown) => {
  process.stderr.write(`composer: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
