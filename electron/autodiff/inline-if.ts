// Control flow before differentiation: an `If` whose condition is known when the graph is built (an initializer or a
// Constant node, such as the `use_cache_branch = false` the trainer feeds a merged Optimum decoder: training runs
// the whole sequence with an empty past) is replaced by the nodes of the branch it takes, so the gradient is that of
// the taken branch. An If whose condition depends on data stays, and buildGradientGraph refuses it by name.

import { type Graph, type Node, type Tensor, OnnxError, tensorToNumbers } from '../onnx/ir.js';

/** The boolean value of `name` if the graph fixes it (a one-element initializer or Constant output). */
function constantCondition(graph: Graph, name: string): boolean | undefined {
  const init = graph.initializers.get(name);
  const fromTensor = (t: Tensor) => {
    const v = tensorToNumbers(t);
    return v.length === 1 ? v[0] !== 0 : undefined;
  };
  if (init) return fromTensor(init);
  const producer = graph.nodes.find((n) => n.outputs.includes(name));
  if (producer?.opType === 'Constant') {
    const a = producer.attrs.value;
    if (a?.type === 'tensor') return fromTensor(a.value);
  }
  return undefined;
}

function renameIn(g: Graph, rename: (v: string) => string): Graph {
  return {
    ...g,
    nodes: g.nodes.map((n) => renameNode(n, rename)),
    outputs: g.outputs.map((v) => ({ ...v, name: rename(v.name) })),
  };
}

function renameNode(n: Node, rename: (v: string) => string): Node {
  const attrs: Node['attrs'] = {};
  for (const [k, a] of Object.entries(n.attrs)) {
    if (a.type === 'graph') attrs[k] = { type: 'graph', value: renameIn(a.value, rename) };
    else if (a.type === 'graphs') attrs[k] = { type: 'graphs', value: a.value.map((g) => renameIn(g, rename)) };
    else attrs[k] = a;
  }
  return { ...n, inputs: n.inputs.map((i) => (i ? rename(i) : '')), outputs: n.outputs.map((o) => (o ? rename(o) : '')), attrs };
}

/**
 * Inlines every If of `graph` whose condition is constant (repeatedly, so nested ones whose condition becomes known
 * go too). Returns the names of the If nodes inlined with the branch each took.
 */
export function inlineConstantIfs(graph: Graph): Array<{ node: string; branch: 'then_branch' | 'else_branch' }> {
  const done: Array<{ node: string; branch: 'then_branch' | 'else_branch' }> = [];
  for (let guard = 0; guard < 1000; guard++) {
    const k = graph.nodes.findIndex((n) => n.opType === 'If' && constantCondition(graph, n.inputs[0]) !== undefined);
    if (k < 0) return done;
    const node = graph.nodes[k];
    const which = constantCondition(graph, node.inputs[0]) ? 'then_branch' : 'else_branch';
    const attr = node.attrs[which];
    if (!attr || attr.type !== 'graph') throw new OnnxError(`If node '${node.name}' has no ${which}`);
    const branch = attr.value;
    if (branch.outputs.length !== node.outputs.length) {
      throw new OnnxError(`If node '${node.name}': ${which} has ${branch.outputs.length} outputs but the node has ${node.outputs.length}`);
    }
    // Values the branch defines get a prefix (unique in the outer graph); outer values keep their names.
    const local = new Set<string>([...branch.initializers.keys()]);
    const collect = (g: Graph) => {
      for (const n of g.nodes) {
        n.outputs.forEach((o) => o && local.add(o));
        for (const a of Object.values(n.attrs)) {
          if (a.type === 'graph') collect(a.value);
          if (a.type === 'graphs') a.value.forEach(collect);
        }
      }
    };
    collect(branch);
    const prefix = `${node.name || `if${k}`}/${which}/`;
    const rename = (v: string) => (local.has(v) ? prefix + v : v);
    for (const [name, t] of branch.initializers) graph.initializers.set(rename(name), t);
    for (const [name, v] of branch.valueInfo) if (local.has(name)) graph.valueInfo.set(rename(name), { ...v, name: rename(name) });
    const body = branch.nodes.map((n) => ({ ...renameNode(n, rename), name: `${prefix}${n.name}` }));
    const ties: Node[] = branch.outputs.map((o, i) => ({
      name: `${prefix}output_${i}`,
      opType: 'Identity',
      domain: '',
      inputs: [rename(o.name)],
      outputs: [node.outputs[i]],
      attrs: {},
    }));
    graph.nodes.splice(k, 1, ...body, ...ties);
    done.push({ node: node.name, branch: which });
  }
  throw new OnnxError('inlining If nodes did not terminate');
}
