// The node catalogue: every node type of every family, looked up by type id or short alias, and described for the UI.

import { z } from 'zod';
import type { NodeTypeDef, NodeTypeInfo, ParamInfo, PortSpec } from './types.js';
import { nodeTypes as encoders } from './encoders.js';
import { nodeTypes as projectors } from './projectors.js';
import { nodeTypes as llms } from './llms.js';
import { nodeTypes as generators } from './generators.js';
import { nodeTypes as outputProjectors } from './output-projectors.js';
import { nodeTypes as io } from './io.js';
import { nodeTypes as prompts } from './prompts.js';
import { nodeTypes as imported } from './imported.js';
import { nodeTypes as text } from './text.js';
import { nodeTypes as heads } from './heads.js';
import { nodeTypes as diffusion } from './diffusion.js';

export class CatalogError extends Error {
  override name = 'CatalogError';
}

/** A set of node types with lookups; the app uses `defaultCatalog`, tests can build their own. */
export class Catalog {
  private readonly byType = new Map<string, NodeTypeDef>();
  private readonly byAlias = new Map<string, NodeTypeDef>();

  constructor(defs: readonly NodeTypeDef[]) {
    for (const def of defs) {
      const { type } = def.info;
      if (!/^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$/.test(type)) {
        throw new CatalogError(`node type id '${type}' must be namespaced lowercase, like 'projector.mlp'`);
      }
      if (this.byType.has(type)) throw new CatalogError(`node type '${type}' is defined twice`);
      if (!(def.params instanceof z.ZodObject)) {
        throw new CatalogError(`node type '${type}': params must be a zod object (params are stored by name)`);
      }
      this.byType.set(type, def);
    }
    for (const def of defs) {
      for (const alias of def.info.aliases) {
        const clash = this.byType.get(alias) ?? this.byAlias.get(alias);
        if (clash) {
          throw new CatalogError(`alias '${alias}' of '${def.info.type}' is already used by '${clash.info.type}'`);
        }
        this.byAlias.set(alias, def);
      }
    }
  }

  /** The node type with this exact id, or undefined. */
  lookup(type: string): NodeTypeDef | undefined {
    return this.byType.get(type);
  }

  /** The node type with this id or alias; throws naming close matches when there is none. */
  get(nameOrAlias: string): NodeTypeDef {
    const def = this.find(nameOrAlias);
    if (def) return def;
    const close = this.closeMatches(nameOrAlias);
    const hint = close.length ? `; did you mean ${close.map((c) => `'${c}'`).join(', ')}?` : '';
    throw new CatalogError(`unknown node type '${nameOrAlias}'${hint}`);
  }

  /** Exact id first, then alias (case-insensitive for aliases, as typed on the CLI). */
  find(nameOrAlias: string): NodeTypeDef | undefined {
    return this.byType.get(nameOrAlias) ?? this.byAlias.get(nameOrAlias) ?? this.byAlias.get(nameOrAlias.toLowerCase());
  }

  all(): NodeTypeDef[] {
    return [...this.byType.values()];
  }

  list(): NodeTypeInfo[] {
    return this.all().map(describeNodeType);
  }

  /** Type ids (and the ids behind aliases) nearest to `name`, best first. */
  closeMatches(name: string, limit = 3): string[] {
    const needle = name.toLowerCase();
    const scored: Array<[string, number]> = [];
    const consider = (candidate: string, target: string) => {
      const c = candidate.toLowerCase();
      const last = c.split('.').pop() ?? c;
      let score = Math.min(editDistance(needle, c), editDistance(needle, last));
      if (c.includes(needle) || needle.includes(last)) score = Math.min(score, 1);
      if (score <= Math.max(2, Math.floor(needle.length / 3))) scored.push([target, score]);
    };
    for (const type of this.byType.keys()) consider(type, type);
    for (const [alias, def] of this.byAlias) consider(alias, def.info.type);
    scored.sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]));
    return [...new Set(scored.map(([t]) => t))].slice(0, limit);
  }
}

export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length];
}

// ---------------------------------------------------------------------------------------------------------------
// Params described for the UI (derived from the zod schema, so the form and the validator never disagree)

type AnySchema = z.core.$ZodType;

function defOf(schema: AnySchema): { type: string } & Record<string, unknown> {
  return schema._zod.def as unknown as { type: string } & Record<string, unknown>;
}

/** Strips default/optional/nullable wrappers; returns the inner schema and the default (undefined when none). */
function unwrap(schema: AnySchema): { inner: AnySchema; defaultValue: unknown } {
  let inner = schema;
  let defaultValue: unknown;
  for (;;) {
    const def = defOf(inner);
    if (def.type === 'default' || def.type === 'prefault') {
      if (defaultValue === undefined) defaultValue = def.defaultValue;
      inner = def.innerType as AnySchema;
    } else if (def.type === 'optional' || def.type === 'nullable' || def.type === 'readonly') {
      inner = def.innerType as AnySchema;
    } else if (def.type === 'pipe') {
      inner = def.in as AnySchema;
    } else {
      return { inner, defaultValue };
    }
  }
}

const UNBOUNDED = Number.MAX_SAFE_INTEGER;

function numberInfo(schema: AnySchema): Pick<ParamInfo, 'kind' | 'min' | 'max'> {
  const n = schema as unknown as { minValue: number | null; maxValue: number | null; isInt: boolean | null };
  const info: Pick<ParamInfo, 'kind' | 'min' | 'max'> = { kind: n.isInt ? 'int' : 'float' };
  if (n.minValue !== null && Number.isFinite(n.minValue) && Math.abs(n.minValue) < UNBOUNDED) info.min = n.minValue;
  if (n.maxValue !== null && Number.isFinite(n.maxValue) && Math.abs(n.maxValue) < UNBOUNDED) info.max = n.maxValue;
  return info;
}

function literalValues(schema: AnySchema): string[] | null {
  const def = defOf(schema);
  if (def.type === 'literal') return (def.values as unknown[]).map(String);
  if (def.type === 'enum') return Object.values(def.entries as Record<string, string | number>).map(String);
  return null;
}

/**
 * One param's UI description. Numbers that also accept a word (e.g. `d_out: int | 'auto'`) are reported with the
 * number's kind and the words as `options`.
 */
export function paramInfoOf(name: string, schema: AnySchema, doc: string): ParamInfo {
  const { inner, defaultValue } = unwrap(schema);
  const base = { name, doc, default: jsonSafe(defaultValue) };
  const def = defOf(inner);
  const literals = literalValues(inner);
  if (literals) return { ...base, kind: 'enum', options: literals };
  switch (def.type) {
    case 'number':
      return { ...base, ...numberInfo(inner) };
    case 'string':
      return { ...base, kind: 'string' };
    case 'boolean':
      return { ...base, kind: 'bool' };
    case 'union': {
      const members = (def.options as AnySchema[]).map((m) => unwrap(m).inner);
      const words = members.map(literalValues);
      const numbers = members.filter((m) => defOf(m).type === 'number');
      if (words.every((w) => w !== null)) return { ...base, kind: 'enum', options: words.flat() as string[] };
      if (numbers.length === 1 && numbers.length + words.filter((w) => w !== null).length === members.length) {
        return { ...base, ...numberInfo(numbers[0]), options: words.filter((w) => w !== null).flat() as string[] };
      }
      return { ...base, kind: 'json' };
    }
    default:
      return { ...base, kind: 'json' };
  }
}

function jsonSafe(v: unknown): unknown {
  if (v === undefined) return null;
  return JSON.parse(JSON.stringify(v)) as unknown;
}

/** The zod object's fields by name. */
export function paramShape(def: NodeTypeDef): Record<string, AnySchema> {
  return (def.params as unknown as z.ZodObject).shape as Record<string, AnySchema>;
}

export function describeNodeType(def: NodeTypeDef): NodeTypeInfo {
  const params = Object.entries(paramShape(def)).map(([name, schema]) =>
    paramInfoOf(name, schema, def.paramDocs[name] ?? ''),
  );
  return { ...def.info, aliases: [...def.info.aliases], params };
}

/** A node's ports for its params (imported models derive them from their file). */
export function portsOf(def: NodeTypeDef, params: unknown): { inputs: PortSpec[]; outputs: PortSpec[] } {
  if (def.ports) return def.ports(params);
  return { inputs: def.info.inputs, outputs: def.info.outputs };
}

// ---------------------------------------------------------------------------------------------------------------
// The app's catalogue

export const defaultCatalog = new Catalog([
  ...encoders,
  ...projectors,
  ...llms,
  ...generators,
  ...outputProjectors,
  ...io,
  ...prompts,
  ...text,
  ...heads,
  ...diffusion,
  ...imported,
]);

export function getNodeType(type: string): NodeTypeDef {
  return defaultCatalog.get(type);
}

export function findNodeType(nameOrAlias: string): NodeTypeDef | undefined {
  return defaultCatalog.find(nameOrAlias);
}

export function listNodeTypes(): NodeTypeInfo[] {
  return defaultCatalog.list();
}
