// The renderer's one way to reach the host. Two transports implement it (Electron IPC and WebSocket); nothing
// else in the renderer knows which one is in use.

import type { ErrorCode, HostEvent, MethodName, Params, Result, Transport } from '../../electron/host/contract.js';

export type { Transport } from '../../electron/host/contract.js';

export class HostCallError extends Error {
  constructor(
    readonly code: ErrorCode | 'disconnected',
    message: string,
  ) {
    super(message);
    this.name = 'HostCallError';
  }
}

export interface ComposerClient {
  call<M extends MethodName>(method: M, params: Params<M>): Promise<Result<M>>;
  onEvent(listener: (event: HostEvent) => void): () => void;
}

export function clientOver(transport: Transport): ComposerClient {
  return {
    async call(method, params) {
      const reply = await transport.invoke(method, params);
      if (!reply.ok) throw new HostCallError(reply.error.code, reply.error.message);
      return reply.result as Result<typeof method>;
    },
    onEvent: (listener) => transport.onEvent(listener),
  };
}
