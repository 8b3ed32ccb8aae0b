// Import model folder…: a Hugging Face folder (a tiny LLaMA written as save_pretrained does) imports by the Import
// dialog's path field and by a drop on the canvas, runs (prompt → answer), and is listed in the Models panel with
// its parameters, dtype, size and memory estimate; a broken folder is refused naming the file, the graph untouched.

import { cpSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from '@playwright/test';
import { writeTinyLlamaFolder } from '../electron/formats/hf/tiny-llama.test-support.js';
import { expect, screen, test } from './fixtures.js';
import { openPanel } from './helpers.js';

const root = mkdtempSync(join(tmpdir(), 'composer-e2e-models-'));
const llama = writeTinyLlamaFolder(join(root, 'tiny-llama'));
const broken = join(root, 'broken-llama');
cpSync(llama, broken, { recursive: true });
writeFileSync(join(broken, 'config.json'), '{ "architectures": ["LlamaForCausalLM"], "model_type": "llama", ');
const MODEL_NODES = ['prompt', 'tokenize', 'embed', 'llm', 'answer'];
/** tools/hf_reference.py's LLaMA: two BF16 shards with their index. */
const FIXTURE_LLAMA = join(import.meta.dirname, '..', 'electron', 'formats', 'hf', 'testdata', 'llama');
const diskKiB = `${(readdirSync(llama).reduce((n, f) => n + statSync(join(llama, f)).size, 0) / 1024).toFixed(1)} KiB`;

async function ready(app: Page): Promise<void> {
  await expect(app.locator('.palette-item').first()).toBeVisible({ timeout: 30_000 });
}

/** Drops the folder's files on the canvas at (x, y), as a DataTransfer built in the page. */
async function dropFolder(app: Page, dir: string, x: number, y: number): Promise<void> {
  const files = readdirSync(dir).map((name) => ({ name, base64: readFileSync(join(dir, name)).toString('base64') }));
  await app.evaluate(
    ({ files, x, y }) => {
      const dt = new DataTransfer();
      for (const f of files) dt.items.add(new File([Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0))], f.name));
      const canvas = document.querySelector('.canvas')!;
      canvas.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true, clientX: x, clientY: y }));
    },
    { files, x, y },
  );
}

async function runPrompt(app: Page, prompt: string): Promise<string> {
  await openPanel(app, 'Run');
  await app.getByRole('textbox', { name: 'Prompt' }).fill(prompt);
  await app.keyboard.press('Control+Enter');
  await expect(app.getByTestId('run-status')).toHaveAttribute('data-status', 'done', { timeout: 60_000 });
  const output = app.getByTestId('node-answer').getByTestId('node-output-text');
  await expect(output).toBeVisible();
  return output.innerText();
}

test('Import model folder… by path: the graph opens, answers a prompt, and the Models panel lists the folder', async ({ app }) => {
  test.setTimeout(120_000);
  await ready(app);
  await app.locator('.toolbar').getByRole('button', { name: 'Import model folder…' }).click();
  const dialog = app.getByRole('dialog', { name: 'Import model folder' });
  await dialog.getByLabel('Model folder path').fill(llama);
  await screen(app, '60-import-folder-dialog');
  await dialog.getByRole('button', { name: 'Import', exact: true }).click();
  await expect(dialog).toHaveCount(0);
  for (const id of MODEL_NODES) await expect(app.getByTestId(`node-${id}`)).toBeVisible();
  await expect(app.getByLabel('Graph name')).toHaveValue(/tiny-llama/);
  await expect(app.getByTestId('node-llm').getByTestId('param-count')).toBeVisible();

  const answer = await runPrompt(app, 'a red circle');
  expect(answer.trim().length).toBeGreaterThan(0);
  // The first run read the folder's weights; the Embed tokens node keeps its full loading bar.
  await expect(app.getByTestId('node-embed').getByTestId('node-progress')).toContainText('weights 100% of');
  await expect(app.getByTestId('node-embed').getByTestId('node-progress')).toHaveAttribute('title', /^loading weights: /);
  await app.waitForTimeout(300);
  await screen(app, '61-imported-llama-answer');

  await openPanel(app, 'Models');
  const row = app.getByTestId('model-row').filter({ hasText: 'tiny-llama' });
  await expect(row).toContainText('LlamaForCausalLM');
  await expect(row.getByTestId('model-params')).toHaveText('38.8K');
  await expect(row.getByTestId('model-dtype')).toHaveText('BF16');
  await expect(row.getByTestId('model-size')).toHaveText(diskKiB);
  await expect(row.getByTestId('model-memory')).toHaveText(/≈ 303\.3 KiB/);
  await expect(row.getByTestId('model-memory')).toHaveAttribute('data-over', 'false');
  await expect(row.getByTestId('model-memory')).toHaveAttribute('title', /parameters × 4 bytes .* × 2/);
  await expect(app.getByTestId('machine-memory')).toContainText(/free of/);
  await expect(row).toContainText(llama);
  await screen(app, '62-models-panel');

  // Open as graph from the panel replaces the document; the dialog's recent list offers the folder again.
  await app.getByLabel('Graph name').fill('renamed');
  await row.getByRole('button', { name: 'Open as graph' }).click();
  await expect(app.getByLabel('Graph name')).toHaveValue(/tiny-llama/);
  await expect(app.locator('.react-flow__node')).toHaveCount(MODEL_NODES.length);
  await app.locator('button[aria-label="Toggle theme"]').click();
  await expect(app.locator('html')).toHaveAttribute('data-theme', 'dark');
  await screen(app, '63-models-panel-dark');
  await app.locator('.palette').getByRole('button', { name: /Import model folder…/ }).click();
  await expect(app.getByRole('dialog', { name: 'Import model folder' }).getByRole('button', { name: /tiny-llama/ })).toBeVisible();
  await screen(app, '64-import-folder-recent-dark');
});

test('a dropped model folder uploads, lands where it was dropped, runs, and merges again with fresh ids', async ({ app }) => {
  test.setTimeout(120_000);
  await ready(app);
  const box = (await app.locator('.canvas').boundingBox())!;
  await dropFolder(app, llama, box.x + 120, box.y + 100);
  for (const id of MODEL_NODES) await expect(app.getByTestId(`node-${id}`)).toBeVisible({ timeout: 30_000 });
  const row = app.getByTestId('model-row').filter({ hasText: 'dropped model' });
  await expect(row).toContainText('uploaded copy');
  await expect(row.getByTestId('model-params')).toHaveText('38.8K');
  await screen(app, '65-dropped-folder');

  const answer = await runPrompt(app, 'a blue square');
  expect(answer.trim().length).toBeGreaterThan(0);

  // Dropped again on a canvas that has it: merged with fresh ids, its corner where it was dropped, the first copy
  // untouched. (On the empty canvas the view fitted the first nodes.)
  const first = (await app.getByTestId('node-prompt').boundingBox())!;
  const at = { x: first.x + 20, y: first.y + 260 };
  await dropFolder(app, llama, at.x, at.y);
  for (const id of MODEL_NODES) await expect(app.getByTestId(`node-${id}_2`)).toBeVisible({ timeout: 30_000 });
  await expect(app.locator('.react-flow__node')).toHaveCount(MODEL_NODES.length * 2);
  const second = (await app.getByTestId('node-prompt_2').boundingBox())!;
  expect(Math.abs(second.x - at.x)).toBeLessThan(4);
  expect(Math.abs(second.y - at.y)).toBeLessThan(4);
  expect(await app.getByTestId('node-prompt').boundingBox()).toEqual(first);
  await screen(app, '66-dropped-twice');
});

test('a broken folder is refused naming config.json, and the graph stays as it was', async ({ app }) => {
  test.setTimeout(90_000);
  await ready(app);
  await app.locator('.palette-item[data-type="io.text"]').click();
  await expect(app.getByTestId('node-text')).toBeVisible();
  const nodes = app.locator('.react-flow__node');
  await expect(nodes).toHaveCount(1);

  await app.locator('.toolbar').getByRole('button', { name: 'Import model folder…' }).click();
  const dialog = app.getByRole('dialog', { name: 'Import model folder' });
  await dialog.getByLabel('Model folder path').fill(broken);
  await dialog.getByRole('button', { name: 'Import', exact: true }).click();
  const error = dialog.getByTestId('import-error');
  await expect(error).toContainText('config.json');
  await expect(error).toContainText(broken);
  await expect(app.getByRole('alert').filter({ hasText: 'is not valid JSON' }).first()).toBeVisible();
  await expect(nodes).toHaveCount(1);
  await screen(app, '67-import-folder-error');
  await dialog.getByRole('button', { name: 'Cancel' }).click();

  // The same folder dropped: uploaded, refused by name, nothing added.
  const box = (await app.locator('.canvas').boundingBox())!;
  await dropFolder(app, broken, box.x + 300, box.y + 200);
  await expect(app.getByRole('alert').filter({ hasText: /config\.json: is not valid JSON/ }).first()).toBeVisible({ timeout: 30_000 });
  await expect(nodes).toHaveCount(1);
  await expect(app.getByTestId('node-text')).toBeVisible();
});

test('on a graph already there, Import model folder… merges the fixture folder (two BF16 shards) below it, in one undo step', async ({ app }) => {
  test.setTimeout(90_000);
  await ready(app);
  await app.locator('.palette-item[data-type="io.text"]').click();
  await expect(app.locator('.react-flow__node')).toHaveCount(1);
  await app.getByLabel('Graph name').fill('mine');
  await app.locator('.toolbar').getByRole('button', { name: 'Import model folder…' }).click();
  const dialog = app.getByRole('dialog', { name: 'Import model folder' });
  await dialog.getByLabel('Model folder path').fill(`${FIXTURE_LLAMA}/config.json`);
  await dialog.getByRole('button', { name: 'Import', exact: true }).click();
  await expect(dialog).toHaveCount(0);
  for (const id of MODEL_NODES) await expect(app.getByTestId(`node-${id}`)).toBeVisible();
  // Below the node already there, covering none of it.
  const mine = (await app.getByTestId('node-text').boundingBox())!;
  const prompt = (await app.getByTestId('node-prompt').boundingBox())!;
  expect(prompt.y).toBeGreaterThan(mine.y + mine.height);
  await expect(app.getByLabel('Graph name')).toHaveValue('mine');
  await openPanel(app, 'Models');
  const row = app.getByTestId('model-row').filter({ hasText: FIXTURE_LLAMA });
  await expect(row.getByTestId('model-dtype')).toHaveText('BF16');
  await expect(row.getByTestId('model-size')).toHaveAttribute('title', /^8 files; weights /);
  await screen(app, '68-fixture-merged');
  await app.getByRole('button', { name: 'Undo' }).click();
  await expect(app.locator('.react-flow__node')).toHaveCount(1);
  await expect(app.getByTestId('node-text')).toBeVisible();
});
