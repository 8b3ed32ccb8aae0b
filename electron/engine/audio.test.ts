import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  AudioError, decodeWav, encodeWav, fftInPlace, hzToMel, loadAudio16k, logMelSpectrogram, melFilterBank, melToHz,
  readWav, resample, wavToLogMel,
} from './audio.js';

const dir = mkdtempSync(join(tmpdir(), 'composer-audio-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sine(freq: number, rate: number, seconds: number, amp = 0.5): Float32Array {
  return Float32Array.from({ length: Math.round(rate * seconds) }, (_, i) => amp * Math.sin((2 * Math.PI * freq * i) / rate));
}

/** Mel bin (0-based) whose centre is closest to `hz`, from the Slaney scale directly (linear to 1 kHz, log above). */
function expectedMelBin(hz: number, nMels = 80, sampleRate = 16000): number {
  const mel = (f: number): number => (f < 1000 ? (3 * f) / 200 : 15 + (27 * Math.log(f / 1000)) / Math.log(6.4));
  const step = mel(sampleRate / 2) / (nMels + 1);
  return Math.round(mel(hz) / step) - 1;
}

/** Mel bin with the largest mean log-mel value over the frames away from the edges. */
function peakBin(data: Float32Array, nMels: number, frames: number): number {
  let best = -1, bestValue = -Infinity;
  for (let m = 0; m < nMels; m++) {
    let acc = 0;
    for (let f = 5; f < frames - 5; f++) acc += data[m * frames + f];
    if (acc > bestValue) { bestValue = acc; best = m; }
  }
  return best;
}

describe('WAV I/O', () => {
  it('round-trips 16-bit PCM and float32 and averages channels to mono', () => {
    const s = Float32Array.from([0, 0.5, -0.5, 0.25, -1]);
    const pcm = decodeWav(encodeWav(s, 8000, 'pcm16'));
    expect(pcm.sampleRate).toBe(8000);
    expect(pcm.sourceChannels).toBe(1);
    Array.from(pcm.samples).forEach((v, i) => expect(v).toBeCloseTo(s[i], 4));
    const f32 = decodeWav(encodeWav(s, 22050, 'float32'));
    expect(Array.from(f32.samples)).toEqual(Array.from(s));
    const stereo = decodeWav(encodeWav(Float32Array.from([0.5, -0.5, 1, 0, 0.2, 0.4]), 16000, 'float32', 2));
    expect(stereo.sourceChannels).toBe(2);
    expect(stereo.samples.length).toBe(3);
    expect(stereo.samples[0]).toBeCloseTo(0, 6);
    expect(stereo.samples[1]).toBeCloseTo(0.5, 6);
    expect(stereo.samples[2]).toBeCloseTo(0.3, 6);
  });

  it('skips unknown chunks and names the file in errors', () => {
    const wav = encodeWav(Float32Array.from([0.25, 0.5]), 16000);
    // Insert a LIST chunk (odd size → padded) between fmt and data.
    const list = Buffer.concat([Buffer.from('LIST'), Buffer.from([3, 0, 0, 0]), Buffer.from('abc'), Buffer.from([0])]);
    const withList = Buffer.concat([wav.subarray(0, 36), list, wav.subarray(36)]);
    expect(Array.from(decodeWav(withList).samples).map((v) => Math.round(v * 4) / 4)).toEqual([0.25, 0.5]);

    const path = join(dir, 'noise.wav');
    writeFileSync(path, 'definitely not RIFF');
    expect(() => readWav(path)).toThrow(AudioError);
    expect(() => readWav(path)).toThrow(/noise\.wav.*RIFF/);
    expect(() => readWav(join(dir, 'absent.wav'))).toThrow(/absent\.wav/);
    const mulaw = Buffer.from(wav);
    mulaw.writeUInt16LE(7, 20); // format tag 7 = µ-law
    expect(() => decodeWav(mulaw, 'phone.wav')).toThrow(/phone\.wav.*unsupported sample format/);
    expect(() => decodeWav(wav.subarray(0, 36), 'cut.wav')).toThrow(/cut\.wav.*no 'data' chunk/);
  });
});

describe('resample', () => {
  it('keeps a tone at its frequency and amplitude (44.1 kHz → 16 kHz, 8 kHz → 16 kHz)', () => {
    for (const from of [44100, 8000]) {
      const x = sine(440, from, 0.5, 0.8);
      const y = resample(x, from, 16000);
      expect(y.length).toBe(8000);
      // Compare the interior with the ideal 16 kHz tone.
      let maxErr = 0;
      for (let i = 500; i < 7500; i++) maxErr = Math.max(maxErr, Math.abs(y[i] - 0.8 * Math.sin((2 * Math.PI * 440 * i) / 16000)));
      expect(maxErr).toBeLessThan(0.01);
    }
  });

  it('removes content above the new Nyquist frequency instead of aliasing it', () => {
    const y = resample(sine(12000, 48000, 0.5, 0.8), 48000, 16000); // 12 kHz cannot exist at 16 kHz
    let rms = 0;
    for (let i = 500; i < y.length - 500; i++) rms += y[i] * y[i];
    expect(Math.sqrt(rms / (y.length - 1000))).toBeLessThan(0.01);
  });
});

describe('log-mel spectrogram (Whisper)', () => {
  it('FFT matches a direct DFT for mixed-radix and prime sizes', () => {
    for (const n of [400, 12, 7, 1]) {
      const x = Array.from({ length: n }, (_, i) => Math.sin(i * 1.3) + 0.1 * i);
      const re = Float64Array.from(x), im = new Float64Array(n);
      fftInPlace(re, im);
      for (let k = 0; k < n; k++) {
        let dr = 0, di = 0;
        for (let t = 0; t < n; t++) {
          dr += x[t] * Math.cos((-2 * Math.PI * k * t) / n);
          di += x[t] * Math.sin((-2 * Math.PI * k * t) / n);
        }
        expect(re[k]).toBeCloseTo(dr, 8);
        expect(im[k]).toBeCloseTo(di, 8);
      }
    }
  });

  it('uses the Slaney mel scale and area-normalised filters', () => {
    expect(hzToMel(1000)).toBeCloseTo(15, 10);
    expect(hzToMel(500)).toBeCloseTo(7.5, 10);
    expect(hzToMel(6400)).toBeCloseTo(42, 10); // 15 + 27 · ln(6.4)/ln(6.4)
    for (const hz of [0, 300, 1000, 2500, 7999]) expect(melToHz(hzToMel(hz))).toBeCloseTo(hz, 6);
    const bank = melFilterBank(80, 400, 16000);
    expect(bank.length).toBe(80 * 201);
    for (const v of bank) expect(v).toBeGreaterThanOrEqual(0);
    const rowSum = (m: number): number => bank.subarray(m * 201, (m + 1) * 201).reduce((a, b) => a + b, 0);
    // Area normalisation: Σ weights · Δf ≈ 1 for filters wide enough to be sampled well.
    expect(rowSum(70) * (16000 / 400)).toBeCloseTo(1, 1);
  });

  it('gives [1, 80, N/160] features with the max − 8 floor and (x + 4) / 4 scaling', () => {
    const { dims, data } = logMelSpectrogram(sine(1000, 16000, 1));
    expect(dims).toEqual([1, 80, 100]);
    const max = data.reduce((a, b) => Math.max(a, b), -Infinity);
    const min = data.reduce((a, b) => Math.min(a, b), Infinity);
    expect(max - min).toBeLessThanOrEqual(2 + 1e-6); // a floor of 8 in log10 units is 2 after /4
    expect(max - min).toBeGreaterThan(1.9);
    const padded = logMelSpectrogram(sine(1000, 16000, 1), { padOrTrimSeconds: 30 });
    expect(padded.dims).toEqual([1, 80, 3000]);
    expect(logMelSpectrogram(sine(1000, 16000, 1), { nMels: 128 }).dims).toEqual([1, 128, 100]);
    expect(() => logMelSpectrogram(new Float32Array(100))).toThrow(/shorter than one hop/);
  });

  it('puts a sine wave in the mel bin of its frequency', () => {
    for (const hz of [300, 1000, 2500, 5000]) {
      const { data, dims } = logMelSpectrogram(sine(hz, 16000, 0.5));
      expect(peakBin(data, dims[1], dims[2])).toBe(expectedMelBin(hz));
    }
  });

  it('reads a 44.1 kHz stereo WAV file into 16 kHz features with the tone in the right bin', () => {
    const mono = sine(2500, 44100, 0.5, 0.4);
    const interleaved = new Float32Array(mono.length * 2);
    mono.forEach((v, i) => { interleaved[2 * i] = v; interleaved[2 * i + 1] = v; });
    const path = join(dir, 'tone.wav');
    writeFileSync(path, encodeWav(interleaved, 44100, 'pcm16', 2));
    expect(loadAudio16k(path).length).toBe(8000);
    const { dims, data } = wavToLogMel(path);
    expect(dims).toEqual([1, 80, 50]);
    expect(peakBin(data, 80, 50)).toBe(expectedMelBin(2500));
    const tiny = join(dir, 'tiny.wav');
    writeFileSync(tiny, encodeWav(new Float32Array(50), 16000));
    expect(() => wavToLogMel(tiny)).toThrow(/tiny\.wav/);
  });
});
