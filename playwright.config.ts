// Playwright Test: the e2e specs in e2e/ run against browser mode in Debian Chromium; the same specs run in
// Electron when its binary is installed (that project skips itself with a clear message otherwise).

import { defineConfig } from '@playwright/test';
import { electronBinary } from './e2e/fixtures.js';
import { CHROMIUM_ARGS } from './e2e/browser-host.js';

if (!electronBinary()) {
  console.log('Electron binary not installed (the electron package downloads it on first launch): the Electron e2e project is skipped; browser mode runs in Chromium.');
}


export default defineConfig({
  testDir: './e2e',
  testMatch: '**/*.spec.ts',
  outputDir: './test-results/artifacts',
  globalSetup: './e2e/global-setup.ts',
  fullyParallel: false,
  workers: 1,
  timeout: 60_000,
  expect: { timeout: 10_000 },
  reporter: [['list']],
  use: {
    viewport: { width: 1440, height: 900 },
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
  },
  projects: [
    {
      name: 'browser',
      use: {
        browserName: 'chromium',
        launchOptions: { executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: CHROMIUM_ARGS },
      },
    },
    {
      // The `app` fixture launches Electron instead; the Chromium options only keep Playwright's unused default page
      // from looking for a browser download when the Electron binary is absent and the specs skip themselves.
      name: 'electron',
      use: {
        browserName: 'chromium',
        launchOptions: { executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: CHROMIUM_ARGS },
      },
      metadata: { electron: true },
    },
  ],
});
