/**
 * Host-side audio I/O: read PCM WAV (8/16/24/32-bit integer or 32/64-bit float, any channel count → mono),
 * resample (windowed sinc), and compute the Whisper log-mel spectrogram `input_features` [1, n_mels, frames].
 *
 * Whisper's recipe: 16 kHz, periodic Hann window of 400 samples (25 ms), hop 160 (10 ms), centred frames with
 * reflect padding, power spectrum, Slaney-scale mel filters with Slaney area normalisation (librosa's default),
 * log10 with a 1e-10 floor, values below (max − 8) raised to it, then (x + 4) / 4. The last STFT frame is dropped,
 * so N samples give ⌊N / hop⌋ frames (3000 for 30 s).
 */
import { readFileSync } from 'node:fs';

export class AudioError extends Error {
  override name = 'AudioError';
}

export interface Waveform {
  sampleRate: number;
  /** Mono samples, nominally in [-1, 1]. */
  samples: Float32Array;
  /** Channel count of the source before the down-mix. */
  sourceChannels: number;
}

export const WHISPER_SAMPLE_RATE = 16000;

const FORMAT_PCM = 1;
const FORMAT_FLOAT = 3;
const FORMAT_EXTENSIBLE = 0xfffe;

/** Parse a RIFF/WAVE file held in memory; `label` names it in errors. Channels are averaged to mono. */
export function decodeWav(bytes: Uint8Array, label = 'WAV data'): Waveform {
  const fail = (msg: string): never => {
    throw new AudioError(`'${label}': ${msg}`);
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (at: number): string => String.fromCharCode(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
  if (bytes.length < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') fail('not a RIFF/WAVE file');

  let fmt: { format: number; channels: number; sampleRate: number; bits: number; blockAlign: number } | undefined;
  let data: Uint8Array | undefined;
  let pos = 12;
  while (pos + 8 <= bytes.length) {
    const id = tag(pos);
    const size = view.getUint32(pos + 4, true);
    const body = pos + 8;
    // Streaming writers leave the data size at 0xFFFFFFFF (or too large); take the rest of the file then.
    const end = id === 'data' && (size === 0xffffffff || body + size > bytes.length) ? bytes.length : body + size;
    if (end > bytes.length) fail(`chunk '${id}' at byte ${pos} runs past the end of the file`);
    if (id === 'fmt ') {
      if (size < 16) fail(`'fmt ' chunk is too short (${size} bytes)`);
      let format = view.getUint16(body, true);
      if (format === FORMAT_EXTENSIBLE) {
        if (size < 40) fail('WAVE_FORMAT_EXTENSIBLE header is too short');
        format = view.getUint16(body + 24, true); // first two bytes of the sub-format GUID
      }
      fmt = {
        format,
        channels: view.getUint16(body + 2, true),
        sampleRate: view.getUint32(body + 4, true),
        blockAlign: view.getUint16(body + 12, true),
        bits: view.getUint16(body + 14, true),
      };
    } else if (id === 'data') {
      data = bytes.subarray(body, end);
    }
    pos = end + (size % 2); // chunks are padded to even sizes
  }
  if (!fmt) return fail("no 'fmt ' chunk");
  if (!data) return fail("no 'data' chunk");
  const { format, channels, sampleRate, bits } = fmt;
  if (channels < 1) fail('channel count is 0');
  if (sampleRate < 1) fail('sample rate is 0');
  const bytesPerSample = bits / 8;
  const supported = (format === FORMAT_PCM && [8, 16, 24, 32].includes(bits)) || (format === FORMAT_FLOAT && (bits === 32 || bits === 64));
  if (!supported) fail(`unsupported sample format (format tag ${format}, ${bits} bits); expected PCM 8/16/24/32-bit or float 32/64-bit`);
  const frameBytes = bytesPerSample * channels;
  const frames = Math.floor(data.length / frameBytes);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const read = (at: number): number => {
    if (format === FORMAT_FLOAT) return bits === 32 ? dv.getFloat32(at, true) : dv.getFloat64(at, true);
    switch (bits) {
      case 8: return (dv.getUint8(at) - 128) / 128;
      case 16: return dv.getInt16(at, true) / 32768;
      case 24: {
        const v = dv.getUint8(at) | (dv.getUint8(at + 1) << 8) | (dv.getInt8(at + 2) << 16);
        return v / 8388608;
      }
      default: return dv.getInt32(at, true) / 2147483648;
    }
  };
  const samples = new Float32Array(frames);
  for (let f = 0; f < frames; f++) {
    let sum = 0;
    for (let c = 0; c < channels; c++) sum += read(f * frameBytes + c * bytesPerSample);
    samples[f] = sum / channels;
  }
  return { sampleRate, samples, sourceChannels: channels };
}

export function readWav(path: string): Waveform {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new AudioError(`cannot read '${path}': ${(e as Error).message}`);
  }
  return decodeWav(bytes, path);
}

/** Mono float samples → WAV bytes (16-bit PCM by default, or 32-bit float). */
export function encodeWav(samples: Float32Array, sampleRate: number, encoding: 'pcm16' | 'float32' = 'pcm16', channels = 1): Buffer {
  if (samples.length % channels !== 0) throw new AudioError(`encodeWav: ${samples.length} samples is not a multiple of ${channels} channels`);
  const bytesPerSample = encoding === 'pcm16' ? 2 : 4;
  const dataBytes = samples.length * bytesPerSample;
  const buf = Buffer.alloc(44 + dataBytes);
  buf.write('RIFF', 0, 'ascii');
  buf.writeUInt32LE(36 + dataBytes, 4);
  buf.write('WAVE', 8, 'ascii');
  buf.write('fmt ', 12, 'ascii');
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(encoding === 'pcm16' ? FORMAT_PCM : FORMAT_FLOAT, 20);
  buf.writeUInt16LE(channels, 22);
  buf.writeUInt32LE(sampleRate, 24);
  buf.writeUInt32LE(sampleRate * channels * bytesPerSample, 28);
  buf.writeUInt16LE(channels * bytesPerSample, 32);
  buf.writeUInt16LE(bytesPerSample * 8, 34);
  buf.write('data', 36, 'ascii');
  buf.writeUInt32LE(dataBytes, 40);
  for (let i = 0; i < samples.length; i++) {
    if (encoding === 'pcm16') buf.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(samples[i] * 32768))), 44 + 2 * i);
    else buf.writeFloatLE(samples[i], 44 + 4 * i);
  }
  return buf;
}

/**
 * Band-limited resampling with a Hann-windowed sinc (16 zero crossings each side). When down-sampling, the cutoff
 * moves to the new Nyquist frequency so that nothing aliases.
 */
export function resample(samples: Float32Array, fromRate: number, toRate: number): Float32Array {
  if (!(fromRate > 0) || !(toRate > 0)) throw new AudioError(`resample: invalid rates ${fromRate} → ${toRate}`);
  if (fromRate === toRate) return samples.slice();
  const ratio = toRate / fromRate;
  const outLength = Math.round(samples.length * ratio);
  const out = new Float32Array(outLength);
  const cutoff = Math.min(1, ratio) * 0.97; // a little below Nyquist to leave room for the window's transition band
  const zeros = 16;
  const halfWidth = zeros / cutoff; // in input samples
  // The kernel sinc(x · cutoff) · hann(x / halfWidth), tabulated finely and interpolated linearly.
  const perSample = 256;
  const table = new Float64Array(Math.ceil(halfWidth * perSample) + 2);
  for (let i = 0; i < table.length; i++) {
    const x = i / perSample;
    if (x >= halfWidth) break;
    const arg = Math.PI * x * cutoff;
    table[i] = (arg === 0 ? 1 : Math.sin(arg) / arg) * (0.5 + 0.5 * Math.cos((Math.PI * x) / halfWidth)) * cutoff;
  }
  for (let i = 0; i < outLength; i++) {
    const t = i / ratio; // position in input samples
    const j0 = Math.max(0, Math.ceil(t - halfWidth));
    const j1 = Math.min(samples.length - 1, Math.floor(t + halfWidth));
    let acc = 0;
    for (let j = j0; j <= j1; j++) {
      const u = Math.abs(t - j) * perSample;
      const k = Math.floor(u);
      const f = u - k;
      acc += samples[j] * (table[k] + (table[k + 1] - table[k]) * f);
    }
    out[i] = acc;
  }
  return out;
}

/** Read a WAV file as 16 kHz mono (resampling when needed). */
export function loadAudio16k(path: string): Float32Array {
  const wav = readWav(path);
  return wav.sampleRate === WHISPER_SAMPLE_RATE ? wav.samples : resample(wav.samples, wav.sampleRate, WHISPER_SAMPLE_RATE);
}

// ---- mel filters -----------------------------------------------------------------------------------------------

/** Slaney's mel scale (librosa htk=False): linear below 1 kHz, logarithmic above. */
export function hzToMel(hz: number): number {
  const fSp = 200 / 3;
  const minLogHz = 1000;
  const minLogMel = minLogHz / fSp;
  const logStep = Math.log(6.4) / 27;
  return hz < minLogHz ? hz / fSp : minLogMel + Math.log(hz / minLogHz) / logStep;
}

export function melToHz(mel: number): number {
  const fSp = 200 / 3;
  const minLogHz = 1000;
  const minLogMel = minLogHz / fSp;
  const logStep = Math.log(6.4) / 27;
  return mel < minLogMel ? mel * fSp : minLogHz * Math.exp(logStep * (mel - minLogMel));
}

/**
 * Triangular mel filters with Slaney area normalisation, row-major [nMels, nFft/2 + 1]
 * (librosa.filters.mel(sr, n_fft, n_mels) defaults, as Whisper uses).
 */
export function melFilterBank(nMels: number, nFft: number, sampleRate: number, fMin = 0, fMax = sampleRate / 2): Float32Array {
  const nBins = Math.floor(nFft / 2) + 1;
  const fftFreqs = Array.from({ length: nBins }, (_, k) => (k * sampleRate) / nFft);
  const melMin = hzToMel(fMin);
  const melMax = hzToMel(fMax);
  const points = Array.from({ length: nMels + 2 }, (_, i) => melToHz(melMin + ((melMax - melMin) * i) / (nMels + 1)));
  const bank = new Float32Array(nMels * nBins);
  for (let m = 0; m < nMels; m++) {
    const lo = points[m], center = points[m + 1], hi = points[m + 2];
    const norm = 2 / (hi - lo);
    for (let k = 0; k < nBins; k++) {
      const rising = (fftFreqs[k] - lo) / (center - lo);
      const falling = (hi - fftFreqs[k]) / (hi - center);
      bank[m * nBins + k] = Math.max(0, Math.min(rising, falling)) * norm;
    }
  }
  return bank;
}

// ---- FFT --------------------------------------------------------------------------------------------------------

const twiddleCache = new Map<number, { cos: Float64Array; sin: Float64Array }>();

/** exp(-2πi·t/n) for t = 0..n-1. */
function twiddles(n: number): { cos: Float64Array; sin: Float64Array } {
  let t = twiddleCache.get(n);
  if (!t) {
    t = { cos: new Float64Array(n), sin: new Float64Array(n) };
    for (let i = 0; i < n; i++) {
      t.cos[i] = Math.cos((-2 * Math.PI * i) / n);
      t.sin[i] = Math.sin((-2 * Math.PI * i) / n);
    }
    twiddleCache.set(n, t);
  }
  return t;
}

/** Mixed-radix complex DFT (recursive Cooley–Tukey over the smallest prime factors); n = 400 is 2⁴·5². */
export function fftInPlace(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  if (n <= 1) return;
  let p = 2;
  while (p * p <= n && n % p !== 0) p++;
  if (n % p !== 0) p = n; // prime length: plain DFT below
  const m = n / p;
  const subRe: Float64Array[] = [];
  const subIm: Float64Array[] = [];
  for (let r = 0; r < p; r++) {
    const sr = new Float64Array(m);
    const si = new Float64Array(m);
    for (let j = 0; j < m; j++) {
      sr[j] = re[j * p + r];
      si[j] = im[j * p + r];
    }
    if (m > 1) fftInPlace(sr, si);
    subRe.push(sr);
    subIm.push(si);
  }
  const { cos, sin } = twiddles(n);
  for (let k = 0; k < n; k++) {
    const km = k % m;
    let accRe = 0, accIm = 0;
    for (let r = 0; r < p; r++) {
      const t = (r * k) % n;
      const c = cos[t], s = sin[t];
      const xr = subRe[r][km], xi = subIm[r][km];
      accRe += xr * c - xi * s;
      accIm += xr * s + xi * c;
    }
    re[k] = accRe;
    im[k] = accIm;
  }
}

// ---- log-mel -----------------------------------------------------------------------------------------------------

export interface LogMelOptions {
  /** Default 80 (Whisper large-v3 uses 128). */
  nMels?: number;
  nFft?: number;
  hopLength?: number;
  sampleRate?: number;
  /** Zero-pad or trim the waveform to this many seconds first (Whisper uses 30 → 3000 frames). Default: as is. */
  padOrTrimSeconds?: number;
}

export interface LogMel {
  /** [1, n_mels, frames] */
  dims: [1, number, number];
  data: Float32Array;
}

/** numpy-style 'reflect' index (edge not repeated), valid for any offset. */
function reflectIndex(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  let j = ((i % period) + period) % period;
  if (j >= n) j = period - j;
  return j;
}

/** Whisper log-mel spectrogram of 16 kHz mono samples. */
export function logMelSpectrogram(input: Float32Array, opts: LogMelOptions = {}): LogMel {
  const nMels = opts.nMels ?? 80;
  const nFft = opts.nFft ?? 400;
  const hop = opts.hopLength ?? 160;
  const sampleRate = opts.sampleRate ?? WHISPER_SAMPLE_RATE;
  let samples = input;
  if (opts.padOrTrimSeconds !== undefined) {
    const target = Math.round(opts.padOrTrimSeconds * sampleRate);
    samples = new Float32Array(target);
    samples.set(input.subarray(0, Math.min(target, input.length)));
  }
  if (samples.length < hop) throw new AudioError(`log-mel: ${samples.length} samples is shorter than one hop (${hop})`);
  const frames = Math.floor(samples.length / hop); // 1 + ⌊N/hop⌋ centred frames, the last one dropped
  const nBins = Math.floor(nFft / 2) + 1;
  const window = new Float64Array(nFft);
  for (let i = 0; i < nFft; i++) window[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / nFft); // periodic Hann
  const bank = melFilterBank(nMels, nFft, sampleRate);
  // Each triangle covers a few bins only: remember where its non-zero weights start and end.
  const first = new Int32Array(nMels), last = new Int32Array(nMels);
  for (let m = 0; m < nMels; m++) {
    first[m] = nBins;
    last[m] = 0;
    for (let k = 0; k < nBins; k++) {
      if (bank[m * nBins + k] !== 0) {
        first[m] = Math.min(first[m], k);
        last[m] = k + 1;
      }
    }
  }
  const out = new Float32Array(nMels * frames);
  const re = new Float64Array(nFft);
  const im = new Float64Array(nFft);
  const power = new Float64Array(nBins);
  const half = Math.floor(nFft / 2);
  let maxLog = -Infinity;
  for (let f = 0; f < frames; f++) {
    const start = f * hop - half;
    for (let i = 0; i < nFft; i++) {
      re[i] = samples[reflectIndex(start + i, samples.length)] * window[i];
      im[i] = 0;
    }
    fftInPlace(re, im);
    for (let k = 0; k < nBins; k++) power[k] = re[k] * re[k] + im[k] * im[k];
    for (let m = 0; m < nMels; m++) {
      let acc = 0;
      const row = m * nBins;
      for (let k = first[m]; k < last[m]; k++) acc += bank[row + k] * power[k];
      const v = Math.log10(Math.max(acc, 1e-10));
      out[m * frames + f] = v;
      if (v > maxLog) maxLog = v;
    }
  }
  const floor = maxLog - 8;
  for (let i = 0; i < out.length; i++) out[i] = (Math.max(out[i], floor) + 4) / 4;
  return { dims: [1, nMels, frames], data: out };
}

/** WAV file → Whisper `input_features` [1, n_mels, frames]; errors name the file. */
export function wavToLogMel(path: string, opts: LogMelOptions = {}): LogMel {
  const samples = loadAudio16k(path);
  try {
    return logMelSpectrogram(samples, { ...opts, sampleRate: WHISPER_SAMPLE_RATE });
  } catch (e) {
    throw new AudioError(`'${path}': ${(e as Error).message}`);
  }
}
