// `vlmc import DIR` for Transformers.js / Optimum ONNX folders: reads the layout, picks one precision, checks every
// graph (external data inside the folder, the ports generation needs, ops onnxruntime's CPU kernels run) and writes
// a graph of imported nodes wired with the folder's tokenizer and generation defaults.

import { basename, join, relative, resolve } from 'node:path';
import { graphDocumentFromJson } from '../../engine/document.js';
import { importedDecoderSpec } from '../../engine/imported-generation.js';
import { validateDocument } from '../../engine/validate.js';
import { inferShapes } from '../../onnx/shapes.js';
import { type ImportedGenerationParams, describeImportedModel, importedGenerationParams } from '../../nodes/imported.js';
import { imageInputParams } from '../hf/architectures/towers.js';
import type { ImportOptions, ImportResult } from '../hf/import.js';
import { eosIdsOf, maxPositionsOf, readOnnxConfigs } from './configs.js';
import { folderGraph } from './graph.js';
import { checkGraphFile } from './checks.js';
import { type GraphRole, OnnxFolderError, availablePrecisions, pickPrecision, readLayout } from './layout.js';

export interface OnnxImportOptions extends ImportOptions {
  /** fp32 (default when present), fp16, q8 (model_quantized), int8, uint8, q4, q4f16, bnb4. */
  precision?: string;
}

function generationDefaults(gen: ReturnType<typeof readOnnxConfigs>['generation'], eos: number[] | undefined, tokenizer: string, maxPositions: number | undefined): ImportedGenerationParams {
  const sampling = gen?.do_sample ? { temperature: gen.temperature ?? 1, top_k: gen.top_k ?? 50, top_p: gen.top_p ?? 1 } : {};
  return importedGenerationParams.parse({
    tokenizer,
    max_new_tokens: gen?.max_new_tokens && gen.max_new_tokens > 0 ? gen.max_new_tokens : 32,
    ...sampling,
    eos_token_ids: eos && eos.length ? eos : null,
    max_positions: maxPositions ?? null,
  });
}

/** A special token of tokenizer_config.json as text (a string, or an AddedToken object's content). */
function specialText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return '';
}

export function importOnnxFolder(dir: string, opts: OnnxImportOptions = {}): ImportResult {
  const abs = resolve(dir);
  const layout = readLayout(abs);
  const configs = readOnnxConfigs(abs);
  const notes: string[] = [];
  const isVlm = layout.graphs.has('vision_encoder');
  let roles: GraphRole[];
  if (isVlm) {
    for (const r of ['embed_tokens', 'decoder_model_merged'] as const) {
      if (!layout.graphs.has(r)) throw new OnnxFolderError(`${abs}: onnx/vision_encoder.onnx needs onnx/${r}.onnx beside it (a split VLM is vision_encoder + embed_tokens + decoder_model_merged)`);
    }
    roles = ['vision_encoder', 'embed_tokens', 'decoder_model_merged'];
  } else if (layout.graphs.has('model')) {
    roles = ['model'];
  } else if (layout.graphs.has('decoder_model_merged')) {
    roles = layout.graphs.has('embed_tokens') ? ['embed_tokens', 'decoder_model_merged'] : ['decoder_model_merged'];
  } else {
    throw new OnnxFolderError(`${abs}: onnx/ has no model.onnx, decoder_model_merged.onnx or vision_encoder.onnx (it has ${[...layout.others].join(', ') || 'no usable graph'})`);
  }
  const { precision, files } = pickPrecision(layout, roles, opts.precision);
  const precisions = availablePrecisions(layout, roles);
  if (precisions.length > 1) notes.push(`precision ${precision} (the folder also offers ${precisions.filter((p) => p !== precision).join(', ')}; pick one with --precision)`);
  if (!configs.tokenizerJson) throw new OnnxFolderError('tokenizer.json: missing (a language model needs its tokenizer to run)');

  const graphDir = opts.graphDir ? resolve(opts.graphDir) : undefined;
  const ref = (absPath: string) => (graphDir ? relative(graphDir, absPath) || '.' : absPath);
  // model.onnx_import resolves its path where the process runs (ports are read before any run has a base folder),
  // so the graphs — and the decoder's tokenizer, which a trained copy of the graph elsewhere must still find — are
  // referenced by absolute path; the tokenizer node's path is relative to the graph's folder, as for HF imports.
  const onnxRef = (absPath: string) => absPath;

  // Every graph: parsed (external data confined to the folder), ops checked, ports described.
  let parameters = 0;
  const dtypes = new Set<string>();
  const checks = new Map<GraphRole, ReturnType<typeof checkGraphFile>>();
  for (const role of roles) {
    const check = checkGraphFile(join(abs, files[role]), files[role]);
    checks.set(role, check);
    parameters += check.parameters;
    for (const d of check.dtypes) dtypes.add(d);
    notes.push(...check.notes);
  }
  const decoderRole = roles.includes('decoder_model_merged') ? 'decoder_model_merged' : 'model';
  const decoderFile = join(abs, files[decoderRole]);
  const decoderInfo = describeImportedModel(decoderFile);
  let spec: ReturnType<typeof importedDecoderSpec>;
  try {
    spec = importedDecoderSpec(checks.get(decoderRole)!.model.graph, files[decoderRole]);
  } catch (e) {
    throw new OnnxFolderError((e as Error).message);
  }
  if (decoderInfo.inputs.some((p) => p.name === 'use_cache_branch')) notes.push(`${files[decoderRole]}: merged decoder; its If runs on use_cache_branch (false for the prompt, true once the cache holds it)`);

  const maxPositions = maxPositionsOf(configs.config);
  const generation = generationDefaults(configs.generation, eosIdsOf(configs), onnxRef(configs.tokenizerJson), maxPositions);
  const name = basename(abs);
  let vlm: Parameters<typeof folderGraph>[0]['vlm'];
  if (isVlm) {
    const imageTokenId = configs.config.image_token_index ?? configs.config.image_token_id;
    if (imageTokenId === undefined) throw new OnnxFolderError('config.json: a VLM folder needs image_token_index (the id whose positions receive the image features)');
    const vision = describeImportedModel(join(abs, files.vision_encoder));
    const pixel = vision.inputs.find((p) => p.name === 'pixel_values');
    if (!pixel) throw new OnnxFolderError(`${files.vision_encoder}: has no 'pixel_values' input (inputs: ${vision.inputs.map((p) => p.name).join(', ')})`);
    const feats = vision.outputs.find((p) => p.name === 'image_features') ?? vision.outputs[0];
    const size = pixel.shape?.[2];
    if (typeof size !== 'number' || pixel.shape?.[3] !== size) throw new OnnxFolderError(`${files.vision_encoder}: input 'pixel_values' must be [batch, 3, size, size] with a known size`);
    // The feature count, as shape inference gives it for one picture (exporters often leave the dim symbolic).
    let n: number | null | undefined;
    try {
      n = inferShapes(checks.get('vision_encoder')!.model, { pixel_values: [1, 3, size, size] }).get(feats?.name ?? '')?.shape?.[1] as number | null | undefined;
    } catch {
      n = undefined;
    }
    if (!feats || typeof n !== 'number') throw new OnnxFolderError(`${files.vision_encoder}: output '${feats?.name ?? 'image_features'}' must be [batch, tokens, hidden] with a token count shape inference can tell`);
    const embed = describeImportedModel(join(abs, files.embed_tokens));
    if (!embed.inputs.some((p) => p.name === 'input_ids') || !embed.outputs.some((p) => p.name === 'inputs_embeds')) {
      throw new OnnxFolderError(`${files.embed_tokens}: must map 'input_ids' → 'inputs_embeds' (ports: ${[...embed.inputs, ...embed.outputs].map((p) => p.name).join(', ')})`);
    }
    const tokens = configs.tokenizerConfig?.added_tokens_decoder;
    const imageToken = (tokens && Object.entries(tokens).find(([id]) => Number(id) === imageTokenId)?.[1]?.content) ?? '<image>';
    vlm = {
      visionPath: onnxRef(join(abs, files.vision_encoder)),
      embedPath: onnxRef(join(abs, files.embed_tokens)),
      imageParams: imageInputParams({ preprocessorConfig: configs.preprocessor }, size),
      imageTokenId,
      imageToken,
      imageTokens: n,
      featuresPort: feats.name,
    };
    notes.push(`the prompt is "${imageToken}\\n{input}"; ${imageToken} (id ${imageTokenId}) expands to the ${n} image features of ${files.vision_encoder}, scattered into embed_tokens' output`);
  }
  const chatSource = configs.tokenizerConfig?.chat_template;
  const chat = typeof chatSource === 'string' && chatSource.trim() ? chatSource : undefined;
  const g = folderGraph({
    decoderPath: onnxRef(decoderFile),
    tokenizerPath: ref(configs.tokenizerJson),
    decoderInput: spec.input ?? 'inputs_embeds',
    generation,
    maxLength: maxPositions ?? 2048,
    title: `${configs.config.architectures?.[0] ?? configs.config.model_type} — ONNX folder ${name} (${precision})`,
    vlm,
    embedPath: roles.includes('embed_tokens') ? onnxRef(join(abs, files.embed_tokens)) : undefined,
    chat: chat ? { template: chat, bos: specialText(configs.tokenizerConfig?.bos_token), eos: specialText(configs.tokenizerConfig?.eos_token) } : undefined,
  });
  if (chat && !isVlm) notes.push("the prompt goes through the folder's chat template (tokenizer_config.json chat_template), tokenized without extra special tokens as apply_chat_template does");
  const raw = {
    format: 'composer.graph',
    version: 1,
    name: `${configs.config.architectures?.[0] ?? configs.config.model_type} (${name}, ONNX ${precision})`,
    seed: 0,
    nodes: g.nodes.map((n) => ({ id: n.id, type: n.type, typeVersion: 1, params: n.params, frozen: n.frozen ?? false, adapters: [] })),
    edges: g.edges,
    ui: { positions: Object.fromEntries(g.nodes.map((n) => [n.id, n.position])), groups: g.groups },
  };
  const doc = graphDocumentFromJson(raw, `${name} (imported)`);
  const problems = validateDocument(doc).filter((d) => d.severity === 'error');
  if (problems.length) throw new OnnxFolderError(`the graph imported from ${abs} is not valid: ${problems.map((p) => p.message).join('; ')}`);
  const weightBytes = roles.reduce((sum, r) => sum + (layout.files.find((f) => f.name === files[r])?.bytes ?? 0), 0);
  return {
    doc,
    notes,
    summary: {
      dir: abs,
      name,
      architecture: `onnx:${configs.config.model_type}`,
      class: configs.config.architectures?.[0] ?? configs.config.model_type,
      parameters,
      dtypes: [...dtypes],
      weightBytes,
      files: layout.files,
    },
    onnx: { precision, precisions, graphs: files },
  };
}
