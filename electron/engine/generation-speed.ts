// Generation speed from the node events (engine/messages.ts; `vlmc run --json`): every generated token is a
// `progress` event with message 'token'. The rate counts the tokens after the first over the time after the first,
// so neither the session build nor the prompt's forward pass (prefill) is in it: steady KV-cache decoding, as a user
// waits for it.

import { type NodeEvent, TOKEN_PROGRESS } from './messages.js';

export interface GenerationSpeed {
  /** Tokens generated (token events seen). */
  tokens: number;
  /** Milliseconds from the node's start (session build included) to its first token. */
  first_token_ms: number;
  /** Milliseconds from the first token to the last. */
  decode_ms: number;
  /** (tokens − 1) / decode time; null with fewer than 2 tokens. */
  tokens_per_s: number | null;
}

export class GenerationTimer {
  private readonly started = new Map<string, number>();
  private readonly tokens = new Map<string, number[]>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  readonly onEvent = (e: NodeEvent): void => {
    if (e.type === 'started') this.started.set(e.node, this.now());
    else if (e.type === 'progress' && e.message === TOKEN_PROGRESS) {
      let list = this.tokens.get(e.node);
      if (!list) this.tokens.set(e.node, (list = []));
      list.push(this.now());
    }
  };

  report(): Record<string, GenerationSpeed> {
    const out: Record<string, GenerationSpeed> = {};
    for (const [node, times] of this.tokens) {
      const first = times[0];
      const last = times[times.length - 1];
      const decode = last - first;
      out[node] = {
        tokens: times.length,
        first_token_ms: Math.round((first - (this.started.get(node) ?? first)) * 10) / 10,
        decode_ms: Math.round(decode * 10) / 10,
        tokens_per_s: times.length > 1 && decode > 0 ? Math.round(((times.length - 1) / (decode / 1000)) * 10) / 10 : null,
      };
    }
    return out;
  }
}
