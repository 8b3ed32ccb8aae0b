// The Hugging Face folder reader against real folders in a temp dir: real safetensors bytes, real symlinks, real
// hub-cache layouts. Every refusal is checked for naming the file (relative) and the tensor or field.

import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Tensor, tensorFromNumbers } from '../../onnx/ir.js';
import { toRawBytes } from '../../onnx/proto.js';
import { parseSafetensors, readSafetensorsHeader, serializeSafetensors } from '../../onnx/safetensors.js';
import { resolveImageSize } from './configs.js';
import { ModelFolderError, isHfFolder, openHfFolder, openHfWeights } from './folder.js';

const root = mkdtempSync(join(tmpdir(), 'hf-folder-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let counter = 0;
function newDir(name = 'model'): string {
  const dir = join(root, `${name}-${++counter}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

const CONFIG = { model_type: 'llama', architectures: ['LlamaForCausalLM'], hidden_size: 4 };

function writeJson(path: string, value: unknown): void {
  writeFileSync(path, JSON.stringify(value));
}

/** A folder with config.json and the given files (objects become JSON, tensor maps become safetensors). */
function folder(files: Record<string, unknown>, withConfig = true): string {
  const dir = newDir();
  if (withConfig) writeJson(join(dir, 'config.json'), CONFIG);
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    if (content instanceof Uint8Array || typeof content === 'string') writeFileSync(join(dir, name), content);
    else writeJson(join(dir, name), content);
  }
  return dir;
}

/** A safetensors file built by hand, so its header can lie. */
function forge(header: unknown, data: Uint8Array, headerLen?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLen ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** The error openHfFolder throws, checked to be a ModelFolderError without a stack or the temp path in its message. */
function failure(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ModelFolderError);
    const message = (e as Error).message;
    expect(message).not.toMatch(/\n\s+at /);
    return message;
  }
  throw new Error('expected an error');
}

const f32 = (dims: number[], values: number[]) => tensorFromNumbers('float32', dims, values);
function bits16(dtype: 'float16' | 'bfloat16', values: number[]): Tensor {
  return { dtype, dims: [values.length], data: Uint16Array.from(values) };
}

describe('one model.safetensors', () => {
  const tensors: Record<string, Tensor> = {
    'model.embed.weight': f32([2, 3], [1, 2, 3, 4, 5, 6]),
    'model.norm.weight': tensorFromNumbers('float64', [2], [0.1, 1e300]),
    // f16: 1, -2, smallest subnormal, largest subnormal, +inf, -inf, NaN, -0, 65504
    'h.f16': bits16('float16', [0x3c00, 0xc000, 0x0001, 0x03ff, 0x7c00, 0xfc00, 0x7e00, 0x8000, 0x7bff]),
    // bf16: 1, -2.5, +inf, NaN, smallest subnormal, -0
    'h.bf16': bits16('bfloat16', [0x3f80, 0xc020, 0x7f80, 0x7fc0, 0x0001, 0x8000]),
    'position_ids': tensorFromNumbers('int64', [1, 3], [0, 1, 2]),
    'empty': f32([0, 4], []),
  };
  const dir = folder({ 'model.safetensors': serializeSafetensors(tensors), 'tokenizer.json': '{}' });

  it('lists tensors with absolute offsets that point at their bytes', () => {
    const m = openHfFolder(dir);
    expect(m.dir).toBe(dir);
    expect(m.config.model_type).toBe('llama');
    expect(m.weights.files).toEqual(['model.safetensors']);
    const file = readFileSync(join(dir, 'model.safetensors'));
    for (const [name, t] of Object.entries(tensors)) {
      const e = m.weights.tensors.get(name)!;
      expect(e, name).toMatchObject({ name, dtype: t.dtype, shape: t.dims, file: 'model.safetensors' });
      expect(Buffer.from(file.subarray(e.begin, e.end)).equals(Buffer.from(toRawBytes(t.data))), name).toBe(true);
    }
    expect(m.weights.totalBytes).toBe(24 + 16 + 18 + 12 + 24);
    expect(m.weights.dtypes).toEqual(['float32', 'bfloat16', 'float16', 'float64']);
    expect(m.weights.parameterCount).toBe(6 + 2 + 9 + 6);
    expect(m.weights.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(m.tokenizerJson).toBe(join(dir, 'tokenizer.json'));
    expect(m.files.map((f) => f.name)).toEqual(['config.json', 'model.safetensors', 'tokenizer.json']);
    expect(m.files.find((f) => f.name === 'model.safetensors')?.bytes).toBe(file.length);
  });

  it('reads each tensor in its stored dtype', () => {
    const w = openHfFolder(dir).weights;
    expect(w.has('h.f16')).toBe(true);
    expect(w.has('nope')).toBe(false);
    for (const [name, t] of Object.entries(tensors)) {
      const back = w.read(name);
      expect(back.dtype).toBe(t.dtype);
      expect(back.dims).toEqual(t.dims);
      expect(Buffer.from(toRawBytes(back.data)).equals(Buffer.from(toRawBytes(t.data))), name).toBe(true);
    }
    expect(failure(() => w.read('nope'))).toBe("no tensor 'nope' in 'model.safetensors'");
  });

  it('converts F16 (subnormals, inf, NaN, -0), BF16 and F64 to float32 exactly', () => {
    const w = openHfFolder(dir).weights;
    const f16 = Array.from(w.readFloat32('h.f16').data as Float32Array);
    expect(f16.slice(0, 6)).toEqual([1, -2, 2 ** -24, 1023 * 2 ** -24, Infinity, -Infinity]);
    expect(f16[6]).toBeNaN();
    expect(Object.is(f16[7], -0)).toBe(true);
    expect(f16[8]).toBe(65504);
    const bf16 = w.readFloat32('h.bf16');
    expect(bf16.dtype).toBe('float32');
    const b = Array.from(bf16.data as Float32Array);
    expect(b.slice(0, 3)).toEqual([1, -2.5, Infinity]);
    expect(b[3]).toBeNaN();
    expect(b[4]).toBe(2 ** -133);
    expect(Object.is(b[5], -0)).toBe(true);
    expect(Array.from(w.readFloat32('model.norm.weight').data as Float32Array)).toEqual([Math.fround(0.1), Infinity]);
    expect(Array.from(w.readFloat32('model.embed.weight').data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(w.readFloat32('empty').dims).toEqual([0, 4]);
    expect(failure(() => w.readFloat32('position_ids'))).toMatch(/tensor 'position_ids' in 'model\.safetensors' is int64, not a float tensor/);
  });

  it('a fingerprint that is stable, and changes when the shard is replaced', () => {
    const d = folder({ 'model.safetensors': serializeSafetensors({ a: f32([2], [1, 2]) }) });
    const first = openHfFolder(d).weights.fingerprint;
    expect(openHfFolder(d).weights.fingerprint).toBe(first);
    writeFileSync(join(d, 'model.safetensors'), serializeSafetensors({ a: f32([3], [1, 2, 3]) }));
    expect(openHfFolder(d).weights.fingerprint).not.toBe(first);
  });

  it('a shard that changes size after opening is refused on read', () => {
    const d = folder({ 'model.safetensors': serializeSafetensors({ a: f32([2], [1, 2]) }) });
    const w = openHfFolder(d).weights;
    writeFileSync(join(d, 'model.safetensors'), serializeSafetensors({ a: f32([3], [1, 2, 3]) }));
    expect(failure(() => w.read('a'))).toMatch(/^model\.safetensors: changed since it was opened/);
  });

  it('never reads a whole file: a tensor at the end of a 6 GB sparse file comes from one positioned read', () => {
    const d = folder({});
    const big = 6 * 1024 ** 3;
    const tail = new Float32Array([7, 8, 9]);
    const header = { filler: { dtype: 'U8', shape: [big], data_offsets: [0, big] }, tail: { dtype: 'F32', shape: [3], data_offsets: [big, big + 12] } };
    const head = forge(header, new Uint8Array(0));
    const path = join(d, 'model.safetensors');
    const fd = openSync(path, 'w');
    writeSync(fd, head);
    ftruncateSync(fd, head.length + big + 12);
    writeSync(fd, new Uint8Array(tail.buffer), 0, 12, head.length + big);
    closeSync(fd);
    const w = openHfFolder(d).weights;
    expect(w.totalBytes).toBe(big + 12);
    expect(Array.from(w.read('tail').data as Float32Array)).toEqual([7, 8, 9]);
    expect(w.tensors.get('tail')!.begin).toBe(head.length + big);
  });
});

describe('sharded weights', () => {
  const shard1 = { 'a.weight': f32([2], [1, 2]), 'b.weight': f32([3], [3, 4, 5]) };
  const shard2 = { 'c.weight': bits16('bfloat16', [0x3f80, 0x4000]) };
  const names = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  const weightMap = { 'c.weight': names[1], 'a.weight': names[0], 'b.weight': names[0] };
  function sharded(map: Record<string, string> = weightMap, totalSize: number | undefined = 24, extra: Record<string, unknown> = {}): string {
    return folder({
      [names[0]]: serializeSafetensors(shard1),
      [names[1]]: serializeSafetensors(shard2),
      'model.safetensors.index.json': { metadata: totalSize === undefined ? {} : { total_size: totalSize }, weight_map: map },
      ...extra,
    });
  }

  it('reads the shards the index lists, in order', () => {
    const w = openHfFolder(sharded()).weights;
    expect(w.files).toEqual(names);
    expect([...w.tensors.keys()].sort()).toEqual(['a.weight', 'b.weight', 'c.weight']);
    expect(w.tensors.get('c.weight')!.file).toBe(names[1]);
    expect(Array.from(w.readFloat32('c.weight').data as Float32Array)).toEqual([1, 2]);
    expect(Array.from(w.read('b.weight').data as Float32Array)).toEqual([3, 4, 5]);
    expect(w.totalBytes).toBe(24);
    expect(w.dtypes).toEqual(['float32', 'bfloat16']);
    expect(w.warnings).toEqual([]);
  });

  it('checks total_size: less than the shards hold is an error, more is a warning', () => {
    expect(failure(() => openHfFolder(sharded(weightMap, 20)))).toBe(
      'model.safetensors.index.json: metadata.total_size is 20 bytes but the shards hold 24 bytes of tensors',
    );
    expect(openHfFolder(sharded(weightMap, 32)).weights.warnings).toEqual([
      'model.safetensors.index.json: metadata.total_size is 32 bytes but the shards hold 24 bytes of tensors',
    ]);
    expect(openHfFolder(sharded(weightMap, undefined)).weights.totalBytes).toBe(24);
  });

  it('a tensor mapped to a shard that lacks it', () => {
    const map = { ...weightMap, 'd.weight': names[1] };
    expect(failure(() => openHfFolder(sharded(map)))).toBe(
      `model.safetensors.index.json: maps tensor 'd.weight' to '${names[1]}', which does not contain it`,
    );
    const moved = { ...weightMap, 'a.weight': names[1] };
    expect(failure(() => openHfFolder(sharded(moved)))).toBe(
      `model.safetensors.index.json: maps tensor 'a.weight' to '${names[1]}', but it is stored in '${names[0]}'`,
    );
  });

  it('a tensor stored in two shards', () => {
    const dir = sharded();
    writeFileSync(join(dir, names[1]), serializeSafetensors({ ...shard2, 'b.weight': f32([3], [0, 0, 0]) }));
    expect(failure(() => openHfFolder(dir))).toBe(`tensor 'b.weight' is stored in both '${names[0]}' and '${names[1]}'`);
  });

  it('a shard listed but missing', () => {
    const dir = sharded();
    rmSync(join(dir, names[1]));
    expect(failure(() => openHfFolder(dir))).toBe(
      `model.safetensors.index.json: lists shard '${names[1]}' (holding 'c.weight'), but the folder has no such file`,
    );
  });

  it('an index that is not JSON, or has no weight_map', () => {
    expect(failure(() => openHfFolder(folder({ 'model.safetensors.index.json': '{"weight_map": ' })))).toMatch(
      /^model\.safetensors\.index\.json: is not valid JSON/,
    );
    expect(failure(() => openHfFolder(folder({ 'model.safetensors.index.json': { weight_map: { a: 3 } } })))).toBe(
      'model.safetensors.index.json: weight_map.a must be a string, got 3',
    );
  });

  it('index entries that leave the folder are refused by name', () => {
    const outside = join(root, 'outside.safetensors');
    writeFileSync(outside, serializeSafetensors({ x: f32([1], [1]) }));
    expect(failure(() => openHfFolder(sharded({ x: '../outside.safetensors' })))).toBe(
      "model.safetensors.index.json: shard for tensor 'x': '../outside.safetensors' points outside the model's folder",
    );
    expect(failure(() => openHfFolder(sharded({ x: outside })))).toBe(
      `model.safetensors.index.json: shard for tensor 'x': '${outside}' is an absolute path; files must stay inside the model's folder`,
    );
    const dir = sharded({ ...weightMap, x: 'linked.safetensors' });
    symlinkSync(outside, join(dir, 'linked.safetensors'));
    expect(failure(() => openHfFolder(dir))).toMatch(/^linked\.safetensors: resolves to '.*outside\.safetensors', outside the model's folder/);
  });

  it('openHfWeights reads a subfolder set; shard names are relative to the index', () => {
    const dir = folder({
      'text/shard-1.safetensors': serializeSafetensors(shard1),
      'text/shard-2.safetensors': serializeSafetensors(shard2),
      'text/weights.index.json': { weight_map: { 'a.weight': 'shard-1.safetensors', 'b.weight': 'shard-1.safetensors', 'c.weight': 'shard-2.safetensors' } },
      'vision/model.safetensors': serializeSafetensors({ v: f32([1], [9]) }),
    });
    const text = openHfWeights(dir, 'text/weights.index.json');
    expect(text.files).toEqual(['text/shard-1.safetensors', 'text/shard-2.safetensors']);
    expect(Array.from(text.read('a.weight').data as Float32Array)).toEqual([1, 2]);
    expect(openHfWeights(join(dir, 'vision')).files).toEqual(['model.safetensors']);
    expect(Array.from(openHfWeights(dir, 'vision/model.safetensors').read('v').data as Float32Array)).toEqual([9]);
    expect(failure(() => openHfWeights(dir, '../x.safetensors'))).toMatch(/'\.\.\/x\.safetensors' points outside the model's folder/);
    expect(failure(() => openHfWeights(dir, 'text/none.safetensors'))).toBe("text/none.safetensors: no such file in the model's folder");
  });
});

describe('untrusted safetensors headers', () => {
  const open = (bytes: Uint8Array) => failure(() => openHfFolder(folder({ 'model.safetensors': bytes })));

  it('each lie is an error naming the file, relative to the folder', () => {
    expect(open(forge({}, new Uint8Array(0), 1000n))).toBe(
      "'model.safetensors' is not a valid safetensors file: header length 1000 runs past the end of the file (10 bytes)",
    );
    expect(open(forge({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(4)))).toBe(
      "tensor 'w' in 'model.safetensors': data_offsets [0, 8] lie outside the 4-byte data section",
    );
    expect(open(forge({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)))).toBe(
      "tensor 'w' in 'model.safetensors': holds 8 bytes but shape [3] of F32 needs 12",
    );
    const overlap = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } };
    expect(open(forge(overlap, new Uint8Array(12)))).toBe(
      "'model.safetensors' is not a valid safetensors file: tensors 'a' [0, 8] and 'b' [4, 12] overlap",
    );
    expect(open(forge({ w: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, new Uint8Array(2)))).toBe(
      "tensor 'w' in 'model.safetensors': unsupported dtype 'F8_E4M3'",
    );
    expect(open(forge('{"w": ', new Uint8Array(0)))).toMatch(/^'model\.safetensors' is not a valid safetensors file: header is not valid JSON/);
    expect(open(new Uint8Array([1, 2, 3]))).toMatch(/'model\.safetensors'.*3 bytes long/);
  });

  it('files that are something else under the name are named for what they are', () => {
    const zip = new Uint8Array([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x00, 0x08, 0x00, 1, 2, 3]);
    expect(open(zip)).toBe("'model.safetensors' is not a valid safetensors file: it is a zip archive (PyTorch's torch.save format), not safetensors");
    const pickle = new Uint8Array([0x80, 0x02, 0x63, 0x63, 0x6f, 0x6c, 0x6c, 0x65, 0x63, 0x74]);
    expect(open(pickle)).toMatch(/'model\.safetensors'.*it is a Python pickle/);
    expect(open(new TextEncoder().encode('version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n'))).toMatch(
      /'model\.safetensors'.*Git LFS pointer.*git lfs pull/,
    );
    expect(open(new TextEncoder().encode('<html>Not found</html>'))).toMatch(/'model\.safetensors'.*it is a text file/);
    // A zip whose next four bytes are zero declares a plausible 67 MB header; it is still named a zip.
    const d = folder({});
    const fd = openSync(join(d, 'model.safetensors'), 'w');
    writeSync(fd, new Uint8Array([0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0, 0x08, 0x08]));
    ftruncateSync(fd, 0x04034b50 + 64);
    closeSync(fd);
    expect(failure(() => openHfFolder(d))).toMatch(/'model\.safetensors'.*it is a zip archive/);
  });

  it('readSafetensorsHeader gives the same verdicts as parseSafetensors, from the header alone', () => {
    const good = serializeSafetensors({ a: f32([2, 2], [1, 2, 3, 4]), b: tensorFromNumbers('int8', [3], [1, 2, 3]) }, { format: 'pt' });
    const dir = newDir();
    const path = join(dir, 'x.safetensors');
    writeFileSync(path, good);
    const h = readSafetensorsHeader(path, 'x.safetensors');
    const headerLen = Number(new DataView(good.buffer).getBigUint64(0, true));
    expect(h.dataStart).toBe(8 + headerLen);
    expect(h.fileSize).toBe(good.length);
    expect(Buffer.from(h.headerBytes).equals(Buffer.from(good.subarray(0, 8 + headerLen)))).toBe(true);
    expect(h.metadata).toEqual({ format: 'pt' });
    expect(h.entries.map((e) => [e.name, e.dtype, e.storedDtype, e.shape, e.end - e.begin])).toEqual([
      ['a', 'float32', 'F32', [2, 2], 16],
      ['b', 'int8', 'I8', [3], 3],
    ]);
    const damaged = [
      forge({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(4)),
      forge({ w: { dtype: 'BF16', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)),
      forge({ __metadata__: { n: 1 } }, new Uint8Array(0)),
      forge('[1]', new Uint8Array(0)),
      good.subarray(0, 20),
    ];
    for (const bytes of damaged) {
      writeFileSync(path, bytes);
      let fromWhole = '';
      try {
        parseSafetensors(bytes, 'x.safetensors');
      } catch (e) {
        fromWhole = (e as Error).message;
      }
      expect(fromWhole).not.toBe('');
      expect(() => readSafetensorsHeader(path, 'x.safetensors')).toThrow(fromWhole);
    }
  });
});

describe('what the folder is', () => {
  it('isHfFolder: config.json plus safetensors or PyTorch weights', () => {
    expect(isHfFolder(folder({ 'model.safetensors': serializeSafetensors({ a: f32([1], [1]) }) }))).toBe(true);
    expect(isHfFolder(folder({ 'model.safetensors.index.json': { weight_map: {} } }))).toBe(true);
    expect(isHfFolder(folder({ 'pytorch_model-00001-of-00002.bin': 'x' }))).toBe(true);
    expect(isHfFolder(folder({ 'model.safetensors': 'x' }, false))).toBe(false);
    expect(isHfFolder(folder({ 'model.onnx': 'x' }))).toBe(false);
    expect(isHfFolder(join(root, 'does-not-exist'))).toBe(false);
  });

  it('only pytorch_model.bin: says Composer reads safetensors and how to convert', () => {
    const message = failure(() => openHfFolder(folder({ 'pytorch_model.bin': new Uint8Array([0x80, 0x02]) })));
    expect(message).toMatch(/^pytorch_model\.bin: Composer reads safetensors weights only/);
    expect(message).toContain('model.save_pretrained(dir, safe_serialization=True)');
    expect(failure(() => openHfFolder(folder({ 'pytorch_model.bin.index.json': {}, 'pytorch_model-00001-of-00001.bin': 'x' })))).toContain(
      'safe_serialization=True',
    );
  });

  it('no weights at all, or weights under another name', () => {
    expect(failure(() => openHfFolder(folder({})))).toBe('model.safetensors: missing, and there is no model.safetensors.index.json either');
    expect(failure(() => openHfFolder(folder({ 'weights.safetensors': 'x' })))).toMatch(/it has 'weights\.safetensors'; open it by name/);
  });

  it('config.json must be a JSON object naming a model type', () => {
    const weights = { 'model.safetensors': serializeSafetensors({ a: f32([1], [1]) }) };
    const withConfig = (config: string) => failure(() => openHfFolder(folder({ ...weights, 'config.json': config }, false)));
    expect(withConfig('PK\u0003\u0004 not json')).toMatch(/^config\.json: is not valid JSON/);
    expect(withConfig('[1, 2]')).toBe('config.json: must hold a JSON object, got a list of 2');
    expect(withConfig('{"hidden_size": 4}')).toBe('config.json: has neither "model_type" nor "architectures"; it is not a transformers model config');
    expect(withConfig('{"model_type": 7}')).toBe('config.json: model_type must be a string, got 7');
    expect(failure(() => openHfFolder(folder(weights, false)))).toMatch(/^config\.json: missing/);
    const archOnly = folder({ ...weights, 'config.json': { architectures: ['CLIPModel'] } }, false);
    expect(openHfFolder(archOnly).config.architectures).toEqual(['CLIPModel']);
  });

  it('a folder that does not exist is named', () => {
    expect(failure(() => openHfFolder(join(root, 'nothing-here')))).toMatch(/cannot open the model folder '.*nothing-here': ENOENT/);
  });
});

describe('confinement and symlinks', () => {
  it('links inside the folder are fine; links leading out are refused by name', () => {
    const outsideDir = newDir('elsewhere');
    writeFileSync(join(outsideDir, 'w.safetensors'), serializeSafetensors({ a: f32([1], [1]) }));
    writeJson(join(outsideDir, 'config.json'), CONFIG);

    const inner = folder({ 'real/w.safetensors': serializeSafetensors({ a: f32([1], [5]) }) });
    symlinkSync('real/w.safetensors', join(inner, 'model.safetensors'));
    expect(Array.from(openHfFolder(inner).weights.read('a').data as Float32Array)).toEqual([5]);

    const out = folder({});
    symlinkSync(join(outsideDir, 'w.safetensors'), join(out, 'model.safetensors'));
    expect(failure(() => openHfFolder(out))).toMatch(/^model\.safetensors: resolves to '.*w\.safetensors', outside the model's folder/);

    const cfg = folder({ 'model.safetensors': serializeSafetensors({ a: f32([1], [1]) }) }, false);
    symlinkSync(join(outsideDir, 'config.json'), join(cfg, 'config.json'));
    expect(failure(() => openHfFolder(cfg))).toMatch(/^config\.json: resolves to .*outside the model's folder/);

    const tok = folder({ 'model.safetensors': serializeSafetensors({ a: f32([1], [1]) }) });
    symlinkSync('../../etc/passwd', join(tok, 'tokenizer.json'));
    expect(failure(() => openHfFolder(tok))).toMatch(/^tokenizer\.json: /);
  });
});

describe('hub cache layout', () => {
  /** models--org--name/{blobs/<sha>, snapshots/abc123/<file> -> ../../blobs/<sha>, refs/main}. */
  function hubRepo(repoName: string, files: Record<string, Uint8Array | string>): { repo: string; snapshot: string } {
    const cache = newDir('hub');
    const repo = join(cache, repoName);
    const snapshot = join(repo, 'snapshots', 'abc123');
    mkdirSync(join(repo, 'blobs'), { recursive: true });
    mkdirSync(snapshot, { recursive: true });
    mkdirSync(join(repo, 'refs'));
    writeFileSync(join(repo, 'refs', 'main'), 'abc123');
    let n = 0;
    for (const [name, content] of Object.entries(files)) {
      const sha = `${(++n).toString(16).padStart(8, '0')}deadbeef`;
      writeFileSync(join(repo, 'blobs', sha), content);
      const depth = name.split('/').length - 1;
      if (depth) mkdirSync(join(snapshot, name, '..'), { recursive: true });
      symlinkSync(`${'../'.repeat(depth + 2)}blobs/${sha}`, join(snapshot, name));
    }
    return { repo, snapshot };
  }
  const weights = serializeSafetensors({ 'vision.w': f32([2], [1, 2]) });

  it('snapshot files that link into the model’s own blobs/ are read', () => {
    const { repo, snapshot } = hubRepo('models--org--tiny', {
      'config.json': JSON.stringify(CONFIG),
      'model.safetensors': weights,
      'tokenizer.json': '{}',
      'sub/model.safetensors': serializeSafetensors({ 'text.w': f32([1], [3]) }),
    });
    const m = openHfFolder(snapshot);
    expect(m.dir).toBe(snapshot);
    expect(Array.from(m.weights.read('vision.w').data as Float32Array)).toEqual([1, 2]);
    expect(m.tokenizerJson).toBe(join(snapshot, 'tokenizer.json'));
    expect(m.files.map((f) => f.name)).toEqual(['config.json', 'model.safetensors', 'sub/model.safetensors', 'tokenizer.json']);
    expect(m.files.find((f) => f.name === 'model.safetensors')?.bytes).toBe(weights.length);
    // A subfolder of a snapshot may link into the same blobs/ too.
    const sub = openHfWeights(join(snapshot, 'sub'));
    expect(Array.from(sub.read('text.w').data as Float32Array)).toEqual([3]);
    // The repository folder itself stands for the snapshot refs/main names.
    expect(isHfFolder(repo)).toBe(true);
    expect(openHfFolder(repo).dir).toBe(snapshot);
    expect(openHfFolder(repo).weights.fingerprint).toBe(m.weights.fingerprint);
  });

  it("a snapshot link into another model's blobs is refused", () => {
    const other = hubRepo('models--org--other', { 'model.safetensors': weights });
    const { snapshot } = hubRepo('models--org--victim', { 'config.json': JSON.stringify(CONFIG) });
    const otherBlob = join(other.repo, 'blobs', '00000001deadbeef');
    symlinkSync(otherBlob, join(snapshot, 'model.safetensors'));
    expect(failure(() => openHfFolder(snapshot))).toMatch(/^model\.safetensors: resolves to '.*models--org--other.*', outside the model's folder/);
  });

  it('a link to a blob that was never downloaded', () => {
    const { snapshot } = hubRepo('models--org--partial', { 'config.json': JSON.stringify(CONFIG) });
    symlinkSync('../../blobs/missing', join(snapshot, 'model.safetensors'));
    expect(failure(() => openHfFolder(snapshot))).toBe('model.safetensors: is a link to a file that does not exist (an incomplete download?)');
  });
});

describe('tokenizer, generation and processor configs', () => {
  const weights = { 'model.safetensors': serializeSafetensors({ a: f32([1], [1]) }) };
  const open = (files: Record<string, unknown>) => openHfFolder(folder({ ...weights, ...files }));
  const refuse = (files: Record<string, unknown>) => failure(() => open(files));

  it('tokenizer_config.json: AddedToken objects become strings, a template list picks "default"', () => {
    const m = open({
      'tokenizer_config.json': {
        bos_token: { __type: 'AddedToken', content: '<s>', lstrip: false, normalized: true },
        eos_token: '</s>',
        pad_token: null,
        add_bos_token: true,
        add_eos_token: false,
        model_max_length: 1e30,
        padding_side: 'left',
        chat_template: [
          { name: 'default', template: '{{ messages }}' },
          { name: 'tool_use', template: '{{ tools }}' },
        ],
        added_tokens_decoder: { '32000': { content: '<image>', special: true, lstrip: false } },
        tokenizer_class: 'LlamaTokenizer',
        legacy: false,
      },
    });
    const t = m.tokenizerConfig!;
    expect(t.bos_token).toBe('<s>');
    expect(t.eos_token).toBe('</s>');
    expect(t.pad_token).toBeUndefined();
    expect(t.model_max_length).toBe(1e30);
    expect(t.padding_side).toBe('left');
    expect(t.chat_template).toBe('{{ messages }}');
    expect(t.chat_templates).toEqual({ default: '{{ messages }}', tool_use: '{{ tools }}' });
    expect(t.added_tokens_decoder?.['32000'].content).toBe('<image>');
    expect(t.legacy).toBe(false);
    expect(m.chatTemplate).toBe('{{ messages }}');
  });

  it('special_tokens_map.json overrides legacy configs, is ignored beside added_tokens_decoder; chat_template.jinja wins', () => {
    const legacy = open({
      'tokenizer_config.json': { eos_token: '</s>', additional_special_tokens: ['<a>'] },
      'special_tokens_map.json': { eos_token: { content: '<|end|>' }, unk_token: '<unk>', additional_special_tokens: ['<a>', { content: '<b>' }] },
      'chat_template.jinja': '{% for m in messages %}{{ m.content }}{% endfor %}',
    }).tokenizerConfig!;
    expect(legacy.eos_token).toBe('<|end|>');
    expect(legacy.unk_token).toBe('<unk>');
    expect(legacy.additional_special_tokens).toEqual(['<a>', '<b>']);
    expect(legacy.chat_template).toBe('{% for m in messages %}{{ m.content }}{% endfor %}');
    const modern = open({
      'tokenizer_config.json': { eos_token: '</s>', added_tokens_decoder: {} },
      'special_tokens_map.json': { eos_token: '<|end|>' },
    }).tokenizerConfig!;
    expect(modern.eos_token).toBe('</s>');
    expect(open({ 'special_tokens_map.json': { bos_token: '<s>' } }).tokenizerConfig?.bos_token).toBe('<s>');
    expect(open({}).tokenizerConfig).toBeUndefined();
  });

  it('tokenizer config errors name the file and field', () => {
    expect(refuse({ 'tokenizer_config.json': { eos_token: 5 } })).toBe(
      'tokenizer_config.json: eos_token must be a token string or an object with a "content" string, got 5',
    );
    expect(refuse({ 'tokenizer_config.json': { padding_side: 'middle' } })).toBe(
      'tokenizer_config.json: padding_side must be one of "left", "right", got "middle"',
    );
    expect(refuse({ 'special_tokens_map.json': { additional_special_tokens: ['<a>', 3] } })).toBe(
      'special_tokens_map.json: additional_special_tokens[1] must be a token string or an object with a "content" string, got 3',
    );
    expect(refuse({ 'tokenizer_config.json': { chat_template: 3 } })).toMatch(/^tokenizer_config\.json: chat_template must be a template string/);
    expect(refuse({ 'tokenizer_config.json': '{"eos_token": "</s>",' })).toMatch(/^tokenizer_config\.json: is not valid JSON/);
  });

  it('generation_config.json: eos ids become a list; ranges are checked', () => {
    const g = open({
      'generation_config.json': { do_sample: true, temperature: 0.7, top_k: 50, top_p: 0.9, max_new_tokens: 20, eos_token_id: 2, pad_token_id: null, transformers_version: '4.45.0' },
    }).generationConfig!;
    expect(g.eos_token_id).toEqual([2]);
    expect(g.pad_token_id).toBeUndefined();
    expect(g.temperature).toBe(0.7);
    expect(g.transformers_version).toBe('4.45.0');
    expect(open({ 'generation_config.json': { eos_token_id: [1, 32007] } }).generationConfig!.eos_token_id).toEqual([1, 32007]);
    expect(refuse({ 'generation_config.json': { top_p: 1.5 } })).toBe('generation_config.json: top_p must be at most 1, got 1.5');
    expect(refuse({ 'generation_config.json': { top_k: 2.5 } })).toBe('generation_config.json: top_k must be a whole number, got 2.5');
    expect(refuse({ 'generation_config.json': { eos_token_id: ['x'] } })).toMatch(/^generation_config\.json: eos_token_id must be a token id or a list/);
    expect(refuse({ 'generation_config.json': { repetition_penalty: 0 } })).toBe('generation_config.json: repetition_penalty must be greater than 0, got 0');
  });

  it('preprocessor_config.json: sizes in every form, PIL resample names, three-channel mean and std', () => {
    const p = open({
      'preprocessor_config.json': {
        image_processor_type: 'CLIPImageProcessor',
        do_resize: true,
        size: { shortest_edge: 224 },
        resample: 3,
        do_center_crop: true,
        crop_size: 224,
        do_rescale: true,
        rescale_factor: 0.00392156862745098,
        do_normalize: true,
        image_mean: [0.48145466, 0.4578275, 0.40821073],
        image_std: [0.26862954, 0.26130258, 0.27577711],
        do_convert_rgb: true,
        custom_key: 'kept',
      },
    }).preprocessorConfig!;
    expect(p.size).toEqual({ shortest_edge: 224 });
    expect(p.crop_size).toBe(224);
    expect(resolveImageSize(p.crop_size!, { defaultToSquare: true })).toEqual({ height: 224, width: 224 });
    expect(resolveImageSize(224, { defaultToSquare: false })).toEqual({ shortest_edge: 224 });
    expect(p.resample).toBe('bicubic');
    expect(p.image_std).toEqual([0.26862954, 0.26130258, 0.27577711]);
    expect(p.custom_key).toBe('kept');
    const sizes = (size: unknown) => open({ 'preprocessor_config.json': { size } }).preprocessorConfig!.size;
    expect(sizes({ height: 384, width: 384 })).toEqual({ height: 384, width: 384 });
    expect(sizes({ longest_edge: 1024 })).toEqual({ longest_edge: 1024 });
    expect(sizes([336, 448])).toEqual({ height: 336, width: 448 });
    const resamples = [0, 1, 2, 3, 4, 5].map((r) => open({ 'preprocessor_config.json': { resample: r } }).preprocessorConfig!.resample);
    expect(resamples).toEqual(['nearest', 'lanczos', 'bilinear', 'bicubic', 'box', 'hamming']);
  });

  it('preprocessor config errors name the file and field', () => {
    expect(refuse({ 'preprocessor_config.json': { image_std: [0.5, 0.5] } })).toBe('preprocessor_config.json: image_std must have 3 numbers, got 2');
    expect(refuse({ 'preprocessor_config.json': { image_mean: 0.5 } })).toBe('preprocessor_config.json: image_mean must be a list of 3 numbers, got 0.5');
    expect(refuse({ 'preprocessor_config.json': { image_std: [0.5, 0, 0.5] } })).toBe('preprocessor_config.json: image_std[1] must be a positive number, got 0');
    expect(refuse({ 'preprocessor_config.json': { resample: 7 } })).toMatch(/^preprocessor_config\.json: resample must be a PIL resampling filter 0-5 .*got 7$/);
    expect(refuse({ 'preprocessor_config.json': { size: { height: 224 } } })).toMatch(/^preprocessor_config\.json: size must be .*got keys \["height"\]$/);
    expect(refuse({ 'preprocessor_config.json': { crop_size: { height: -1, width: 3 } } })).toBe(
      'preprocessor_config.json: crop_size.height must be a positive whole number, got -1',
    );
    expect(refuse({ 'preprocessor_config.json': { rescale_factor: -1 } })).toBe('preprocessor_config.json: rescale_factor must be greater than 0, got -1');
    expect(refuse({ 'preprocessor_config.json': { do_resize: 'yes' } })).toBe('preprocessor_config.json: do_resize must be a boolean, got "yes"');
    expect(refuse({ 'preprocessor_config.json': [1] })).toBe('preprocessor_config.json: must hold a JSON object, got a list of 1');
  });

  it('processor_config.json and chat_template.json', () => {
    const m = open({
      'processor_config.json': { processor_class: 'LlavaProcessor', patch_size: 14, vision_feature_select_strategy: 'default', num_additional_image_tokens: 1, image_token: '<image>', other: [1] },
      'chat_template.json': { chat_template: '{{ processor }}' },
      'tokenizer_config.json': { chat_template: '{{ tokenizer }}' },
    });
    expect(m.processorConfig).toMatchObject({ processor_class: 'LlavaProcessor', patch_size: 14, image_token: '<image>', other: [1] });
    expect(m.chatTemplate).toBe('{{ processor }}');
    expect(m.tokenizerConfig!.chat_template).toBe('{{ tokenizer }}');
    expect(open({ 'processor_config.json': { num_query_tokens: 32, image_seq_length: 256 } }).processorConfig).toMatchObject({ num_query_tokens: 32, image_seq_length: 256 });
    expect(refuse({ 'processor_config.json': { vision_feature_select_strategy: 'cls' } })).toBe(
      'processor_config.json: vision_feature_select_strategy must be one of "default", "full", got "cls"',
    );
    expect(refuse({ 'processor_config.json': { patch_size: 0 } })).toBe('processor_config.json: patch_size must be at least 1, got 0');
  });
});
