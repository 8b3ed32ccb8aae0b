// Run: the BLIP-2 template on a real image to a caption, through the real host, worker and engine; a projector swap
// recomputes only what follows it; freeze/unfreeze changes nothing that is computed.

import { readFileSync } from 'node:fs';
import { expect, screen, test } from './fixtures.js';
import { openPanel, openTemplate, selectNode, testImage } from './helpers.js';
import { decodeImage } from '../electron/engine/image.js';
import { readDrawing } from '../models/zoo-eval.js';

const cached = (app: import('@playwright/test').Page, id: string) => app.getByTestId(`node-${id}`).getByTestId('cached-marker');
const computed = (app: import('@playwright/test').Page, id: string) => app.getByTestId(`node-${id}`).getByTestId('computed-marker');

test('BLIP-2 runs on a dropped image to a caption; swapping the Q-Former for an MLP recomputes only downstream', async ({ app }) => {
  test.setTimeout(120_000);
  await expect(app.getByTestId('status-ep')).toContainText(/CPU|CUDA|DML|COREML/);
  await openTemplate(app, 'blip2');
  await openPanel(app, 'Run');

  // Drop an image file on the canvas: it becomes the run image, shown on the Image node.
  const red = await testImage('red-square.png', '#e11d48');
  const base64 = readFileSync(red).toString('base64');
  await app.evaluate(async (b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], 'red-square.png', { type: 'image/png' }));
    document.querySelector('.canvas')!.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, base64);
  await expect(app.getByTestId('node-image').locator('.cnode-image img')).toBeVisible();

  await app.getByRole('textbox', { name: 'Prompt' }).fill('What shape is in the image?');
  await app.keyboard.press('Control+Enter');
  const output = app.getByTestId('node-answer').getByTestId('node-output-text');
  await expect(output).toBeVisible({ timeout: 60_000 });
  await expect(app.getByTestId('run-status')).toHaveAttribute('data-status', 'done');
  // The built-in zoo weights (models/zoo) make the template name what it sees.
  expect(await output.innerText()).toMatch(/square/);
  await expect(app.getByTestId('run-results')).toContainText(await output.innerText());
  for (const id of ['image', 'vit', 'qformer', 'llm']) await expect(computed(app, id)).toBeVisible();
  await app.waitForTimeout(300);
  await screen(app, '10-run-caption');

  // Replace the Q-Former with an MLP projector (Replace with…) and run again.
  await selectNode(app, 'qformer');
  await app.getByRole('button', { name: 'Replace with…' }).click();
  await app.getByRole('menuitem', { name: /MLP/ }).first().click();
  await expect(app.getByTestId('node-qformer')).toContainText(/MLP/);
  await app.getByRole('button', { name: '▶ Run' }).first().click();
  await expect(app.getByTestId('run-status')).toHaveAttribute('data-status', 'done', { timeout: 60_000 });
  for (const id of ['image', 'vit', 'prompt', 'tokenize', 'embed']) await expect(cached(app, id), `${id} comes from the cache`).toBeVisible();
  for (const id of ['qformer', 'merge', 'llm']) await expect(computed(app, id), `${id} is recomputed`).toBeVisible();
  await expect(app.getByTestId('node-answer').getByTestId('node-output-text')).toBeVisible();
  await screen(app, '11-run-after-swap');

  // Freeze and unfreeze the projector: training state only, so a rerun is served entirely from the cache.
  await selectNode(app, 'qformer');
  await app.locator('.toggle').click();
  await expect(app.getByTestId('node-qformer').locator('.badge-frozen')).toBeVisible();
  await app.getByRole('button', { name: '▶ Run' }).first().click();
  await expect(app.getByTestId('run-status')).toHaveAttribute('data-status', 'done', { timeout: 60_000 });
  await expect(app.getByTestId('run-status')).toContainText('0 computed');
  await expect(cached(app, 'qformer')).toBeVisible();
  await app.locator('.toggle').click();
  await expect(app.getByTestId('node-qformer').locator('.badge-frozen')).toHaveCount(0);

  await app.locator('button[aria-label="Toggle theme"]').click();
  await expect(app.locator('html')).toHaveAttribute('data-theme', 'dark');
  await screen(app, '12-run-dark');
});

test('a run that fails marks the failing node with its error; generation shows token progress', async ({ app }) => {
  test.setTimeout(120_000);
  await openTemplate(app, 'blip2');
  await openPanel(app, 'Run');
  // No image anywhere: the Image node cannot load one.
  await app.getByRole('button', { name: '▶ Run' }).first().click();
  await expect(app.getByTestId('node-image').getByTestId('node-run-error')).toContainText(/no image/, { timeout: 60_000 });
  await expect(app.getByTestId('run-status')).toHaveAttribute('data-status', 'error');
  await screen(app, '13-run-error');

  // Generation reports token progress on the LLM node (it stays visible once the node is done).
  await app.getByTestId('run-image-input').setInputFiles(await testImage('blue.png', '#2563eb'));
  await app.getByRole('button', { name: '▶ Run' }).first().click();
  await expect(app.getByTestId('run-status')).toHaveAttribute('data-status', 'done', { timeout: 60_000 });
  await expect(app.getByTestId('node-llm').getByTestId('node-progress')).toContainText(/\d+\/\d+ tokens/);
  await expect(app.getByTestId('node-image').getByTestId('node-run-error')).toHaveCount(0);
});

/** Opens a drawing template, asks for a picture, runs it, and reads colour and shape off the drawn image's pixels. */
async function askForDrawing(app: import('@playwright/test').Page, template: string, request: string) {
  await openTemplate(app, template);
  await openPanel(app, 'Run');
  await app.getByRole('textbox', { name: 'Prompt' }).fill(request);
  await app.getByRole('button', { name: '▶ Run' }).first().click();
  await expect(app.getByTestId('run-status')).toHaveAttribute('data-status', 'done', { timeout: 90_000 });
  const drawing = app.getByTestId('node-image_out').locator('img');
  await expect(drawing).toBeVisible();
  const src = (await drawing.getAttribute('src')) ?? '';
  expect(src).toMatch(/^data:image\/png;base64,/);
  await app.waitForTimeout(300);
  // The built-in zoo weights: colour and shape read off the pixels, as the zoo's own check does.
  return readDrawing(await decodeImage(Buffer.from(src.slice(src.indexOf(',') + 1), 'base64')));
}

test('NExT-GPT draws what it is asked for: the image output shows a shape of the asked colour', async ({ app }) => {
  test.setTimeout(120_000);
  // No input image needed to ask for one: the template's Image node holds a blank grey picture (as in its training).
  expect(await askForDrawing(app, 'nextgpt', 'Show me a picture of a blue square.')).toEqual({ color: 'blue', shape: 'square' });
  await screen(app, '14-nextgpt-draws');
});

test('the text-to-image template draws the shape the prompt names', async ({ app }) => {
  test.setTimeout(120_000);
  expect(await askForDrawing(app, 'text-to-image', 'Show me a picture of a yellow triangle.')).toEqual({ color: 'yellow', shape: 'triangle' });
  await screen(app, '15-text-to-image');
});
