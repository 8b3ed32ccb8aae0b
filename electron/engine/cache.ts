// A byte-bounded LRU cache of node outputs, keyed by content key (ComfyUI-style: same inputs → same outputs).

import type { Tensor } from '../onnx/ir.js';

export type CachedValue = Tensor | string;

function sizeOf(v: CachedValue): number {
  if (typeof v === 'string') return v.length * 2;
  if (Array.isArray(v.data)) return v.data.reduce((n, s) => n + s.length * 2, 0);
  return v.data.byteLength;
}

export class OutputCache {
  private readonly entries = new Map<string, { outputs: Record<string, CachedValue>; bytes: number }>();
  private used = 0;

  constructor(readonly maxBytes = 1024 ** 3) {}

  get(key: string): Record<string, CachedValue> | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    // Re-insert to mark as most recently used.
    this.entries.delete(key);
    this.entries.set(key, e);
    return e.outputs;
  }

  set(key: string, outputs: Record<string, CachedValue>): void {
    const bytes = Object.values(outputs).reduce((n, v) => n + sizeOf(v), 0);
    const old = this.entries.get(key);
    if (old) {
      this.used -= old.bytes;
      this.entries.delete(key);
    }
    if (bytes > this.maxBytes) return; // Larger than the whole budget: never cached.
    this.entries.set(key, { outputs, bytes });
    this.used += bytes;
    for (const [k, e] of this.entries) {
      if (this.used <= this.maxBytes) break;
      this.entries.delete(k);
      this.used -= e.bytes;
    }
  }

  get bytes(): number {
    return this.used;
  }
  get size(): number {
    return this.entries.size;
  }
  clear(): void {
    this.entries.clear();
    this.used = 0;
  }
}
