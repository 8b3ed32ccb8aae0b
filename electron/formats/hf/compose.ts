// `vlmc import VISION_DIR LLM_DIR --as llava`: a VLM built from two pretrained folders, as LLaVA was made — a CLIP
// vision tower and a LLaMA-family LLM (both frozen, read where they lie) joined by a new MLP projector that
// `llava-stage1` trains. What the app does when both folders are dropped on the canvas and wired by hand.

import { relative, resolve } from 'node:path';
import { type GraphDocument, graphDocumentFromJson } from '../../engine/document.js';
import { validateDocument } from '../../engine/validate.js';
import { openHfFolder } from './folder.js';
import { architectureFor } from './architectures/index.js';
import { causalLmParams, configEos, generationParams, textGenerationNodes } from './architectures/causal-lm.js';
import { clipVisionTowerParams, imageInputParams, subConfig } from './architectures/clip.js';
import { ArchitectureError, ConfigReader, configClass, folderDisplayName } from './architectures/mapping.js';
import type { ImportedNode } from './architectures/types.js';
import { mapFolderWeights } from './import.js';

export const COMPOSITIONS = ['llava'] as const;
export type Composition = (typeof COMPOSITIONS)[number];

export interface ComposeResult {
  doc: GraphDocument;
  notes: string[];
}

/** A LLaVA-style graph from a CLIP vision folder and a causal-LM folder; the projector starts from the seed. */
export function composeLlava(visionDir: string, llmDir: string, opts: { graphDir?: string } = {}): ComposeResult {
  const ref = (dir: string) => (opts.graphDir ? relative(resolve(opts.graphDir), dir) || '.' : dir);
  const visionFolder = openHfFolder(resolve(visionDir));
  const llmFolder = openHfFolder(resolve(llmDir));
  const visionArch = architectureFor(visionFolder.config);
  const llmArch = architectureFor(llmFolder.config);
  const visionClass = configClass(visionFolder.config) ?? String(visionFolder.config.model_type);
  if (visionArch.id !== 'clip' || visionClass.startsWith('CLIPText')) {
    throw new ArchitectureError(`${visionDir}: a LLaVA vision tower must be a CLIP vision model (CLIPModel or CLIPVisionModel), not ${visionClass}`);
  }
  if (!llmArch.parts.decoder || !llmArch.parts.embed || llmArch.id === 'llava') {
    throw new ArchitectureError(`${llmDir}: the language model must be a causal LM (${['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'OPTForCausalLM', 'GPT2LMHeadModel'].join(', ')}), not ${configClass(llmFolder.config)}`);
  }

  const vc = new ConfigReader(visionFolder.config);
  const tower = clipVisionTowerParams(visionClass === 'CLIPModel' ? subConfig(vc, 'vision_config') : vc);
  const layers = tower.params.num_layers as number;
  // LLaVA-1.5 reads the penultimate layer; a one-layer tower has only its last.
  const featureLayer = layers > 1 ? -2 : -1;
  const visionParams = { ...tower.params, projection: false, feature_layer: featureLayer, select: 'patch' };
  const lc = new ConfigReader(llmFolder.config);
  const lm = causalLmParams(lc, lc.str('model_type'));
  const patches = (tower.imageSize / tower.patchSize) ** 2;
  const notes: string[] = [
    `the projector (projector.mlp, ${tower.hiddenSize} → ${String(lm.decoder.hidden_size)}, auto widths) starts from the seed: train it with 'vlmc train GRAPH --recipe llava-stage1'`,
    // A new LLM has no <image> token; placing the features before the prompt also lets a projector with another
    // token count (a Q-Former's queries) replace the MLP without touching the prompt.
    `the ${patches} image features go before the prompt (prefix merge), so any projector can replace the MLP`,
  ];

  const text = textGenerationNodes(llmFolder, {
    x: 300,
    y: 320,
    prompt: '',
    decoder: { ...lm.decoder, ...generationParams(llmFolder, configEos(lc)) },
    embed: lm.embed,
    template: { kind: 'instruction', template: 'USER: {input} ASSISTANT:' },
    merge: { mode: 'prefix' },
    folderRef: ref(llmFolder.dir),
  });
  const visionNodes: ImportedNode[] = [
    { id: 'image', type: 'io.image', params: imageInputParams(visionFolder, tower.imageSize), position: { x: 0, y: 0 } },
    { id: 'vit', type: 'encoder.clip_vit', params: visionParams, frozen: true, part: 'vision', position: { x: 300, y: 0 } },
    { id: 'proj', type: 'projector.mlp', params: { depth: 2, act: 'gelu' }, position: { x: 600, y: 0 } },
  ];
  // Checked now (names and shapes from the headers), not at the first run.
  mapFolderWeights(visionFolder, visionArch, visionNodes);
  mapFolderWeights(llmFolder, llmArch, text.nodes);

  const weightsOf = (n: ImportedNode) => {
    if (!n.part) return {};
    const folder = n.part === 'vision' ? visionFolder : llmFolder;
    const arch = n.part === 'vision' ? visionArch : llmArch;
    return { weights: { path: ref(folder.dir), hf: { architecture: arch.id, part: n.part, fingerprint: folder.weights.fingerprint } } };
  };
  const nodes = [...visionNodes, ...text.nodes];
  const raw = {
    format: 'composer.graph',
    version: 1,
    name: `LLaVA from ${folderDisplayName(visionFolder.dir)} + ${folderDisplayName(llmFolder.dir)}`,
    seed: 0,
    nodes: nodes.map((n) => ({ id: n.id, type: n.type, typeVersion: 1, params: n.params, frozen: n.frozen ?? false, adapters: [], ...weightsOf(n) })),
    edges: [
      { from: { node: 'image', port: 'pixel_values' }, to: { node: 'vit', port: 'pixel_values' } },
      { from: { node: 'vit', port: 'vision_features' }, to: { node: 'proj', port: 'vision_features' } },
      { from: { node: 'proj', port: 'image_features' }, to: { node: 'merge', port: 'image_features' } },
      ...text.edges,
    ],
    ui: {
      positions: Object.fromEntries(nodes.map((n) => [n.id, n.position])),
      groups: [
        { id: 'vision', title: `Vision tower (${folderDisplayName(visionFolder.dir)}, frozen)`, nodeIds: ['image', 'vit'] },
        { id: 'lm', title: `Language model (${folderDisplayName(llmFolder.dir)}, frozen)`, nodeIds: ['embed', 'merge', 'llm'] },
      ],
    },
  };
  const doc = graphDocumentFromJson(raw, 'composed LLaVA');
  const problems = validateDocument(doc).filter((d) => d.severity === 'error');
  if (problems.length) throw new ArchitectureError(`the composed LLaVA graph is not valid: ${problems.map((p) => p.message).join('; ')}`);
  return { doc, notes: [...lm.notes, ...notes] };
}

