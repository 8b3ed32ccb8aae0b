// A float64 twin of a float32 model, for finite differences: a central difference of a float32 loss is dominated by
// rounding noise (≈ 1e-7·|L|/h), which hides real gradient errors behind loose tolerances. In float64 that noise is
// ~1e-16. Ops without a float64 kernel in onnxruntime are rewritten with ops that have one (float64-ops.ts); any
// other such op runs in float32 between Casts (found by asking onnxruntime).

import type * as ort from 'onnxruntime-node';
import { type Attribute, type Model, type Node, type Tensor, tensorFromNumbers, tensorToNumbers } from '../onnx/ir.js';
import { createSession } from '../onnx/ort.js';
import { inferShapes } from '../onnx/shapes.js';
import { FLOAT64_REPLACEMENTS } from './float64-ops.js';

const FLOAT = 1;
const DOUBLE = 11;

function widenTensor(t: Tensor): Tensor {
  return t.dtype === 'float32' ? tensorFromNumbers('float64', [...t.dims], tensorToNumbers(t)) : t;
}

/** Attributes that carry a dtype code or a typed value: float32 becomes float64. */
function widenAttrs(node: Node): Record<string, Attribute> {
  const attrs: Record<string, Attribute> = {};
  for (const [k, a] of Object.entries(node.attrs)) {
    if (a.type === 'tensor') attrs[k] = { type: 'tensor', value: widenTensor(a.value) };
    else if (a.type === 'int' && a.value === FLOAT && (k === 'to' || k === 'dtype')) {
      attrs[k] = { type: 'int', value: DOUBLE };
    } else attrs[k] = a;
  }
  // A Constant's value_float(s) would stay float32: give it as a float64 tensor instead.
  if (node.opType === 'Constant') {
    const vf = node.attrs.value_float;
    const vfs = node.attrs.value_floats;
    if (vf?.type === 'float') {
      delete attrs.value_float;
      attrs.value = { type: 'tensor', value: tensorFromNumbers('float64', [], [vf.value]) };
    } else if (vfs?.type === 'floats') {
      delete attrs.value_floats;
      attrs.value = { type: 'tensor', value: tensorFromNumbers('float64', [vfs.value.length], vfs.value) };
    }
  }
  return attrs;
}

/** The same graph computing in float64: float32 inputs, outputs, initializers, constants and casts widened. */
export function widenToFloat64(model: Model): Model {
  const g = model.graph;
  const widenInfo = <T extends { dtype: string }>(v: T): T => (v.dtype === 'float32' ? { ...v, dtype: 'float64' } : v);
  const initializers = new Map([...g.initializers].map(([k, t]) => [k, widenTensor(t)]));
  const infos = inferShapes(model);
  const opset = model.opsets[''] ?? 0;
  const nodes = g.nodes.flatMap((n): Node[] => {
    const replace = n.domain === '' && infos.get(n.inputs[0])?.dtype === 'float32' ? FLOAT64_REPLACEMENTS[n.opType] : undefined;
    const replaced = replace ? replace({ node: n, infos, initializers, opset }) : null;
    return replaced ?? [{ ...n, inputs: [...n.inputs], outputs: [...n.outputs], attrs: widenAttrs(n) }];
  });
  return {
    ...model,
    opsets: { ...model.opsets },
    graph: {
      ...g,
      inputs: g.inputs.map(widenInfo),
      outputs: g.outputs.map(widenInfo),
      initializers,
      // Annotations would contradict the widened types; shape inference recomputes what is needed.
      valueInfo: new Map(),
      nodes,
    },
  };
}

/**
 * Runs every node of `opType` in float32: Casts its float64 inputs down and its float64 outputs back up.
 * False when the graph has no such node (the op sits inside a function onnxruntime expands, e.g. HardSwish).
 */
function narrowOp(model: Model, opType: string): boolean {
  const g = model.graph;
  const infos = inferShapes(model);
  const nodes: Node[] = [];
  let count = 0;
  for (const node of g.nodes) {
    if (node.opType !== opType || node.domain !== '') {
      nodes.push(node);
      continue;
    }
    const tag = `${node.name || opType}__f32_${count++}`;
    node.inputs.forEach((inp, i) => {
      if (!inp || infos.get(inp)?.dtype !== 'float64') return;
      const narrowed = `${tag}_in${i}`;
      nodes.push({ name: `${narrowed}_cast`, opType: 'Cast', domain: '', inputs: [inp], outputs: [narrowed], attrs: { to: { type: 'int', value: FLOAT } } });
      node.inputs[i] = narrowed;
    });
    nodes.push(node);
    node.outputs.forEach((out, j) => {
      if (!out || infos.get(out)?.dtype !== 'float64') return;
      const narrowed = `${tag}_out${j}`;
      nodes.push({ name: `${narrowed}_cast`, opType: 'Cast', domain: '', inputs: [narrowed], outputs: [out], attrs: { to: { type: 'int', value: DOUBLE } } });
      node.outputs[j] = narrowed;
    });
  }
  g.nodes = nodes;
  return count > 0;
}

/** The op type an onnxruntime load error blames for a missing kernel or a rejected input type, if any. */
function blamedOp(message: string): string | null {
  const m =
    /Could not find an implementation for (\w+)\(\d+\) node/.exec(message) ??
    /of operator \((\w+)\) in node/.exec(message);
  return m ? m[1] : null;
}

/**
 * A session of the float64 twin of `model`. Op types onnxruntime has no float64 kernel for run in float32 between
 * Casts; `narrowed` lists them (their rounding still reaches the loss). Null when onnxruntime rejects the twin for a
 * reason narrowing cannot fix (the caller then evaluates the model as it is).
 */
export async function createFloat64Session(
  model: Model,
): Promise<{ model: Model; session: ort.InferenceSession; narrowed: string[] } | null> {
  const twin = widenToFloat64(model);
  const narrowed: string[] = [];
  for (;;) {
    try {
      return { model: twin, session: await createSession(twin, { optimize: false }), narrowed };
    } catch (e) {
      const op = blamedOp((e as Error).message);
      if (op === null || narrowed.includes(op) || !narrowOp(twin, op)) return null;
      narrowed.push(op);
    }
  }
}

/** Feeds for the float64 twin: float32 tensors widened, others as they are. */
export function widenFeeds(feeds: Record<string, Tensor>): Record<string, Tensor> {
  return Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, widenTensor(t)]));
}
