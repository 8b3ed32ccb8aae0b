// What goes into a run and what comes out, one rule each, for every caller: the app's Run and Compare jobs
// (engine/run.ts, engine/compare.ts), `vlmc run` and `vlmc compare`, the evaluators and bench/run.
//   in:  the run image to every io.image node, the prompt to one io.text node (mapRunInputs);
//   out: what reaches each io.text_output / io.image_output node, else the text of the sinks (collectOutputs).

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { imageOutputParams } from '../nodes/io.js';
import { writeFileAtomic } from '../onnx/atomic.js';
import type { GraphDocument } from './document.js';
import type { RunInput, RunResult, Value } from './executor.js';
import { imagesToPng } from './host-steps/io.js';

// ---------------------------------------------------------------------------------------------------------------
// Run-time inputs → input nodes

/** An image given at run time: bytes (uploaded or dropped) or a path the host already checked. */
export interface RunImageInput {
  name: string;
  path?: string;
  bytes?: Uint8Array;
}

/** Run-time data of one run (the host resolved every path through its file policy). */
export interface RunJobInputs {
  image?: RunImageInput;
  prompt?: string;
  /** The io.text node that takes the prompt; default the first io.text node in document order. */
  promptNode?: string;
}

export interface MapRunInputsOptions {
  /**
   * An image for a graph without an io.image node is left out instead of being an error: compare and bench/run
   * give the same image to every graph they run, text-to-image included.
   */
  imageOptional?: boolean;
}

export class RunInputError extends Error {
  override name = 'RunInputError';
}

/** The executor's run input for an image: its bytes, else its path. */
export function imageRunInput(image: RunImageInput): RunInput {
  if (image.bytes) return { bytes: image.bytes };
  if (image.path) return { path: image.path };
  throw new RunInputError(`the run image '${image.name}' has neither bytes nor a path`);
}

/**
 * The rule: the image goes to every `io.image` node; the prompt goes to the `io.text` node named by `promptNode`,
 * or else to the first `io.text` node in document order. Data with nowhere to go is an error, not silently dropped
 * (an image may be left out with `imageOptional`).
 */
export function mapRunInputs(doc: GraphDocument, inputs: RunJobInputs = {}, opts: MapRunInputsOptions = {}): Record<string, RunInput> {
  const mapped: Record<string, RunInput> = {};
  if (inputs.image) {
    const imageNodes = doc.nodes.filter((n) => n.type === 'io.image');
    if (imageNodes.length === 0 && !opts.imageOptional) {
      throw new RunInputError(`an image was given, but the graph has no Image (io.image) node to take it`);
    }
    const value = imageRunInput(inputs.image);
    for (const n of imageNodes) mapped[n.id] = value;
  }
  if (inputs.prompt !== undefined) {
    let target: string;
    if (inputs.promptNode) {
      const named = doc.nodes.find((n) => n.id === inputs.promptNode);
      if (!named) throw new RunInputError(`the prompt is addressed to node '${inputs.promptNode}', which is not in the graph`);
      if (named.type !== 'io.text') {
        throw new RunInputError(`the prompt is addressed to node '${named.id}', which is a ${named.type}, not a Text (io.text) node`);
      }
      target = named.id;
    } else {
      const first = doc.nodes.find((n) => n.type === 'io.text');
      if (!first) throw new RunInputError(`a prompt was given, but the graph has no Text (io.text) node to take it`);
      target = first.id;
    }
    mapped[target] = { ...mapped[target], text: inputs.prompt };
  }
  return mapped;
}

// ---------------------------------------------------------------------------------------------------------------
// Results: what reaches the output nodes

export interface RunOutput {
  /** The output node (or, in a graph without output nodes, the sink that produced the text). */
  node: string;
  text?: string;
  /** An image output: one PNG per image of the batch. */
  pngs?: Buffer[];
}

function valueInto(doc: GraphDocument, result: Pick<RunResult, 'outputs'>, nodeId: string, port: string): Value | undefined {
  const edge = doc.edges.find((e) => e.to.node === nodeId && e.to.port === port);
  return edge ? result.outputs[edge.from.node]?.[edge.from.port] : undefined;
}

/**
 * Text and image results, by output node in document order: what arrives at each Text output / Image output node
 * that ran (images as PNGs, in the node's range). A graph without output nodes reports the text ports of the nodes
 * that ran last (its sinks), in document order.
 */
export async function collectOutputs(doc: GraphDocument, result: Pick<RunResult, 'outputs' | 'computed' | 'cached'>): Promise<RunOutput[]> {
  const ran = new Set([...result.computed, ...result.cached]);
  const out: RunOutput[] = [];
  for (const node of doc.nodes) {
    if (!ran.has(node.id)) continue;
    if (node.type === 'io.text_output') {
      const v = valueInto(doc, result, node.id, 'text');
      if (typeof v === 'string') out.push({ node: node.id, text: v });
    } else if (node.type === 'io.image_output') {
      const v = valueInto(doc, result, node.id, 'image');
      if (v === undefined || typeof v === 'string') continue;
      const { range } = imageOutputParams.parse(node.params);
      out.push({ node: node.id, pngs: await imagesToPng(v, range, `node '${node.id}' input 'image'`) });
    }
  }
  if (out.length === 0) {
    const fed = new Set(doc.edges.map((e) => e.from.node));
    for (const node of doc.nodes) {
      if (!ran.has(node.id) || fed.has(node.id)) continue;
      for (const v of Object.values(result.outputs[node.id] ?? {})) if (typeof v === 'string') out.push({ node: node.id, text: v });
    }
  }
  return out;
}

/** `data:image/png;base64,…` for a PNG (what the contract carries). */
export function pngDataUrl(png: Uint8Array): string {
  return `data:image/png;base64,${Buffer.from(png).toString('base64')}`;
}

/** Writes an image output's PNGs, the i-th to `pathOf(i)` (its folder made), and returns their paths. */
export function writePngs(pngs: Buffer[], pathOf: (index: number) => string): string[] {
  return pngs.map((png, i) => {
    const path = pathOf(i);
    mkdirSync(dirname(path), { recursive: true });
    writeFileAtomic(path, png);
    return path;
  });
}
