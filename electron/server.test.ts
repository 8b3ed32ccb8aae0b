import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startServer, type RunningServer } from './server.js';

let server: RunningServer;
const root = mkdtempSync(join(tmpdir(), 'composer-server-'));

beforeAll(async () => {
  const rendererDir = join(root, 'renderer');
  mkdirSync(rendererDir);
  writeFileSync(join(rendererDir, 'index.html'), '<!doctype html><title>t</title>');
  server = await startServer({ port: 0, rendererDir, dataDir: join(root, 'data'), templatesDir: join(root, 'graphs') });
});
afterAll(() => server.close());

function connect(query: string, origin: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws${query}`, { origin });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

describe('browser-mode host', () => {
  it('serves the renderer on 127.0.0.1 with a CSP header and refuses foreign Host headers', async () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/#token=[\w-]{20,}$/);
    const res = await fetch(`http://127.0.0.1:${server.port}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(res.headers.get('content-security-policy')).toContain(`ws://127.0.0.1:${server.port}`);
    const traversal = await fetch(`http://127.0.0.1:${server.port}/..%2f..%2fetc%2fpasswd`);
    expect(traversal.status).toBe(404);
  });

  it('needs the token and our Origin on the WebSocket upgrade', async () => {
    const origin = `http://127.0.0.1:${server.port}`;
    await expect(connect('?token=wrong', origin)).rejects.toThrow('HTTP 401');
    await expect(connect(`?token=${server.token}`, 'http://evil.example')).rejects.toThrow('HTTP 403');
    const ws = await connect(`?token=${server.token}`, origin);
    const reply = await new Promise<unknown>((resolve) => {
      ws.once('message', (data) => resolve(JSON.parse(data.toString())));
      ws.send(JSON.stringify({ kind: 'request', id: 7, method: 'templates.list', params: {} }));
    });
    expect(reply).toEqual({ kind: 'reply', id: 7, reply: { ok: true, result: { templates: [] } } });
    ws.close();
  });
});
