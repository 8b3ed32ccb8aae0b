// Minimal argv parsing: positionals plus --flag / --key value / --key=value; validated by each command's zod schema.

import { z } from 'zod';

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface ParsedArgs {
  positionals: string[];
  flags: Record<string, string | boolean>;
}

export function parseArgs(argv: string[], booleanFlags: readonly string[]): ParsedArgs {
  const positionals: string[] = [];
  const flags: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const key = a.slice(2, eq < 0 ? undefined : eq);
    if (eq >= 0) flags[key] = a.slice(eq + 1);
    else if (booleanFlags.includes(key)) flags[key] = true;
    else {
      const v = argv[i + 1];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`option --${key} needs a value`);
      flags[key] = v;
      i++;
    }
  }
  return { positionals, flags };
}

/** Validates flags with a zod schema; errors name the option. */
export function validateFlags<S extends z.ZodTypeAny>(schema: S, flags: Record<string, string | boolean>): z.infer<S> {
  const r = schema.safeParse(flags);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue.path.length ? `--${issue.path.join('.')}` : 'options';
    throw new UsageError(`${where}: ${issue.message}`);
  }
  return r.data;
}

/** Takes every `--name VALUE` / `--name=VALUE` out of argv (a flag that may repeat). */
export function takeRepeated(argv: string[], name: string): { values: string[]; rest: string[] } {
  const values: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === `--${name}`) {
      const v = argv[i + 1];
      if (v === undefined || v.startsWith('--')) throw new UsageError(`option --${name} needs a value`);
      values.push(v);
      i++;
    } else if (a.startsWith(`--${name}=`)) values.push(a.slice(name.length + 3));
    else rest.push(a);
  }
  return { values, rest };
}
