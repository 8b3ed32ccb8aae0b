// Browser-mode host: serves the built renderer over HTTP and the host API over a WebSocket, both on 127.0.0.1 only.
// A random per-launch token (given to the browser in the URL fragment) is required on the WebSocket upgrade, and
// Origin and Host are checked, so another web page or a DNS-rebinding site cannot drive the API.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isAbsolute, join, normalize, relative, resolve } from 'node:path';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { createHostApi, type HostApi } from './host/api.js';
import { describeZodError, wsRequestSchema, type WsFrame } from './host/contract.js';
import { contentSecurityPolicy, contentType } from './host/csp.js';
import { appRoot, defaultDataDir, RENDERER_DIST } from './host/paths.js';

export interface ServerOptions {
  /** 0 picks a free port. */
  port?: number;
  rendererDir?: string;
  dataDir?: string;
  templatesDir?: string;
}

export interface RunningServer {
  port: number;
  token: string;
  /** The URL to open: the token travels in the fragment, which the browser never sends over HTTP. */
  url: string;
  api: HostApi;
  close(): Promise<void>;
}

/** Largest WebSocket message: an ONNX model uploaded as base64 in browser mode. */
const MAX_MESSAGE_BYTES = 768 * 1024 * 1024;

function sameToken(given: string, token: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const root = appRoot();
  const rendererDir = resolve(options.rendererDir ?? join(root, RENDERER_DIST));
  if (!existsSync(join(rendererDir, 'index.html'))) {
    throw new Error(`the renderer is not built: ${join(rendererDir, 'index.html')} is missing (run npm run build:renderer)`);
  }
  const token = randomBytes(24).toString('base64url');
  const api = createHostApi({
    mode: 'browser',
    dataDir: options.dataDir ?? defaultDataDir(),
    templatesDir: options.templatesDir ?? join(root, 'graphs'),
  });

  let port = 0;
  const allowedHosts = () => new Set([`127.0.0.1:${port}`, `localhost:${port}`]);
  const allowedOrigins = () => new Set([`http://127.0.0.1:${port}`, `http://localhost:${port}`]);

  function serveStatic(req: IncomingMessage, res: ServerResponse): void {
    const send = (status: number, text: string) => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(text);
    };
    if (!allowedHosts().has(req.headers.host ?? '')) return send(421, `unexpected Host '${req.headers.host ?? ''}'`);
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'only GET is served');
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      return send(400, 'bad URL');
    }
    const file = resolve(rendererDir, normalize(`.${pathname === '/' ? '/index.html' : pathname}`));
    const rel = relative(rendererDir, file);
    if (rel.startsWith('..') || isAbsolute(rel)) return send(404, 'not found');
    if (!existsSync(file) || !statSync(file).isFile()) return send(404, `not found: ${pathname}`);
    res.writeHead(200, {
      'content-type': contentType(file),
      'content-security-policy': contentSecurityPolicy([`ws://127.0.0.1:${port}`, `ws://localhost:${port}`]),
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'cache-control': file.endsWith('.html') ? 'no-store' : 'max-age=3600',
    });
    if (req.method === 'HEAD') return void res.end();
    createReadStream(file).pipe(res);
  }

  const http = createServer(serveStatic);
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });

  function reject(socket: Duplex, status: number, reason: string): void {
    socket.write(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    socket.destroy();
  }

  http.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/ws') return reject(socket, 404, 'Not Found');
    if (!allowedHosts().has(req.headers.host ?? '')) return reject(socket, 421, 'Misdirected Request');
    if (!allowedOrigins().has(req.headers.origin ?? '')) return reject(socket, 403, 'Forbidden');
    if (!sameToken(url.searchParams.get('token') ?? '', token)) return reject(socket, 401, 'Unauthorized');
    wss.handleUpgrade(req, socket, head, (ws) => serveSocket(ws));
  });

  function serveSocket(ws: WebSocket): void {
    const send = (frame: WsFrame) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(frame));
    };
    const unsubscribe = api.onEvent((event) => send({ kind: 'event', event }));
    ws.on('close', unsubscribe);
    ws.on('message', (data) => {
      let request;
      try {
        request = wsRequestSchema.safeParse(JSON.parse(data.toString()));
      } catch {
        ws.close(1003, 'messages must be JSON');
        return;
      }
      if (!request.success) {
        ws.close(1003, describeZodError(request.error, 'bad request frame').slice(0, 120));
        return;
      }
      const { id, method, params } = request.data;
      void api.call(method, params).then((reply) => send({ kind: 'reply', id, reply }));
    });
  }

  await new Promise<void>((done, fail) => {
    http.once('error', fail);
    http.listen(options.port ?? 0, '127.0.0.1', () => done());
  });
  port = (http.address() as AddressInfo).port;

  return {
    port,
    token,
    url: `http://127.0.0.1:${port}/#token=${token}`,
    api,
    async close() {
      for (const client of wss.clients) client.terminate();
      wss.close();
      await new Promise<void>((done) => http.close(() => done()));
      await api.close();
    },
  };
}
