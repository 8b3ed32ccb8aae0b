import { describe, expect, it } from 'vitest';
import { nodeTypes, sampleFrameIndices, toUnitRange } from './io.js';

const byType = (t: string) => {
  const def = nodeTypes.find((d) => d.info.type === t);
  if (!def) throw new Error(`no ${t}`);
  return def;
};

describe('io nodes', () => {
  it('samples frames uniformly, ends included', () => {
    expect(sampleFrameIndices(100, 5)).toEqual([0, 25, 50, 74, 99]);
    expect(sampleFrameIndices(3, 5)).toEqual([0, 1, 1, 2, 2]);
    expect(sampleFrameIndices(9, 1)).toEqual([4]);
    expect(() => sampleFrameIndices(0, 5)).toThrow(/at least one frame/);
  });

  it('image, video and audio shapes follow their params', () => {
    const image = byType('io.image');
    expect(image.outputShapes(image.params.parse({}), {})).toEqual({ pixel_values: [1, 3, 64, 64] });
    const video = byType('io.video');
    expect(video.outputShapes(video.params.parse({ size: 32 }), {})).toEqual({ pixel_values: [1, 5, 3, 32, 32] });
    const audio = byType('io.audio');
    expect(audio.outputShapes(audio.params.parse({}), {})).toEqual({ input_features: [1, 80, 3000] });
  });

  it('image input takes a path or bytes, not both', () => {
    const image = byType('io.image');
    expect(image.params.safeParse({ path: 'a.png' }).success).toBe(true);
    const both = image.params.safeParse({ path: 'a.png', base64: 'AAAA' });
    expect(both.success).toBe(false);
    expect(both.error?.issues[0].path).toEqual(['base64']);
  });

  it('every io node is a host step', () => {
    for (const def of nodeTypes) {
      expect(def.host, def.info.type).toBe(def.info.type);
      expect(def.build).toBeUndefined();
    }
  });

  it('maps generator pixel ranges to [0, 1]', () => {
    expect(toUnitRange(-1, '-1..1')).toBe(0);
    expect(toUnitRange(1, '-1..1')).toBe(1);
    expect(toUnitRange(0.5, '0..1')).toBe(0.5);
  });
});
