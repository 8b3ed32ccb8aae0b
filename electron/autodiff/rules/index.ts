// The one table of VJP rules, merged from the per-family files.

import type { VjpRule } from '../context.js';
import { elementwiseRules } from './elementwise.js';
import { linalgRules } from './linalg.js';
import { miscRules } from './misc.js';
import { reduceRules } from './reduce.js';
import { shapeRules } from './shape.js';
import { spatialRules } from './spatial.js';

function merge(...tables: Array<Record<string, VjpRule>>): Record<string, VjpRule> {
  const all: Record<string, VjpRule> = {};
  for (const t of tables)
    for (const [op, rule] of Object.entries(t)) {
      if (all[op]) throw new Error(`VJP rule for ${op} is defined twice`);
      all[op] = rule;
    }
  return all;
}

export const VJP_RULES: Record<string, VjpRule> = merge(
  elementwiseRules,
  linalgRules,
  reduceRules,
  shapeRules,
  spatialRules,
  miscRules,
);
