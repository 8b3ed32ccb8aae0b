// Reverse-mode autodiff over an ONNX graph: appends the backward pass (standard ONNX ops only) to the same graph
// and exposes d(loss)/d(w) for each requested w as a graph output.

import { inlineConstantIfs } from './inline-if.js';
import { GraphBuilder } from '../onnx/builder.js';
import { type Dim, type Model, type ValueInfo, isFloat, tensorFromNumbers } from '../onnx/ir.js';
import { inferShapes } from '../onnx/shapes.js';
import { AutodiffError, VjpContext } from './context.js';
import { planGradients } from './requires-grad.js';
import { VJP_RULES } from './rules/index.js';

export interface GradientOptions {
  /** Name of the scalar (or any-shaped: then seeded with ones) float value to differentiate. */
  loss: string;
  /** Initializers or graph inputs to differentiate with respect to. */
  wrt: string[];
  /** Graph input feeding the loss cotangent (default: a constant 1). */
  seedInput?: string;
  /** Shapes for graph inputs, overriding the file's (symbolic dims are fine). */
  inputShapes?: Record<string, Dim[]>;
  /** Output name for the gradient of `w` (default `${w}_grad`). */
  gradName?: (w: string) => string;
  /** Add the gradients as graph outputs (default true). */
  addOutputs?: boolean;
}

export interface GradientResult {
  model: Model;
  /** w → name of the value holding dL/dw in `model`. */
  grads: Map<string, string>;
  /** Type info for every value of the returned graph that inference or the rules knew. */
  infos: Map<string, ValueInfo>;
  /** Trainables the loss does not depend on (their gradient is an explicit zero tensor). */
  unreachable: string[];
}

function cloneModel(model: Model): Model {
  const g = model.graph;
  return {
    ...model,
    opsets: { ...model.opsets },
    metadata: { ...model.metadata },
    graph: {
      ...g,
      nodes: g.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs], attrs: { ...n.attrs } })),
      inputs: [...g.inputs],
      outputs: [...g.outputs],
      initializers: new Map(g.initializers),
      valueInfo: new Map(g.valueInfo),
    },
  };
}

export function buildGradientGraph(source: Model, opts: GradientOptions): GradientResult {
  const model = cloneModel(source);
  const graph = model.graph;
  const opset = model.opsets[''] ?? 0;
  if (opset < 13) {
    throw new AutodiffError(`model opset ${opset} is too old for training; re-export it with opset 13 or newer`);
  }
  // Scatter with reduction='add' (the gradients of gather-like ops) needs opset 16; 14→17 keeps every op's meaning.
  if (opset < 16) model.opsets[''] = 17;
  // An If on a condition fixed when the graph is built (a merged decoder's use_cache_branch) becomes its taken branch.
  inlineConstantIfs(graph);
  for (const n of graph.nodes) {
    if (n.opType === 'If' || n.opType === 'Loop' || n.opType === 'Scan') {
      const why = n.opType === 'If' ? `its condition '${n.inputs[0]}' depends on the data (an If trains only when its condition is a constant or a graph input fed a constant)` : 'control flow is not supported for training';
      throw new AutodiffError(`${n.opType} node '${n.name}': ${why}`);
    }
  }
  const infos = inferShapes(model, opts.inputShapes);
  const lossInfo = infos.get(opts.loss);
  if (!lossInfo) throw new AutodiffError(`loss '${opts.loss}' is not a value of the graph`);
  if (!isFloat(lossInfo.dtype)) throw new AutodiffError(`loss '${opts.loss}' has dtype ${lossInfo.dtype}, not a float`);
  for (const w of opts.wrt) {
    const info = infos.get(w);
    if (!info) throw new AutodiffError(`cannot differentiate with respect to '${w}': no such initializer or input`);
    if (!isFloat(info.dtype)) throw new AutodiffError(`cannot differentiate with respect to '${w}': dtype ${info.dtype}`);
  }

  const plan = planGradients(graph, infos, opts.wrt, opts.loss);
  // Check every op on the path first, so a missing rule is reported as such (not as a later rank or type error).
  const ruleFor = (node: (typeof plan.nodes)[number]) => {
    const rule = VJP_RULES[node.domain ? `${node.domain}::${node.opType}` : node.opType];
    if (!rule) {
      throw new AutodiffError(
        `${node.opType} node '${node.name}' lies on the gradient path but the op has no gradient rule` +
          (node.domain ? ` (domain '${node.domain}')` : ''),
      );
    }
    return rule;
  };
  for (const node of plan.nodes) ruleFor(node);
  const b = new GraphBuilder(graph);
  const contributions = new Map<string, string[]>();
  const push = (value: string, grad: string) => {
    const list = contributions.get(value);
    if (list) list.push(grad);
    else contributions.set(value, [grad]);
  };
  const total = (value: string): string | null => {
    const list = contributions.get(value);
    if (!list || list.length === 0) return null;
    if (list.length === 1) return list[0];
    const sum = b.op('Sum', list, {}, { name: `${value}_grad_accumulate` });
    contributions.set(value, [sum]);
    return sum;
  };

  const lossShape = lossInfo.shape;
  const seed =
    opts.seedInput ??
    (lossShape && lossShape.length === 0
      ? b.scalar(1, lossInfo.dtype)
      : b.op('ConstantOfShape', [b.shape(opts.loss)], {
          value: tensorFromNumbers(lossInfo.dtype, [1], [1]),
        }));
  push(opts.loss, seed);

  for (let k = plan.nodes.length - 1; k >= 0; k--) {
    const node = plan.nodes[k];
    const outGrads = node.outputs.map((o) => (o && plan.needed.has(o) ? total(o) : null));
    if (outGrads.every((g) => g === null)) continue;
    const rule = ruleFor(node);
    const ctx = new VjpContext(node, b, model.opsets[''], infos, plan.needed, outGrads, graph);
    const inGrads = rule(ctx);
    node.inputs.forEach((inp, i) => {
      const g = inGrads[i];
      if (inp && g && plan.needed.has(inp)) push(inp, g);
    });
  }

  const grads = new Map<string, string>();
  const nameOf = opts.gradName ?? ((w: string) => `${w}_grad`);
  for (const w of opts.wrt) {
    const info = infos.get(w)!;
    const g = total(w);
    const name = b.reserve(nameOf(w));
    if (g) b.op('Identity', [g], {}, { outputs: [name] });
    else b.op('ConstantOfShape', [b.shape(w)], { value: tensorFromNumbers(info.dtype, [1], [0]) }, { outputs: [name] });
    grads.set(w, name);
    infos.set(name, { name, dtype: info.dtype, shape: info.shape });
    if (opts.addOutputs !== false) b.output(name, info.dtype, info.shape);
  }
  return { model, grads, infos, unreachable: plan.unreachable };
}
