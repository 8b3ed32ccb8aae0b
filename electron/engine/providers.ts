// The execution-provider policy, one place for the app's worker and the CLI: CUDA / DML / CoreML where a probe
// session can be created on them (onnx/ort.ts detectExecutionProviders), the CPU otherwise and always behind them;
// COMPOSER_EP forces one (`cpu`, `cuda`, `dml`, `coreml`), and any other value is an error that names it.

import { detectExecutionProviders, type ExecutionProvider } from '../onnx/ort.js';

export const EXECUTION_PROVIDERS: readonly ExecutionProvider[] = ['cpu', 'cuda', 'dml', 'coreml'];

export class ExecutionProviderError extends Error {
  override name = 'ExecutionProviderError';
}

/** The provider COMPOSER_EP names (any case, spaces trimmed); undefined when it is unset or empty. */
export function providerOverride(value: string | undefined = process.env.COMPOSER_EP): ExecutionProvider | undefined {
  const v = value?.trim().toLowerCase();
  if (!v) return undefined;
  const ep = EXECUTION_PROVIDERS.find((p) => p === v);
  if (!ep) {
    throw new ExecutionProviderError(`COMPOSER_EP='${value}' is not an execution provider (expected one of ${EXECUTION_PROVIDERS.join(', ')}, or unset for the best one that works here)`);
  }
  return ep;
}

/**
 * What an Executor is given (its `executionProviders` option): the forced provider with the CPU behind it for the
 * ops it lacks, or 'auto' (the executor probes once, on its first session).
 */
export function executionProviderPolicy(value: string | undefined = process.env.COMPOSER_EP): ExecutionProvider[] | 'auto' {
  const forced = providerOverride(value);
  if (!forced) return 'auto';
  return forced === 'cpu' ? ['cpu'] : [forced, 'cpu'];
}

/** The providers sessions will be created with, best first, ending with 'cpu'. */
export async function chooseExecutionProviders(value: string | undefined = process.env.COMPOSER_EP): Promise<ExecutionProvider[]> {
  const policy = executionProviderPolicy(value);
  return policy === 'auto' ? detectExecutionProviders() : policy;
}
