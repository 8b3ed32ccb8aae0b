// Picks the transport once: the Electron preload's bridge when present, the WebSocket otherwise.

import type { ComposerBridge } from '../../electron/host/contract.js';
import { clientOver, type ComposerClient, type Transport } from './client.js';
import { tokenFromLocation, wsTransport } from './ws-transport.js';

declare global {
  interface Window {
    composer?: ComposerBridge;
  }
}

function pickTransport(): Transport {
  if (window.composer) return window.composer;
  const token = tokenFromLocation();
  if (!token) {
    return {
      invoke: async () => ({
        ok: false,
        error: { code: 'failed', message: 'this page was opened without its access token; use the URL printed by `npm start`' },
      }),
      onEvent: () => () => undefined,
    };
  }
  return wsTransport(token);
}

export const client: ComposerClient = clientOver(pickTransport());
export { HostCallError } from './client.js';
export type { ComposerClient } from './client.js';
