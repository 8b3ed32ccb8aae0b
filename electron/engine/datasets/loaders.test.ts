import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng } from '../image.js';
import {
  detectFormat, jsonPath, loadCaptionsCsv, loadCaptionsJsonl, loadCocoCaptions, loadDataset, loadLlava, loadSampleImage,
  parseCsv, resolveImagePath, splitSamples,
} from './loaders.js';
import { DatasetError, type Sample } from './types.js';

const root = mkdtempSync(join(tmpdir(), 'composer-datasets-'));
const data = join(root, 'data');
const outside = join(root, 'outside');

function write(name: string, text: string): string {
  const file = join(data, name);
  writeFileSync(file, text);
  return file;
}

beforeAll(async () => {
  mkdirSync(join(data, 'img'), { recursive: true });
  mkdirSync(outside, { recursive: true });
  const png = await encodePng({ width: 2, height: 2, data: new Uint8Array(12).fill(200) });
  for (const n of ['a.png', 'b.png', 'c.png', 'd.png']) writeFileSync(join(data, 'img', n), png);
  writeFileSync(join(outside, 'secret.png'), png);
  symlinkSync(join(outside, 'secret.png'), join(data, 'img', 'link.png'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('captions JSONL', () => {
  it('loads records with paths resolved against the file', () => {
    const file = write('caps.jsonl', [
      '{"image": "img/a.png", "caption": "a red circle"}',
      '',
      '{"image": "img/b.png", "caption": "two squares", "id": 7}',
    ].join('\n'));
    const ds = loadCaptionsJsonl(file);
    expect(ds.format).toBe('jsonl');
    expect(ds.samples).toEqual([
      { id: 'line-1', imagePath: join(data, 'img', 'a.png'), caption: 'a red circle' },
      { id: '7', imagePath: join(data, 'img', 'b.png'), caption: 'two squares' },
    ]);
    expect(loadDataset(file).samples.length).toBe(2);
  });

  it('names the file and line of every kind of bad record', () => {
    const cases: [string, RegExp][] = [
      ['{"image": "img/a.png", "caption": "ok"}\n{"image": "img/a.png", "caption": "x"', /bad\.jsonl:2: invalid JSON/],
      ['{"image": "img/a.png", "caption": "ok"}\n\n{"image": "img/a.png"}', /bad\.jsonl:3: field 'caption'/],
      ['{"image": "img/a.png", "caption": "   "}', /bad\.jsonl:1: field 'caption': caption is empty/],
      ['{"image": 5, "caption": "x"}', /bad\.jsonl:1: field 'image'/],
      ['{"image": "img/missing.png", "caption": "x"}', /bad\.jsonl:1: image 'img\/missing\.png' not found/],
      ['{"image": "../outside/secret.png", "caption": "x"}', /bad\.jsonl:1: image path '\.\.\/outside\/secret\.png' leaves the dataset folder/],
      [`{"image": ${JSON.stringify(join(outside, 'secret.png'))}, "caption": "x"}`, /bad\.jsonl:1: .*is absolute/],
      ['{"image": "img/link.png", "caption": "x"}', /bad\.jsonl:1: .*through a link.*outside/],
      ['\n\n', /bad\.jsonl: no records/],
    ];
    for (const [text, pattern] of cases) {
      const file = write('bad.jsonl', text);
      expect(() => loadCaptionsJsonl(file), text).toThrow(pattern);
      expect(() => loadCaptionsJsonl(file)).toThrow(DatasetError);
    }
  });

  it('can skip the image existence check but never the confinement', () => {
    const file = write('lazy.jsonl', '{"image": "img/later.png", "caption": "x"}\n');
    expect(loadCaptionsJsonl(file, { checkImages: false }).samples[0].imagePath).toBe(join(data, 'img', 'later.png'));
    const esc = write('esc.jsonl', '{"image": "img/../../x.png", "caption": "x"}\n');
    expect(() => loadCaptionsJsonl(esc, { checkImages: false })).toThrow(/esc\.jsonl:1: .*leaves/);
  });
});

describe('captions CSV', () => {
  it('parses RFC 4180 quoting (commas, doubled quotes, newlines) and tracks record lines', () => {
    const rows = parseCsv('a,b\r\n"x, y","say ""hi"""\n"multi\nline",z\n\nlast,', 't.csv');
    expect(rows).toEqual([
      { line: 1, fields: ['a', 'b'] },
      { line: 2, fields: ['x, y', 'say "hi"'] },
      { line: 3, fields: ['multi\nline', 'z'] },
      { line: 6, fields: ['last', ''] },
    ]);
    expect(() => parseCsv('a,b\n"open,b\n', 't.csv')).toThrow(/t\.csv:2: quoted field is never closed/);
    expect(() => parseCsv('a,b\nx"y,b\n', 't.csv')).toThrow(/t\.csv:2: stray '"'/);
    expect(() => parseCsv('a,b\n"x"y,b\n', 't.csv')).toThrow(/t\.csv:2: unexpected character after a closing quote/);
  });

  it('loads image,caption columns in any order with an optional id', () => {
    const file = write('caps.csv', '\ufeffcaption,Image,id\n"a circle, red",img/a.png,\n"two\nlines",img/b.png,x9\n');
    const ds = loadCaptionsCsv(file);
    expect(ds.samples).toEqual([
      { id: 'line-2', imagePath: join(data, 'img', 'a.png'), caption: 'a circle, red' },
      { id: 'x9', imagePath: join(data, 'img', 'b.png'), caption: 'two\nlines' },
    ]);
    expect(loadDataset(file).format).toBe('csv');
  });

  it('names the file and line of bad rows', () => {
    const cases: [string, RegExp][] = [
      ['image,text\nimg/a.png,x\n', /bad\.csv:1: header has no 'caption' column/],
      ['image,caption,image\nimg/a.png,x,y\n', /bad\.csv:1: column 'image' appears twice/],
      ['image,caption\nimg/a.png,"two\nlines"\nimg/b.png\n', /bad\.csv:4: 1 fields, but the header has 2/],
      ['image,caption\nimg/a.png,ok\nimg/b.png,\n', /bad\.csv:3: column 'caption': caption is empty/],
      ['image,caption\nimg/a.png,ok\nimg/nope.png,x\n', /bad\.csv:3: image 'img\/nope\.png' not found/],
      ['image,caption\n../outside/secret.png,x\n', /bad\.csv:2: .*leaves the dataset folder/],
      ['', /bad\.csv: empty CSV file/],
      ['image,caption\n', /bad\.csv: no records after the header/],
    ];
    for (const [text, pattern] of cases) {
      const file = write('bad.csv', text);
      expect(() => loadCaptionsCsv(file), text).toThrow(pattern);
    }
  });
});

describe('COCO captions JSON', () => {
  const coco = {
    info: { description: 'tiny' },
    images: [{ id: 1, file_name: 'img/a.png', width: 2 }, { id: 2, file_name: 'img/b.png' }],
    annotations: [
      { id: 10, image_id: 1, caption: 'first caption' },
      { id: 11, image_id: 2, caption: 'second caption' },
      { id: 12, image_id: 1, caption: 'another view of a' },
    ],
  };

  it('loads one sample per caption', () => {
    const file = write('coco.json', JSON.stringify(coco));
    expect(detectFormat(file)).toBe('coco');
    const ds = loadDataset(file);
    expect(ds.format).toBe('coco');
    expect(ds.samples.map((s) => [s.id, s.imagePath, s.caption])).toEqual([
      ['10', join(data, 'img', 'a.png'), 'first caption'],
      ['11', join(data, 'img', 'b.png'), 'second caption'],
      ['12', join(data, 'img', 'a.png'), 'another view of a'],
    ]);
  });

  it('names the JSON path of bad values', () => {
    const bad = (patch: (c: typeof coco) => unknown): string => write('badcoco.json', JSON.stringify(patch(structuredClone(coco))));
    expect(() => loadCocoCaptions(bad((c) => { c.annotations[2].caption = 5 as never; return c; })))
      .toThrow(/badcoco\.json: \$\.annotations\[2\]\.caption/);
    expect(() => loadCocoCaptions(bad((c) => { c.annotations[1].image_id = 99; return c; })))
      .toThrow(/badcoco\.json: \$\.annotations\[1\]\.image_id: no image with id 99/);
    expect(() => loadCocoCaptions(bad((c) => { c.images[1].id = 1; return c; })))
      .toThrow(/\$\.images\[1\]\.id: duplicate image id 1/);
    expect(() => loadCocoCaptions(bad((c) => { c.images[0].file_name = '../outside/secret.png'; return c; })))
      .toThrow(/\$\.images\[0\]\.file_name: .*leaves the dataset folder/);
    expect(() => loadCocoCaptions(bad((c) => ({ images: c.images }))))
      .toThrow(/badcoco\.json: \$\.annotations/);
    const broken = write('broken.json', '{\n  "images": [\n    {"id": 1,, "file_name": "img/a.png"}\n  ]\n}');
    expect(() => loadCocoCaptions(broken)).toThrow(/broken\.json:3:\d+: invalid JSON/);
  });
});

describe('LLaVA conversation JSON', () => {
  const llava = [
    { id: 'q1', image: 'img/a.png', conversations: [{ from: 'human', value: '<image>\nWhat is it?' }, { from: 'gpt', value: 'A circle.' }] },
    { id: 2, conversations: [{ from: 'human', value: 'Hello' }, { from: 'gpt', value: 'Hi.' }] },
  ];

  it('loads image and text-only samples', () => {
    const file = write('llava.json', JSON.stringify(llava));
    expect(detectFormat(file)).toBe('llava');
    const ds = loadLlava(file);
    expect(ds.samples).toEqual([
      { id: 'q1', imagePath: join(data, 'img', 'a.png'), conversations: llava[0].conversations },
      { id: '2', conversations: llava[1].conversations },
    ]);
  });

  it('names the JSON path of bad records', () => {
    const bad = (patch: (c: typeof llava) => unknown): string => write('badllava.json', JSON.stringify(patch(structuredClone(llava))));
    expect(() => loadLlava(bad((c) => { c[1].conversations[0].from = 'bot'; return c; })))
      .toThrow(/badllava\.json: \$\[1\]\.conversations\[0\]\.from/);
    expect(() => loadLlava(bad((c) => { c[0].conversations[0].value = 'no placeholder'; return c; })))
      .toThrow(/\$\[0\]\.conversations: a sample with an image needs exactly one '<image>', found 0/);
    expect(() => loadLlava(bad((c) => { c[1].conversations[0].value = '<image> hi'; return c; })))
      .toThrow(/\$\[1\]\.conversations: '<image>' used but the sample has no 'image'/);
    expect(() => loadLlava(bad((c) => { c[0].conversations[1].value = '<image>'; c[0].conversations[0].value = 'x'; return c; })))
      .toThrow(/\$\[0\]\.conversations\[1\]\.value: '<image>' may only appear in a human turn/);
    expect(() => loadLlava(bad((c) => { c[1].conversations = [c[1].conversations[0]]; return c; })))
      .toThrow(/\$\[1\]\.conversations: no 'gpt' turn/);
    expect(() => loadLlava(bad((c) => { c[0].image = 'img/zzz.png'; return c; })))
      .toThrow(/\$\[0\]\.image: image 'img\/zzz\.png' not found/);
    expect(() => loadLlava(bad((c) => { (c[0] as { id?: string }).id = undefined; return c; })))
      .toThrow(/\$\[0\]\.id/);
    expect(() => loadLlava(bad(() => []))).toThrow(/no samples/);
  });
});

describe('dispatch, paths and split', () => {
  it('refuses unknown extensions and non-dataset JSON', () => {
    expect(() => detectFormat(write('x.txt', 'hi'))).toThrow(/unknown dataset extension '\.txt'/);
    expect(() => detectFormat(write('x.json', '"str"'))).toThrow(/x\.json: expected a JSON array/);
    expect(() => loadDataset(join(data, 'absent.jsonl'))).toThrow(/cannot read dataset .*absent\.jsonl/);
    expect(jsonPath(['a', 0, 'b'])).toBe('$.a[0].b');
  });

  it('loads the pixels of a sample from memory or from its file, naming the sample on failure', async () => {
    const img = await loadSampleImage({ id: 'a', imagePath: join(data, 'img', 'a.png') });
    expect([img.width, img.height, img.data[0]]).toEqual([2, 2, 200]);
    const mem = { width: 1, height: 1, data: new Uint8Array([1, 2, 3]) };
    expect(await loadSampleImage({ id: 'm', image: mem })).toBe(mem);
    writeFileSync(join(data, 'img', 'broken.png'), 'xx');
    await expect(loadSampleImage({ id: 'b', imagePath: join(data, 'img', 'broken.png') })).rejects.toThrow(/sample 'b': .*broken\.png/);
    await expect(loadSampleImage({ id: 'none' })).rejects.toThrow(/sample 'none' has no image/);
  });

  it('confines image paths to the folder', () => {
    expect(resolveImagePath(data, 'img/a.png', 'w')).toBe(join(data, 'img', 'a.png'));
    expect(() => resolveImagePath(data, '', 'w')).toThrow(/w: empty image path/);
    expect(() => resolveImagePath(data, '.', 'w', false)).toThrow(/leaves/);
    expect(() => resolveImagePath(data, 'C:\\x.png', 'w', false)).toThrow(/absolute/);
    expect(() => resolveImagePath(join(data, 'img'), '../caps.jsonl', 'w', false)).toThrow(/leaves/);
  });

  it('splits deterministically and disjointly, keeping captions of one image together', () => {
    const samples: Sample[] = [];
    for (let i = 0; i < 200; i++) samples.push({ id: `s${i}`, imagePath: `/d/img${i % 80}.png`, caption: `c${i}` });
    const a = splitSamples(samples, { evalFraction: 0.2, seed: 1 });
    const b = splitSamples([...samples].reverse(), { evalFraction: 0.2, seed: 1 });
    const c = splitSamples(samples, { evalFraction: 0.2, seed: 2 });
    const images = (xs: Sample[]): Set<string> => new Set(xs.map((s) => s.imagePath ?? ''));
    expect(images(a.eval).size).toBe(16); // ⌈0.2 · 80⌉ images
    expect(a.train.length + a.eval.length).toBe(200);
    for (const img of images(a.eval)) expect(images(a.train).has(img)).toBe(false);
    expect(images(b.eval)).toEqual(images(a.eval)); // order of the file does not matter
    expect(images(c.eval)).not.toEqual(images(a.eval)); // the seed does
    expect(a.train.map((s) => s.id)).toEqual(samples.filter((s) => !images(a.eval).has(s.imagePath ?? '')).map((s) => s.id));
    expect(splitSamples(samples.slice(0, 3), { evalFraction: 0.01 }).eval.length).toBe(1);
    expect(splitSamples(samples, { evalFraction: 0 }).eval.length).toBe(0);
    expect(() => splitSamples(samples, { evalFraction: 1 })).toThrow(/evalFraction/);
  });
});
