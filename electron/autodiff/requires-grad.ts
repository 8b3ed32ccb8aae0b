// Which values need a gradient: forward-reachable from the trainables ∩ backward-reachable from the loss, walking
// float edges only and never across a stop edge (shape, index and mask inputs).

import { type Graph, type Node, type ValueInfo, isFloat, topoSort } from '../onnx/ir.js';
import { isStopInput } from './stop-edges.js';

export interface GradPlan {
  /** Values on a path from a trainable to the loss. */
  needed: Set<string>;
  /** Nodes to differentiate, in forward topological order. */
  nodes: Node[];
  /** Trainables that the loss does not depend on (their gradient is zero). */
  unreachable: string[];
}

function isFloatValue(infos: Map<string, ValueInfo>, name: string): boolean {
  const info = infos.get(name);
  // Unknown dtype: assume float so we never silently drop a gradient; the rule lookup will complain if wrong.
  return info ? isFloat(info.dtype) : true;
}

export function planGradients(graph: Graph, infos: Map<string, ValueInfo>, wrt: string[], loss: string): GradPlan {
  const order = topoSort(graph);

  const forward = new Set<string>(wrt.filter((w) => isFloatValue(infos, w)));
  for (const node of order) {
    const reached = node.inputs.some((inp, i) => inp && forward.has(inp) && !isStopInput(node.opType, i));
    if (!reached) continue;
    for (const o of node.outputs) if (o && isFloatValue(infos, o)) forward.add(o);
  }

  const backward = new Set<string>([loss]);
  for (let k = order.length - 1; k >= 0; k--) {
    const node = order[k];
    if (!node.outputs.some((o) => o && backward.has(o))) continue;
    node.inputs.forEach((inp, i) => {
      if (inp && !isStopInput(node.opType, i) && isFloatValue(infos, inp)) backward.add(inp);
    });
  }

  const needed = new Set<string>();
  for (const v of forward) if (backward.has(v)) needed.add(v);

  const nodes = order.filter(
    (n) =>
      n.outputs.some((o) => o && needed.has(o)) &&
      n.inputs.some((inp, i) => inp && needed.has(inp) && !isStopInput(n.opType, i)),
  );
  const unreachable = wrt.filter((w) => !needed.has(w));
  return { needed, nodes, unreachable };
}
