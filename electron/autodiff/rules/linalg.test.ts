// Finite-difference checks of the linalg VJP rules (cases in rule-cases.test-support.ts).

import { describe, expect, it } from 'vitest';
import { LINALG_CASES } from './rule-cases.test-support.js';
import { checkRuleCase } from './rule-check.test-support.js';

describe('linalg VJP rules match central finite differences', () => {
  for (const c of LINALG_CASES) {
    it(c.name, async () => {
      const result = await checkRuleCase(c);
      expect(result.failures).toEqual([]);
      expect(result.compared).toBeGreaterThan(0);
    });
  }
});
