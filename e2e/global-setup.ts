// Starts the browser-mode host once for all specs with a throwaway data folder, and hands the URL (with its token) to
// the specs through the environment. The renderer is rebuilt first (a few seconds), so the specs always test the
// current sources, not a stale dist/.

import { startBrowserHost } from './browser-host.js';

export default async function globalSetup(): Promise<() => Promise<void>> {
  const host = await startBrowserHost({ cwd: process.cwd(), rebuild: true, label: 'e2e' });
  process.env.COMPOSER_URL = host.url;
  process.env.COMPOSER_DATA_DIR = host.dataDir;
  return host.stop;
}
