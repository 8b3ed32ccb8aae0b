// One graph file of an ONNX folder, checked before it becomes a node: it parses (external data confined to the
// folder — onnx/proto.ts refuses `../` and absolute locations naming the tensor), every op is one onnxruntime's CPU
// kernels run, and quantised weights are named so training can say they stay frozen.

import { type Graph, type Model, type Node, isFloat } from '../../onnx/ir.js';
import { loadModel } from '../../onnx/proto.js';
import { CONTRIB_DOMAIN, CPU_CONTRIB_OPS } from '../../nodes/imported.js';
import { OnnxFolderError } from './layout.js';

/** Ops that read quantised weights (their weights are integer tensors: nothing to differentiate). */
export const QUANTISED_OPS = new Set(['DequantizeLinear', 'QLinearMatMul', 'QLinearConv', 'MatMulInteger', 'ConvInteger', 'DynamicQuantizeLinear', 'MatMulNBits', 'QLinearAdd', 'QLinearMul']);

export interface GraphCheck {
  model: Model;
  parameters: number;
  dtypes: string[];
  /** Quantised-weight nodes: [node name, op]. */
  quantised: Array<[string, string]>;
  notes: string[];
}

function walk(g: Graph, visit: (g: Graph) => void): void {
  visit(g);
  for (const n of g.nodes) {
    for (const a of Object.values(n.attrs)) {
      if (a.type === 'graph') walk(a.value, visit);
      if (a.type === 'graphs') a.value.forEach((sub) => walk(sub, visit));
    }
  }
}

/**
 * An If's branches must produce as many outputs as the node has, of one dtype and rank each: onnxruntime would
 * otherwise fail mid-run (or the autodiff inline the wrong thing). The error names the file, the node and the port.
 */
function checkIfBranches(node: Node, rel: string): void {
  const branch = (name: string): Graph => {
    const a = node.attrs[name];
    if (!a || a.type !== 'graph') throw new OnnxFolderError(`${rel}: If node '${node.name}' has no ${name}`);
    return a.value;
  };
  const then = branch('then_branch');
  const other = branch('else_branch');
  const outs = node.outputs;
  for (const [label, g] of [['then_branch', then], ['else_branch', other]] as const) {
    if (g.outputs.length !== outs.length) {
      throw new OnnxFolderError(
        `${rel}: If node '${node.name}': ${label} has ${g.outputs.length} outputs but the node has ${outs.length} (${outs.join(', ')}); the branches disagree${g.outputs.length < outs.length ? `, port '${outs[g.outputs.length]}' has no value in ${label}` : ''}`,
      );
    }
  }
  outs.forEach((port, i) => {
    const a = then.outputs[i];
    const b = other.outputs[i];
    if (a.dtype !== b.dtype) {
      throw new OnnxFolderError(`${rel}: If node '${node.name}', port '${port}': then_branch gives ${a.dtype} ('${a.name}'), else_branch ${b.dtype} ('${b.name}')`);
    }
    if (a.shape && b.shape && a.shape.length !== b.shape.length) {
      throw new OnnxFolderError(`${rel}: If node '${node.name}', port '${port}': then_branch gives rank ${a.shape.length}, else_branch rank ${b.shape.length}`);
    }
  });
}

export function checkGraphFile(absPath: string, rel: string): GraphCheck {
  let model: Model;
  try {
    model = loadModel(absPath);
  } catch (e) {
    throw new OnnxFolderError(`${rel}: ${(e as Error).message}`);
  }
  let parameters = 0;
  const dtypes = new Set<string>();
  const quantised: Array<[string, string]> = [];
  walk(model.graph, (g) => {
    for (const t of g.initializers.values()) {
      const n = t.dims.reduce((a, b) => a * b, 1);
      if (n > 1 && (isFloat(t.dtype) || t.dtype === 'int8' || t.dtype === 'uint8')) {
        parameters += n;
        dtypes.add(t.dtype);
      }
    }
    for (const node of g.nodes) {
      if (node.domain && node.domain !== 'ai.onnx' && !(node.domain === CONTRIB_DOMAIN && CPU_CONTRIB_OPS.has(node.opType))) {
        throw new OnnxFolderError(
          `${rel}: node '${node.name}' is ${node.domain}::${node.opType}; Composer's imported nodes run standard ONNX ops and onnxruntime's CPU contrib ops ${[...CPU_CONTRIB_OPS].join(', ')} (pick another precision, or export without contrib fusions)`,
        );
      }
      if (QUANTISED_OPS.has(node.opType)) quantised.push([node.name, node.opType]);
      if (node.opType === 'If') checkIfBranches(node, rel);
    }
  });
  const notes: string[] = [];
  if (quantised.length) {
    notes.push(`${rel}: ${quantised.length} quantised weight(s) (${[...new Set(quantised.map(([, op]) => op))].join(', ')}, e.g. node '${quantised[0][0]}'): they stay frozen; adapters train beside them`);
  }
  return { model, parameters, dtypes: [...dtypes], quantised, notes };
}
