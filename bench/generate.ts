// bench/generate.ts — generation speed on a Transformers.js / Optimum ONNX folder: Composer (vlmc import's graph run
// by the executor, KV cache over the imported decoder's past_key_values → present ports) against
// @huggingface/transformers (AutoModelForCausalLM.generate) on the same folder, the same prompt, the same onnxruntime
// thread count, greedy, the same number of new tokens, repetitions interleaved. Not a test.
//
//   npx tsx bench/generate.ts [--folder DIR] [--model-file model|decoder_model_merged] [--tokens 64] [--reps 10]
//                             [--warmup 2] [--threads 2] [--json]
//
// Each repetition times one generation (prompt forward + every new token) with the sessions already built — for
// Composer the decoder node's execution in an executor run, for Transformers.js model.generate on tokenized input;
// tokens/s = new tokens / that time. Both are made to produce exactly --tokens tokens (Composer: no stop token;
// Transformers.js: min_new_tokens), and the first tokens of both are compared as a sanity check.

import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import type { GraphDocument } from '../electron/engine/document.js';
import { Executor } from '../electron/engine/executor.js';
import { tensorToNumbers } from '../electron/onnx/ir.js';
import { importHfFolder } from '../electron/formats/hf/import.js';

const argsSchema = z.object({
  folder: z.string().default(join(import.meta.dirname, '..', 'electron', 'formats', 'onnx-folder', 'testdata', 'llama')),
  'model-file': z.enum(['model', 'decoder_model_merged']).default('model'),
  tokens: z.coerce.number().int().positive().default(64),
  reps: z.coerce.number().int().positive().default(10),
  warmup: z.coerce.number().int().nonnegative().default(2),
  threads: z.coerce.number().int().positive().default(2),
  prompt: z.string().default('the red circle is on the left of the blue square and'),
  json: z.boolean().default(false),
});

function parse(argv: string[]): z.infer<typeof argsSchema> {
  const raw: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument '${a}'`);
    const key = a.slice(2);
    if (key === 'json') raw.json = true;
    else raw[key] = argv[++i] ?? '';
  }
  return argsSchema.parse(raw);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const folder = resolve(o.folder);

  // Composer: the imported graph, never stopping early (an eos id no token has), greedy.
  const { doc } = importHfFolder(folder);
  const llm = doc.nodes.find((n) => n.id === 'llm');
  if (!llm) throw new Error(`${folder}: the imported graph has no decoder node`);
  const executor = new Executor({ intraOpThreads: o.threads });
  const variant = (rep: number): GraphDocument => {
    const copy = structuredClone(doc);
    const node = copy.nodes.find((n) => n.id === 'llm')!;
    const p = node.params as { generation: Record<string, unknown> };
    // sample_seed does not change greedy tokens but makes each repetition a new computation (no output cache hit).
    p.generation = { ...p.generation, max_new_tokens: o.tokens, eos_token_ids: [2 ** 31 - 1], temperature: 0, sample_seed: rep, max_positions: null };
    return copy;
  };
  let composerTokens: number[] = [];
  const wholeRuns: number[] = [];
  const composerRun = async (rep: number): Promise<number> => {
    // The decoder node's execution (prompt forward + every token): from its 'started' to its 'computed' event, so
    // graph validation and the tokenizer host step (which Transformers.js does before generate) are not counted.
    let started = 0;
    let ms = 0;
    const t0 = performance.now();
    const res = await executor.run(variant(rep), {
      baseDir: folder,
      inputs: { prompt: { text: o.prompt } },
      onEvent: (e) => {
        if (e.type === 'started' && e.node === 'llm') started = performance.now();
        if (e.type === 'computed' && e.node === 'llm') ms = performance.now() - started;
      },
    });
    wholeRuns.push(performance.now() - t0);
    const ids = res.outputs.llm.generated_ids;
    if (typeof ids === 'string') throw new Error('no generated ids');
    composerTokens = Array.from(tensorToNumbers(ids));
    if (composerTokens.length !== o.tokens) throw new Error(`Composer generated ${composerTokens.length} tokens, expected ${o.tokens}`);
    return ms;
  };

  // Transformers.js on the same folder (local files only), the same thread count.
  const { AutoModelForCausalLM, AutoTokenizer, env } = await import('@huggingface/transformers');
  env.allowRemoteModels = false;
  env.localModelPath = resolve(folder, '..');
  const name = folder.split('/').pop()!;
  const tokenizer = await AutoTokenizer.from_pretrained(name, { local_files_only: true });
  const model = await AutoModelForCausalLM.from_pretrained(name, {
    local_files_only: true,
    dtype: 'fp32',
    model_file_name: o['model-file'],
    session_options: { intraOpNumThreads: o.threads, interOpNumThreads: 1 },
  });
  const inputs = tokenizer(o.prompt);
  let tjsTokens: number[] = [];
  const tjsRun = async (): Promise<number> => {
    const t0 = performance.now();
    const out = await model.generate({ ...inputs, max_new_tokens: o.tokens, min_new_tokens: o.tokens, do_sample: false });
    const ms = performance.now() - t0;
    const all = Array.from((out as { data: BigInt64Array }).data, Number);
    tjsTokens = all.slice(all.length - o.tokens);
    return ms;
  };

  for (let i = 0; i < o.warmup; i++) {
    await composerRun(1000 + i);
    await tjsRun();
  }
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let r = 0; r < o.reps; r++) {
    // Interleaved, alternating which goes first, so load changes on the shared machine hit both alike.
    if (r % 2 === 0) {
      ours.push(await composerRun(r));
      theirs.push(await tjsRun());
    } else {
      theirs.push(await tjsRun());
      ours.push(await composerRun(r));
    }
  }
  await model.dispose();
  await executor.dispose();

  const oursTps = o.tokens / (median(ours) / 1000);
  const theirsTps = o.tokens / (median(theirs) / 1000);
  let agree = 0;
  while (agree < o.tokens && composerTokens[agree] === tjsTokens[agree]) agree++;
  const row = {
    folder: name,
    modelFile: `onnx/${o['model-file']}.onnx`,
    newTokens: o.tokens,
    reps: o.reps,
    threads: o.threads,
    composerMedianMs: Math.round(median(ours) * 10) / 10,
    composerWholeRunMedianMs: Math.round(median(wholeRuns) * 10) / 10,
    transformersJsMedianMs: Math.round(median(theirs) * 10) / 10,
    composerTokensPerS: Math.round(oursTps),
    transformersJsTokensPerS: Math.round(theirsTps),
    ratio: Math.round((oursTps / theirsTps) * 100) / 100,
    sameFirstTokens: agree,
    loadavg: loadavg()[0].toFixed(2),
  };
  if (o.json) {
    console.log(JSON.stringify(row));
    return;
  }
  console.log(`generation, ${row.folder} (${row.modelFile}), ${o.tokens} new tokens, greedy, ${o.threads} threads, median of ${o.reps} interleaved reps (load ${row.loadavg})`);
  console.log(`  Composer         ${row.composerMedianMs} ms  ${row.composerTokensPerS} tokens/s   (whole graph run with tokenizer and validation: ${row.composerWholeRunMedianMs} ms)`);
  console.log(`  Transformers.js  ${row.transformersJsMedianMs} ms  ${row.transformersJsTokensPerS} tokens/s`);
  console.log(`  ratio (Composer / Transformers.js tokens/s): ${row.ratio}   (aim ≥ 1.0)`);
  console.log(`  the first ${agree} of ${o.tokens} tokens agree (Transformers.js suppresses eos until ${o.tokens} tokens; Composer has no stop token)`);
}

main().catch((e: unknown) => {
  console.error(`bench/generate: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
