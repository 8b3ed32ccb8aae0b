// What the engine can run and differentiate: control flow is refused outright (our autodiff and shape inference
// work on flat graphs), and, when asked, any op outside the supported set is refused by name.

import type { Graph, Model } from './ir.js';
import { OnnxError } from './ir.js';

/** ONNX-domain ops the shape inference, folding and autodiff layers understand. */
export const SUPPORTED_OPS: ReadonlySet<string> = new Set([
  'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Neg', 'Sqrt', 'Reciprocal', 'Exp', 'Log', 'Tanh', 'Sigmoid', 'Relu', 'LeakyRelu',
  'Erf', 'Gelu', 'Sin', 'Cos', 'Abs', 'Sign', 'Floor', 'Ceil', 'Round', 'Clip', 'Min', 'Max', 'Sum', 'Mean', 'Where',
  'Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf', 'MatMul',
  'Gemm', 'Conv', 'ConvTranspose', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'Softmax', 'LogSoftmax',
  'LayerNormalization', 'InstanceNormalization', 'GroupNormalization', 'BatchNormalization', 'ReduceMean', 'ReduceSum',
  'ReduceL2', 'ReduceMax', 'ReduceMin', 'ReduceSumSquare', 'ReduceLogSumExp', 'ReduceProd', 'ArgMax', 'ArgMin',
  'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Transpose', 'Expand', 'Tile', 'Concat', 'Split', 'Slice', 'Gather',
  'GatherElements', 'GatherND', 'ScatterND', 'ScatterElements', 'Cast', 'CastLike', 'Identity', 'Dropout', 'Resize',
  'Pad', 'Trilu', 'CumSum', 'Einsum', 'Shape', 'Size', 'ConstantOfShape', 'Constant', 'Range', 'NonZero', 'OneHot',
  'TopK', 'SoftmaxCrossEntropyLoss', 'RandomUniformLike', 'RandomNormalLike', 'Mod',
]);

export const CONTROL_FLOW_OPS: ReadonlySet<string> = new Set(['If', 'Loop', 'Scan']);

export interface SupportOptions {
  /** Also refuse ops outside SUPPORTED_OPS (and any non-ONNX domain such as com.microsoft). */
  requireKnownOps?: boolean;
}

function qualifiedOp(domain: string, opType: string): string {
  return domain === '' || domain === 'ai.onnx' ? opType : `${domain}.${opType}`;
}

/** Throws an OnnxError naming the first node the engine cannot handle. */
export function assertSupported(model: Model, fileName?: string, options: SupportOptions = {}): void {
  const where = fileName ? `'${fileName}': ` : '';
  for (const n of model.graph.nodes) {
    const isOnnx = n.domain === '' || n.domain === 'ai.onnx';
    if (isOnnx && CONTROL_FLOW_OPS.has(n.opType)) {
      throw new OnnxError(
        `${where}node '${n.name}' is a ${n.opType}: control flow is not supported (export without control flow, e.g. a decoder without the merged past/no-past If)`,
      );
    }
    if (options.requireKnownOps && !(isOnnx && SUPPORTED_OPS.has(n.opType))) {
      throw new OnnxError(`${where}node '${n.name}' uses op ${qualifiedOp(n.domain, n.opType)}, which is not supported`);
    }
  }
}

/** How many nodes use each op (non-ONNX domains prefixed, e.g. "com.microsoft.Attention"), subgraphs included. */
export function opCensus(model: Model): Record<string, number> {
  const census: Record<string, number> = {};
  const visit = (g: Graph) => {
    for (const n of g.nodes) {
      const key = qualifiedOp(n.domain, n.opType);
      census[key] = (census[key] ?? 0) + 1;
      for (const a of Object.values(n.attrs)) {
        if (a.type === 'graph') visit(a.value);
        else if (a.type === 'graphs') a.value.forEach(visit);
      }
    }
  };
  visit(model.graph);
  return census;
}
