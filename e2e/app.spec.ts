// What the desktop app does today, end to end in a real browser against the real host and engine worker.

import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, screen, test } from './fixtures.js';
import { openTemplate, selectNode } from './helpers.js';

/** A 2×2 red PNG. */
const RED_PNG_BASE64 =
  'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAACXBIWXMAAAPoAAAD6AG1e1JrAAAAE0lEQVQImWP4z8DwnwGM/zMwAAAf7gP9qS/A4gAAAABJRU5ErkJggg==';

test('the app loads with the palette, canvas, inspector and the execution provider', async ({ app }) => {
  await expect(app.locator('.brand')).toHaveText(/Composer/);
  await expect(app.locator('.palette-item').first()).toBeVisible({ timeout: 30_000 });
  await expect(app.locator('.ep-badge')).toHaveText(/CPU|CUDA|DML|COREML/);
  await screen(app, '01-empty');
  await app.locator('button[aria-label="Toggle theme"]').click();
  await expect(app.locator('html')).toHaveAttribute('data-theme', 'dark');
  await screen(app, '02-empty-dark');
  await app.keyboard.press('?');
  await expect(app.getByRole('dialog', { name: 'Keyboard shortcuts' })).toBeVisible();
  await screen(app, '03-shortcuts');
});

test('a template opens onto the canvas', async ({ app }) => {
  await app.getByRole('button', { name: 'Templates' }).first().click();
  const card = app.locator('.template-card').first();
  await expect(card, 'graphs/ must hold at least one *.graph.json template').toBeVisible({ timeout: 30_000 });
  await screen(app, '04-templates');
  const count = Number((await card.locator('.muted').innerText()).match(/(\d+) nodes/)?.[1]);
  await card.click();
  await expect(app.locator('.react-flow__node')).toHaveCount(count);
  // Attached, not visible: a perfectly horizontal edge has an empty bounding box, which Playwright calls hidden.
  await expect(app.locator('.react-flow__edge').first()).toBeAttached();
  await app.waitForTimeout(600);
  await screen(app, '05-template-canvas');
});

test('add a node from the palette, then undo and redo it', async ({ app }) => {
  const item = app.locator('.palette-item').first();
  await expect(item).toBeVisible({ timeout: 30_000 });
  await app.locator('.canvas').waitFor();
  await item.dragTo(app.locator('.react-flow__pane'), { targetPosition: { x: 300, y: 250 } });
  await expect(app.locator('.react-flow__node')).toHaveCount(1);
  await item.click();
  await expect(app.locator('.react-flow__node')).toHaveCount(2);
  await screen(app, '06-added-node');
  await app.locator('.react-flow__pane').click({ position: { x: 50, y: 50 } });
  await app.keyboard.press('Control+z');
  await expect(app.locator('.react-flow__node')).toHaveCount(1);
  await app.keyboard.press('Control+z');
  await expect(app.locator('.react-flow__node')).toHaveCount(0);
  await app.keyboard.press('Control+Shift+z');
  await expect(app.locator('.react-flow__node')).toHaveCount(1);
  await app.getByRole('button', { name: 'Redo' }).click();
  await expect(app.locator('.react-flow__node')).toHaveCount(2);
});

test('double-clicking the canvas opens search and adds the chosen node', async ({ app }) => {
  await expect(app.locator('.palette-item').first()).toBeVisible({ timeout: 30_000 });
  // Away from the centre, where the empty state's "Browse templates" button sits.
  await app.locator('.react-flow__pane').dblclick({ position: { x: 160, y: 120 } });
  const input = app.getByRole('textbox', { name: 'Add a node' });
  await expect(input).toBeFocused();
  await screen(app, '07-search');
  await app.keyboard.press('Enter');
  await expect(app.locator('.react-flow__node')).toHaveCount(1);
});

test('a broken graph file shows a clear error naming the field', async ({ app }) => {
  const dir = mkdtempSync(join(tmpdir(), 'composer-broken-'));
  const file = join(dir, 'broken.graph.json');
  writeFileSync(file, JSON.stringify({ format: 'composer.graph', version: 1, name: 'b', nodes: [{ id: 'n1', type: 7 }], edges: [] }));
  await app.getByTestId('open-file-input').setInputFiles(file);
  const alert = app.getByRole('alert');
  await expect(alert).toContainText('broken.graph.json');
  await expect(alert).toContainText(/nodes\[0\]\.type/);
  await screen(app, '08-broken-file');
});

test('freeze toggle in the inspector marks the node and can be undone', async ({ app }) => {
  const item = app.locator('.palette-item').first();
  await expect(item).toBeVisible({ timeout: 30_000 });
  await item.click();
  const node = app.locator('.react-flow__node').first();
  await node.click();
  const toggle = app.getByRole('checkbox', { name: 'Frozen' });
  await expect(toggle).not.toBeChecked();
  await app.locator('.toggle').click();
  await expect(node.locator('.badge-frozen')).toBeVisible();
  await screen(app, '09-inspector-frozen');
  await app.locator('.react-flow__pane').click({ position: { x: 30, y: 30 } });
  await app.keyboard.press('Control+z');
  await expect(node.locator('.badge-frozen')).toHaveCount(0);
});

test('an image embedded in the graph shows as a thumbnail and its size, and can be replaced or removed', async ({ app }) => {
  await openTemplate(app, 'nextgpt');
  const row = app.getByTestId('node-image').locator('.kv', { hasText: 'base64' });
  await expect(row).toContainText(/embedded · \d+ B/);
  await selectNode(app, 'image');
  const field = app.getByTestId('embedded-image');
  await expect(field.locator('img')).toBeVisible();
  // The thumbnail decodes (a broken data URL would have no natural size).
  expect(await field.locator('img').evaluate((img: HTMLImageElement) => img.naturalWidth)).toBe(64);
  await screen(app, '09b-embedded-image');
  // A file that is not an image is refused by name, and the embedded picture stays.
  const notes = join(mkdtempSync(join(tmpdir(), 'composer-embed-')), 'notes.txt');
  writeFileSync(notes, 'not a picture');
  await field.locator('input[type="file"]').setInputFiles(notes);
  await expect(field.getByRole('alert')).toContainText("'notes.txt' is not an image");
  await expect(row).toContainText(/embedded · \d+ B/);
  const png = join(mkdtempSync(join(tmpdir(), 'composer-embed-')), 'red.png');
  writeFileSync(png, Buffer.from(RED_PNG_BASE64, 'base64'));
  await field.locator('input[type="file"]').setInputFiles(png);
  await expect(row).toContainText(`embedded · ${Buffer.from(RED_PNG_BASE64, 'base64').length} B`);
  await expect(field.getByRole('alert')).toHaveCount(0);
  await field.getByRole('button', { name: 'Remove' }).click();
  await expect(row).toContainText('—');
  await expect(field.locator('img')).toHaveCount(0);
});

test('nodes show their parameter counts and the status bar the trainable share; freezing changes it', async ({ app }) => {
  await openTemplate(app, 'blip2');
  const qformer = app.getByTestId('node-qformer').getByTestId('param-count');
  await expect(qformer).toHaveText(/^\d+(\.\d+)?[KMB]? params$/, { timeout: 30_000 });
  // The frozen encoder trains nothing; the Embed tokens node shares the decoder's table.
  await expect(app.getByTestId('node-vit').getByTestId('param-count')).toHaveText(/params · 0 trainable/);
  await expect(app.getByTestId('node-embed').getByTestId('param-count')).toHaveText(/shared · llm/);
  const total = app.getByTestId('param-total');
  await expect(total).toHaveText(/^Trainable [\d.]+[KMB]? \/ [\d.]+[KMB]? params \(\d+\.\d\d%\)$/);
  const before = await total.innerText();
  expect(before).not.toMatch(/^Trainable 0 /);
  await app.waitForTimeout(300);
  await screen(app, '14-param-counts');
  for (let i = 0; i < 3; i++) await app.locator('.react-flow__controls-zoomin').click();
  await app.waitForTimeout(300);
  await screen(app, '15-param-counts-zoomed');

  await selectNode(app, 'qformer');
  await app.locator('.toggle').click();
  await expect(app.getByTestId('node-qformer').locator('.badge-frozen')).toBeVisible();
  await expect(total).toHaveText(/^Trainable 0 \/ [\d.]+[KMB]? params \(0\.00%\)$/);
  await expect(qformer).toHaveText(/params · 0 trainable$/);
  await app.locator('.toggle').click();
  await expect(total).toHaveText(before);
});
