import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { nodeTypeInfoSchema } from '../host/contract.js';
import { Catalog, CatalogError, defaultCatalog, findNodeType, getNodeType, listNodeTypes, paramInfoOf } from './catalog.js';
import type { NodeTypeDef } from './types.js';

function fakeType(type: string, aliases: string[] = []): NodeTypeDef {
  return {
    info: { type, typeVersion: 1, family: 'io', title: type, aliases, inputs: [], outputs: [], doc: { summary: 's', usedBy: [] } },
    params: z.strictObject({}),
    paramDocs: {},
    outputShapes: () => ({}),
    host: type,
  };
}

describe('catalogue lookups', () => {
  it('finds types by id and alias', () => {
    expect(getNodeType('prompt.chat').info.type).toBe('prompt.chat');
    expect(getNodeType('chat').info.type).toBe('prompt.chat');
    expect(findNodeType('onnx')?.info.type).toBe('model.onnx_import');
    expect(findNodeType('no.such')).toBeUndefined();
  });

  it('an unknown type error lists close matches', () => {
    expect(() => getNodeType('prompt.chta')).toThrow(/unknown node type 'prompt.chta'; did you mean 'prompt.chat'/);
    expect(() => getNodeType('io.imag')).toThrow(/'io.image'/);
  });

  it('rejects duplicate ids and clashing aliases at load', () => {
    expect(() => new Catalog([fakeType('a.b'), fakeType('a.b')])).toThrow(CatalogError);
    expect(() => new Catalog([fakeType('a.b', ['x']), fakeType('a.c', ['x'])])).toThrow(/alias 'x' of 'a.c' is already used by 'a.b'/);
    expect(() => new Catalog([fakeType('Bad Id')])).toThrow(/namespaced/);
  });
});

describe('listNodeTypes', () => {
  it('is JSON-safe and matches the contract schema', () => {
    const list = listNodeTypes();
    expect(list.length).toBe(defaultCatalog.all().length);
    const roundTrip = JSON.parse(JSON.stringify(list)) as unknown;
    expect(roundTrip).toEqual(list);
    for (const info of list) nodeTypeInfoSchema.parse(info);
  });

  it('documents every param and every node type', () => {
    for (const def of defaultCatalog.all()) {
      expect(def.info.doc.summary.length, def.info.type).toBeGreaterThan(10);
      for (const p of defaultCatalog.list().find((i) => i.type === def.info.type)?.params ?? []) {
        expect(p.doc, `${def.info.type}.${p.name}`).not.toBe('');
      }
      // Node types either build ONNX or run on the host, never neither.
      expect(Boolean(def.build) || Boolean(def.host), def.info.type).toBe(true);
    }
  });

  it('derives param kinds, defaults, options and bounds from zod', () => {
    expect(paramInfoOf('n', z.number().int().min(1).max(64).default(5), 'd')).toEqual({
      name: 'n', doc: 'd', kind: 'int', default: 5, min: 1, max: 64,
    });
    expect(paramInfoOf('lr', z.number().positive().default(0.1), 'd')).toMatchObject({ kind: 'float', default: 0.1, min: 0 });
    expect(paramInfoOf('s', z.enum(['a', 'b']).default('b'), 'd')).toMatchObject({ kind: 'enum', options: ['a', 'b'], default: 'b' });
    expect(paramInfoOf('w', z.union([z.number().int().positive(), z.literal('auto')]).default('auto'), 'd')).toMatchObject({
      kind: 'int', options: ['auto'], default: 'auto',
    });
    expect(paramInfoOf('f', z.boolean().default(true), 'd')).toMatchObject({ kind: 'bool', default: true });
    expect(paramInfoOf('t', z.string().optional(), 'd')).toMatchObject({ kind: 'string', default: null });
    expect(paramInfoOf('x', z.array(z.string()).default([]), 'd')).toMatchObject({ kind: 'json', default: [] });
    const frames = listNodeTypes().find((t) => t.type === 'io.video')?.params.find((p) => p.name === 'frames');
    expect(frames).toMatchObject({ kind: 'int', default: 5, min: 1, max: 64 });
  });
});
