// The graph document (`*.graph.json`, DESIGN.md §4): what a user saves, opens and shares.
// Params are stored by name; layout lives only in `ui`, so moving a node never changes what the graph computes.

import { z } from 'zod';

export const GRAPH_FORMAT = 'composer.graph';
export const CURRENT_GRAPH_VERSION = 1;

/** Node ids double as handle prefixes (`nodeId:port`) in the canvas, so they avoid ':' and whitespace. */
const nodeIdSchema = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, 'a node id starts with a letter or _ and has only letters, digits, _ . -');

const portNameSchema = z.string().min(1, 'a port name cannot be empty');

export const adapterMethodSchema = z.enum([
  'lora',
  'qlora',
  'prefix',
  'prompt',
  'ptuning',
  'ptuning-v2',
  'adapter',
  'ia3',
  'lora-moe',
]);
export type AdapterMethod = z.infer<typeof adapterMethodSchema>;

export const adapterSpecSchema = z.strictObject({
  id: z.string().min(1),
  method: adapterMethodSchema,
  config: z.record(z.string(), z.unknown()).default({}),
});
export type AdapterSpec = z.infer<typeof adapterSpecSchema>;

/** Weights read from a Hugging Face model folder where it lies: which architecture part this node holds. */
export const hfWeightsRefSchema = z.strictObject({
  /** `architectures/<id>.ts` of electron/formats/hf. */
  architecture: z.string().min(1),
  /** The part of that architecture this node holds ('decoder', 'vision', …). */
  part: z.string().min(1),
  /** sha256 over the shards' names, sizes and headers at import time: a replaced file is an error naming it. */
  fingerprint: z.string().regex(/^[0-9a-f]{64}$/, 'fingerprint must be 64 lowercase hex digits'),
});
export type HfWeightsRef = z.infer<typeof hfWeightsRefSchema>;

export const nodeWeightsSchema = z
  .strictObject({
    /** Relative to the graph file's folder (or absolute): a safetensors file, or with `hf` a model folder. */
    path: z.string().min(1),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'sha256 must be 64 lowercase hex digits').optional(),
    hf: hfWeightsRefSchema.optional(),
  })
  .refine((w) => (w.sha256 === undefined) !== (w.hf === undefined), {
    message: 'weights need either a sha256 (a safetensors file) or hf (a Hugging Face folder), not both',
  });
export type NodeWeights = z.infer<typeof nodeWeightsSchema>;

export const docNodeSchema = z.strictObject({
  id: nodeIdSchema,
  type: z.string().min(1, 'a node type cannot be empty'),
  typeVersion: z.number().int().positive().default(1),
  params: z.record(z.string(), z.unknown()).default({}),
  frozen: z.boolean().default(false),
  adapters: z.array(adapterSpecSchema).default([]),
  weights: nodeWeightsSchema.optional(),
  /**
   * Weights to initialise from the seed although the weights file is loaded (names, or prefixes ending in '.'): the
   * explicit way to start part of a checkpointed node afresh; `vlmc inspect` and the node show them.
   */
  freshWeights: z.array(z.string().min(1)).optional(),
});
export type DocNode = z.infer<typeof docNodeSchema>;

export const portRefSchema = z.strictObject({ node: nodeIdSchema, port: portNameSchema });

export const docEdgeSchema = z.strictObject({ from: portRefSchema, to: portRefSchema });
export type DocEdge = z.infer<typeof docEdgeSchema>;

export const uiGroupSchema = z.strictObject({
  id: z.string().min(1),
  title: z.string().default(''),
  nodeIds: z.array(nodeIdSchema).default([]),
  color: z.string().optional(),
});

export const graphUiSchema = z.strictObject({
  positions: z.record(z.string(), z.strictObject({ x: z.number(), y: z.number() })).default({}),
  groups: z.array(uiGroupSchema).default([]),
  viewport: z.strictObject({ x: z.number(), y: z.number(), zoom: z.number().positive() }).optional(),
});

export const graphDocumentSchema = z.strictObject({
  format: z.literal(GRAPH_FORMAT),
  version: z.literal(CURRENT_GRAPH_VERSION),
  name: z.string().default('untitled'),
  /** Graph-wide seed; each node's init seed is derived from it and the node id. */
  seed: z.number().int().nonnegative().default(0),
  nodes: z.array(docNodeSchema),
  edges: z.array(docEdgeSchema).default([]),
  ui: graphUiSchema.default({ positions: {}, groups: [] }),
});
export type GraphDocument = z.infer<typeof graphDocumentSchema>;

export class GraphDocumentError extends Error {
  override name = 'GraphDocumentError';
}

/**
 * Upgrades from version N to N+1, applied in order before validation. Empty while version 1 is the only one; a
 * future version adds `1: (raw) => ({ ...raw, version: 2, ... })` here and bumps CURRENT_GRAPH_VERSION.
 */
const MIGRATIONS: Record<number, (raw: Record<string, unknown>) => Record<string, unknown>> = {};

/** Applies the migration chain to a parsed JSON object; the result still has to pass graphDocumentSchema. */
export function migrateGraphDocument(raw: Record<string, unknown>, fileName: string): Record<string, unknown> {
  const version = raw.version;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) {
    throw new GraphDocumentError(`${fileName}: $.version must be a positive integer (this Composer writes ${CURRENT_GRAPH_VERSION})`);
  }
  if (version > CURRENT_GRAPH_VERSION) {
    throw new GraphDocumentError(
      `${fileName}: graph version ${version} was written by a newer Composer (this one reads up to ${CURRENT_GRAPH_VERSION})`,
    );
  }
  let doc = raw;
  for (let v = version; v < CURRENT_GRAPH_VERSION; v++) {
    const step = MIGRATIONS[v];
    if (!step) throw new GraphDocumentError(`${fileName}: no migration from graph version ${v} to ${v + 1}`);
    doc = step(doc);
  }
  return doc;
}

/** `$.nodes[2].params` style path; adds the node id when the path points into a node, to help find it. */
export function formatJsonPath(path: ReadonlyArray<PropertyKey>, raw?: unknown): string {
  let out = '$';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) out += `.${key}`;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  if (path[0] === 'nodes' && typeof path[1] === 'number' && isRecord(raw) && Array.isArray(raw.nodes)) {
    const node = raw.nodes[path[1]];
    if (isRecord(node) && typeof node.id === 'string') out += ` (node '${node.id}')`;
  }
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses and checks the structure of a graph document. Errors name the file and the JSON path of the bad field.
 * Semantic checks (known node types, params, ports, shapes) are `validateDocument` in validate.ts.
 */
export function parseGraphDocument(text: string, fileName: string): GraphDocument {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new GraphDocumentError(`${fileName}: not valid JSON: ${(e as Error).message}`);
  }
  return graphDocumentFromJson(raw, fileName);
}

/** Same as parseGraphDocument for an already-parsed JSON value (e.g. a document that came over IPC). */
export function graphDocumentFromJson(raw: unknown, fileName: string): GraphDocument {
  if (!isRecord(raw)) throw new GraphDocumentError(`${fileName}: $ must be a JSON object (a composer.graph document)`);
  if (raw.format !== GRAPH_FORMAT) {
    throw new GraphDocumentError(
      `${fileName}: $.format must be "${GRAPH_FORMAT}" (found ${JSON.stringify(raw.format) ?? 'nothing'})`,
    );
  }
  const migrated = migrateGraphDocument(raw, fileName);
  const result = graphDocumentSchema.safeParse(migrated);
  if (!result.success) {
    const lines = result.error.issues.slice(0, 10).map((issue) => {
      const keys = issue.code === 'unrecognized_keys' ? ` (${issue.keys.map((k) => `'${k}'`).join(', ')})` : '';
      return `${formatJsonPath(issue.path, migrated)}: ${issue.message}${keys}`;
    });
    const more = result.error.issues.length > 10 ? `\n  … and ${result.error.issues.length - 10} more` : '';
    throw new GraphDocumentError(`${fileName}: invalid graph document:\n  ${lines.join('\n  ')}${more}`);
  }
  return result.data;
}

/** The first `llm.decoder` reachable downstream of a node (breadth-first over edges), if any. */
export function downstreamDecoder(doc: GraphDocument, id: string): string | undefined {
  const seen = new Set([id]);
  const queue = [id];
  while (queue.length) {
    const cur = queue.shift()!;
    for (const e of doc.edges) {
      if (e.from.node !== cur || seen.has(e.to.node)) continue;
      if (doc.nodes.find((n) => n.id === e.to.node)?.type === 'llm.decoder') return e.to.node;
      seen.add(e.to.node);
      queue.push(e.to.node);
    }
  }
  return undefined;
}

/**
 * Whose seed and weights file a node uses: an Embed tokens node shares the word embedding of the decoder it feeds,
 * so both are built from the decoder's seed and weights.
 */
export function weightOwnerOf(doc: GraphDocument, id: string): string {
  if (doc.nodes.find((n) => n.id === id)?.type !== 'llm.embed_tokens') return id;
  return downstreamDecoder(doc, id) ?? id;
}
