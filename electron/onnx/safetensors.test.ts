// safetensors: round trips of every dtype, the reference layout, and strict rejection of damaged headers.

import { mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { type DType, type Tensor, allocData, tensorFromNumbers } from './ir.js';
import { toRawBytes } from './proto.js';
import { MAX_HEADER_BYTES, parseSafetensors, readSafetensors, serializeSafetensors, writeSafetensors } from './safetensors.js';

const FIXTURES = fileURLToPath(new URL('../../../shared/fixtures', import.meta.url));

const tmp = mkdtempSync(join(tmpdir(), 'st-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A file built by hand: header JSON + data bytes, with an optional forged header length. */
function forge(header: unknown, data: Uint8Array, headerLen?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLen ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function header(view: Uint8Array): Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> {
  const n = Number(new DataView(view.buffer, view.byteOffset).getBigUint64(0, true));
  return JSON.parse(new TextDecoder().decode(view.subarray(8, 8 + n)));
}

describe('round trip', () => {
  const cases: Array<[DType, number[]]> = [
    ['float64', [1.5, -2.25, 1e300]],
    ['float32', [0.1, -3, 7.5, 1e-30]],
    ['float16', [1, -2.5, 65504, 0.0001]],
    ['bfloat16', [1, -2.5, 3.0e38, 0.1]],
    ['int64', [0, -1, 2 ** 40, -(2 ** 50)]],
    ['int32', [2 ** 31 - 1, -(2 ** 31), 5]],
    ['int16', [-32768, 32767, 3]],
    ['int8', [-128, 127, 0]],
    ['uint8', [0, 255, 17]],
    ['uint16', [0, 65535]],
    ['uint32', [0, 2 ** 32 - 1]],
    ['uint64', [0, 2 ** 52]],
    ['bool', [1, 0, 1, 1]],
  ];
  const tensors = new Map<string, Tensor>();
  for (const [dtype, values] of cases) tensors.set(`t.${dtype}`, tensorFromNumbers(dtype, [values.length], values));
  tensors.set('matrix', tensorFromNumbers('float32', [2, 3], [1, 2, 3, 4, 5, 6]));
  tensors.set('scalar', tensorFromNumbers('int64', [], [42]));
  tensors.set('empty', { dtype: 'float32', dims: [0, 4], data: allocData('float32', 0) });

  it('keeps dtype, shape, bytes and metadata of every dtype through a file', () => {
    const path = join(tmp, 'all.safetensors');
    writeSafetensors(path, tensors, { format: 'pt', note: 'ünïcode ✓' });
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
    const back = readSafetensors(path);
    expect(back.metadata).toEqual({ format: 'pt', note: 'ünïcode ✓' });
    expect([...back.tensors.keys()].sort()).toEqual([...tensors.keys()].sort());
    for (const [name, t] of tensors) {
      const b = back.tensors.get(name)!;
      expect(b.dtype, name).toBe(t.dtype);
      expect(b.dims, name).toEqual(t.dims);
      expect(Buffer.from(toRawBytes(b.data)).equals(Buffer.from(toRawBytes(t.data))), name).toBe(true);
    }
  });

  it('writes the reference layout: space-padded 8-byte header, aligned and contiguous data', () => {
    const bytes = serializeSafetensors(tensors);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(text).toMatch(/^\{.*\} *$/);
    const h = header(bytes);
    const spans = Object.values(h).sort((a, b) => a.data_offsets[0] - b.data_offsets[0]);
    let at = 0;
    for (const s of spans) {
      expect(s.data_offsets[0]).toBe(at);
      const bpe = { F64: 8, I64: 8, U64: 8, F32: 4, I32: 4, U32: 4 }[s.dtype as 'F64'] ?? 1;
      expect(s.data_offsets[0] % bpe).toBe(0);
      at = s.data_offsets[1];
    }
    expect(8 + n + at).toBe(bytes.length);
  });

  it('reads the standard files written by the Python reference and writes them back losslessly', () => {
    const path = join(FIXTURES, 'mlp_projector.ref.safetensors');
    const ref = readSafetensors(path);
    expect(ref.metadata.opset).toBe('14');
    expect(ref.tensors.get('input.image_features')?.dims).toEqual([2, 17, 32]);
    const again = parseSafetensors(serializeSafetensors(ref.tensors, ref.metadata), 'again');
    expect(again.metadata).toEqual(ref.metadata);
    for (const [k, t] of ref.tensors) {
      expect(Buffer.from(toRawBytes(again.tensors.get(k)!.data)).equals(Buffer.from(toRawBytes(t.data)))).toBe(true);
    }
    expect(readFileSync(path).length).toBeGreaterThan(0);
  });

  it('refuses to write tensors whose data does not fit their shape', () => {
    const bad = { dtype: 'float32' as const, dims: [3], data: new Float32Array(2) };
    expect(() => serializeSafetensors({ w: bad })).toThrow(/tensor 'w'.*needs 3 values, has 2/);
    expect(() => serializeSafetensors({ s: { dtype: 'string', dims: [1], data: ['x'] } })).toThrow(/tensor 's'.*string/);
  });
});

describe('damaged files', () => {
  const good = serializeSafetensors({ a: tensorFromNumbers('float32', [2, 2], [1, 2, 3, 4]) });

  it('truncated before the header length', () => {
    expect(() => parseSafetensors(good.subarray(0, 5), 'cut.safetensors')).toThrow(/'cut\.safetensors'.*5 bytes long/);
  });

  it('truncated inside the header', () => {
    expect(() => parseSafetensors(good.subarray(0, 20), 'cut.safetensors')).toThrow(/'cut\.safetensors'.*runs past the end of the file/);
  });

  it('truncated inside the data, naming the tensor and the file', () => {
    const path = join(tmp, 'cut.safetensors');
    writeFileSync(path, good.subarray(0, good.length - 4));
    expect(() => readSafetensors(path)).toThrow(/tensor 'a' in '.*cut\.safetensors'.*outside the 12-byte data section/);
  });

  it('header length above the limit', () => {
    const f = forge({}, new Uint8Array(0), BigInt(MAX_HEADER_BYTES) + 1n);
    expect(() => parseSafetensors(f, 'big.safetensors')).toThrow(/'big\.safetensors'.*exceeds the 104857600-byte limit/);
    const huge = forge({}, new Uint8Array(0), 0xffffffffffffffffn);
    expect(() => parseSafetensors(huge, 'huge.safetensors')).toThrow(/huge\.safetensors.*exceeds/);
  });

  it('overlapping offsets', () => {
    const f = forge(
      {
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
      },
      new Uint8Array(12),
    );
    expect(() => parseSafetensors(f, 'ov.safetensors')).toThrow(/'ov\.safetensors'.*'a' \[0, 8\] and 'b' \[4, 12\] overlap/);
  });

  it('a size that does not match shape × dtype', () => {
    const f = forge({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8));
    expect(() => parseSafetensors(f, 'sz.safetensors')).toThrow(/tensor 'w' in 'sz\.safetensors': holds 8 bytes but shape \[3\] of F32 needs 12/);
  });

  it('an unknown dtype names the tensor and the file', () => {
    const f = forge({ w: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, new Uint8Array(2));
    expect(() => parseSafetensors(f, 'dt.safetensors')).toThrow(/tensor 'w' in 'dt\.safetensors': unsupported dtype 'F8_E4M3'/);
  });

  it('invalid JSON, a non-object header, bad metadata and malformed entries', () => {
    expect(() => parseSafetensors(forge('{"a": ', new Uint8Array(0)), 'j.safetensors')).toThrow(/'j\.safetensors'.*not valid JSON/);
    expect(() => parseSafetensors(forge('[1,2]', new Uint8Array(0)), 'arr.safetensors')).toThrow(/arr\.safetensors.*JSON object/);
    expect(() => parseSafetensors(forge({ __metadata__: { n: 1 } }, new Uint8Array(0)), 'm.safetensors')).toThrow(/m\.safetensors.*__metadata__/);
    const neg = forge({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4));
    expect(() => parseSafetensors(neg, 'neg.safetensors')).toThrow(/tensor 'w' in 'neg\.safetensors': malformed header entry \(shape/);
    const rev = forge({ w: { dtype: 'U8', shape: [0], data_offsets: [4, 2] } }, new Uint8Array(4));
    expect(() => parseSafetensors(rev, 'rev.safetensors')).toThrow(/tensor 'w'.*reversed/);
  });

  it('a missing file names it', () => {
    expect(() => readSafetensors(join(tmp, 'absent.safetensors'))).toThrow(/cannot read safetensors file '.*absent\.safetensors'/);
  });
});
