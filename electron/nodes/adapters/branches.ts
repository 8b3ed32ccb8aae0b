// Adapters on a merged decoder (Optimum's decoder_model_merged.onnx): its layers live inside the two branches of an
// `If` on use_cache_branch, which read the weights from the outer graph by name. Each branch is adapted as a graph of
// its own that sees the outer initializers; the adapter weights it adds (named by module, initialised from the seed
// and the name, so both branches make the same tensors) go to the outer graph once, shared by both branches.

import type { Graph, Node } from '../../onnx/ir.js';
import type { OnnxFragment } from '../types.js';
import { AdapterError } from './common.js';

export interface BranchApplied {
  fragment: OnnxFragment;
  trainable: string[];
  auxLosses: Array<{ output: string; coefficient: number }>;
}

type ApplyAll = (fragment: OnnxFragment) => BranchApplied;

/** Whether the fragment's computation sits inside If branches (nothing but If and glue at the top). */
export function hasBranchedBody(fragment: OnnxFragment): boolean {
  const g = fragment.graph;
  return g.nodes.some((n) => n.opType === 'If') && !g.nodes.some((n) => n.opType === 'MatMul' || n.opType === 'Gemm');
}

export function applyThroughBranches(fragment: OnnxFragment, applyAll: ApplyAll, what: string): BranchApplied {
  const outer = fragment.graph;
  const initializers = new Map(outer.initializers);
  const trainable: string[] = [];
  const nodes: Node[] = outer.nodes.map((node) => {
    if (node.opType !== 'If') return node;
    const attrs: Node['attrs'] = { ...node.attrs };
    for (const key of ['then_branch', 'else_branch']) {
      const a = node.attrs[key];
      if (!a || a.type !== 'graph') continue;
      const branch: Graph = a.value;
      const view: OnnxFragment = {
        ...fragment,
        // The branch sees the outer graph's inputs and initializers (ONNX scoping), as a graph of its own.
        graph: { ...branch, inputs: outer.inputs, initializers: new Map([...outer.initializers, ...branch.initializers]) },
      };
      const res = applyAll(view);
      if (res.fragment.graph.inputs.map((v) => v.name).join('\u0000') !== outer.inputs.map((v) => v.name).join('\u0000')) {
        throw new AdapterError(`${what}: the adapter changes the inputs of the layers inside If node '${node.name}' (${key}), which a merged decoder cannot take; use LoRA, IA3 or a bottleneck adapter, or the folder's model.onnx`);
      }
      if (res.auxLosses.length || res.fragment.graph.outputs.length !== branch.outputs.length) {
        throw new AdapterError(`${what}: the adapter adds outputs (auxiliary losses) that cannot leave If node '${node.name}' (${key}); use LoRA, IA3 or a bottleneck adapter on a merged decoder`);
      }
      for (const [name, t] of res.fragment.graph.initializers) {
        if (outer.initializers.has(name) || branch.initializers.has(name)) continue;
        if (!initializers.has(name)) initializers.set(name, t);
      }
      for (const t of res.trainable) if (!trainable.includes(t)) trainable.push(t);
      attrs[key] = { type: 'graph', value: { ...branch, nodes: topoSorted(res.fragment.graph.nodes), valueInfo: res.fragment.graph.valueInfo } };
    }
    return { ...node, attrs };
  });
  return { fragment: { ...fragment, graph: { ...outer, nodes, initializers } }, trainable, auxLosses: [] };
}

/** The branch's nodes in an order onnxruntime accepts (adapter nodes are appended after the layers they feed). */
function topoSorted(nodes: Node[]): Node[] {
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => n.outputs.forEach((o) => o && producer.set(o, i)));
  const state = new Uint8Array(nodes.length);
  const out: Node[] = [];
  const visit = (i: number) => {
    if (state[i] === 2) return;
    if (state[i] === 1) throw new AdapterError(`adapted branch has a cycle through node '${nodes[i].name}'`);
    state[i] = 1;
    for (const inp of nodes[i].inputs) {
      const p = inp ? producer.get(inp) : undefined;
      if (p !== undefined) visit(p);
    }
    state[i] = 2;
    out.push(nodes[i]);
  };
  nodes.forEach((_, i) => visit(i));
  return out;
}
