// WebSocket transport for browser mode. The per-launch token arrives in the page URL's fragment (never sent over
// HTTP); it is kept for this tab's session so a reload still connects.

import type { HostEvent, Reply, WsFrame } from '../../electron/host/contract.js';
import type { Transport } from './client.js';

const TOKEN_KEY = 'composer.token';

export function tokenFromLocation(): string | null {
  const fromHash = new URLSearchParams(window.location.hash.slice(1)).get('token');
  if (fromHash) {
    sessionStorage.setItem(TOKEN_KEY, fromHash);
    // Keep the token out of the address bar and history.
    history.replaceState(null, '', window.location.pathname + window.location.search);
    return fromHash;
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

export function wsTransport(token: string): Transport {
  const url = `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}/ws?token=${encodeURIComponent(token)}`;
  const listeners = new Set<(event: HostEvent) => void>();
  const pending = new Map<number, (reply: Reply) => void>();
  let nextId = 1;
  let socket: WebSocket | null = null;
  let opening: Promise<WebSocket> | null = null;

  const fail = (message: string) => {
    for (const resolve of pending.values()) resolve({ ok: false, error: { code: 'failed', message } });
    pending.clear();
  };

  function connect(): Promise<WebSocket> {
    if (socket && socket.readyState === WebSocket.OPEN) return Promise.resolve(socket);
    if (opening) return opening;
    opening = new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.onopen = () => {
        socket = ws;
        opening = null;
        resolve(ws);
      };
      ws.onerror = () => {
        opening = null;
        reject(new Error('cannot reach the Composer host (is `npm start` still running?)'));
      };
      ws.onclose = (e) => {
        if (socket === ws) socket = null;
        fail(`the connection to the Composer host closed${e.reason ? `: ${e.reason}` : ''}`);
      };
      ws.onmessage = (e) => {
        const frame = JSON.parse(String(e.data)) as WsFrame;
        if (frame.kind === 'event') for (const l of listeners) l(frame.event);
        else {
          const resolveReply = pending.get(frame.id);
          pending.delete(frame.id);
          resolveReply?.(frame.reply);
        }
      };
    });
    return opening;
  }

  return {
    async invoke(method, params) {
      let ws: WebSocket;
      try {
        ws = await connect();
      } catch (e) {
        return { ok: false, error: { code: 'failed', message: (e as Error).message } };
      }
      const id = nextId++;
      return new Promise<Reply>((resolve) => {
        pending.set(id, resolve);
        ws.send(JSON.stringify({ kind: 'request', id, method, params }));
      });
    },
    onEvent(listener) {
      listeners.add(listener);
      void connect().catch(() => undefined);
      return () => listeners.delete(listener);
    },
  };
}
