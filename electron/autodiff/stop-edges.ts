// Inputs that never receive a gradient: shapes, indices, masks, exponents, bounds (after ORT's STOP_GRADIENT_EDGES,
// extended for opset 17–21 exports). An op absent from this table differentiates all of its float inputs.

const ALL = -1;

/** op → indices of inputs that are never differentiated (ALL = every input). */
const STOP_INPUTS: Record<string, number[]> = {
  // Value-less or integer-valued ops: nothing flows through them.
  Shape: [ALL],
  Size: [ALL],
  ConstantOfShape: [ALL],
  Range: [ALL],
  NonZero: [ALL],
  OneHot: [ALL],
  ArgMax: [ALL],
  ArgMin: [ALL],
  Equal: [ALL],
  Less: [ALL],
  LessOrEqual: [ALL],
  Greater: [ALL],
  GreaterOrEqual: [ALL],
  Not: [ALL],
  And: [ALL],
  Or: [ALL],
  Xor: [ALL],
  IsNaN: [ALL],
  IsInf: [ALL],
  // Piecewise constant: zero almost everywhere.
  Sign: [ALL],
  Floor: [ALL],
  Ceil: [ALL],
  Round: [ALL],
  RandomUniformLike: [ALL],
  RandomNormalLike: [ALL],
  Bernoulli: [ALL],
  // Index / shape / parameter inputs.
  Pow: [1],
  Gather: [1],
  GatherElements: [1],
  GatherND: [1],
  Reshape: [1],
  Expand: [1],
  Dropout: [1, 2],
  Slice: [1, 2, 3, 4],
  SoftmaxCrossEntropyLoss: [1, 2],
  Scatter: [1],
  ScatterElements: [1],
  ScatterND: [1],
  Where: [0],
  Tile: [1],
  TopK: [1],
  Squeeze: [1],
  Unsqueeze: [1],
  ReduceSum: [1],
  ReduceMean: [1],
  ReduceMax: [1],
  ReduceMin: [1],
  ReduceL2: [1],
  ReduceL1: [1],
  ReduceLogSum: [1],
  ReduceSumSquare: [1],
  ReduceLogSumExp: [1],
  ReduceProd: [1],
  Split: [1],
  Clip: [1, 2],
  BatchNormalization: [3, 4],
  Trilu: [1],
  CumSum: [1],
  Pad: [1, 2, 3],
  Resize: [1, 2, 3],
  Mod: [ALL],
  EyeLike: [ALL],
  CastLike: [1],
};

export function isStopInput(opType: string, inputIndex: number): boolean {
  const stops = STOP_INPUTS[opType];
  if (!stops) return false;
  return stops.includes(ALL) || stops.includes(inputIndex);
}
