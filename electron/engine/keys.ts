// Content keys: a stable hash of everything that determines a node's outputs (never its layout).

import { createHash } from 'node:crypto';

/** JSON with sorted object keys, so equal values always serialise identically. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`)
    .join(',')}}`;
}

export function hashKey(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex').slice(0, 32);
}

export function hashBytes(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A 31-bit seed for a node from the graph seed and the node id (stable across runs and machines). */
export function nodeSeed(graphSeed: number, nodeId: string): number {
  const h = createHash('sha256').update(`${graphSeed}:${nodeId}`).digest();
  return h.readUInt32LE(0) & 0x7fffffff;
}
