// The contract every architecture file (`architectures/<arch>.ts`) implements: both directions of one Hugging Face
// architecture's mapping onto our node types — config keys → node params and a graph, and state-dict names → node
// weight names. A newcomer looking for "how does LLaVA import" opens `llava.ts`.

import type { DocEdge, DocNode, GraphDocument } from '../../../engine/document.js';
import type { Tensor } from '../../../onnx/ir.js';
import type { HfModelFolder } from '../folder.js';

/** One weight of a node, read from the folder: which HF tensors it comes from and how. */
export interface MappedWeight {
  /** HF state-dict names this weight is made of (for errors, and to find tensors no node uses). */
  from: string[];
  /** Reads and transforms them (positioned reads: nothing is loaded until the node builds). */
  read(): Tensor;
  /** The float32 result's shape when known without reading (the node's own weight shape): the engine then reads it lazily. */
  dims?: number[];
  /** read()'s float32 bytes in pieces, for a weight that is one folder tensor as stored (a session streams it). */
  stream?(write: (bytes: Uint8Array) => void): void;
}

/** A node's weights out of a folder: our initializer name → where it comes from. */
export type NodeWeightMap = Map<string, MappedWeight>;

/**
 * A part of an architecture that one node holds (`'decoder'`, `'embed'`, `'vision'`, …). The graph's node stores
 * `weights: {path: <folder>, hf: {architecture, part, fingerprint}}`; the engine calls `weights` when it builds
 * the node, so weights stay in their files and graph files stay small.
 */
export interface HfPart {
  weights(folder: HfModelFolder, params: Record<string, unknown>): NodeWeightMap;
  /** Folder tensors this part accepts without using them: duplicates of mapped ones (a tied head saved anyway). */
  duplicates?(folder: HfModelFolder, params: Record<string, unknown>): string[];
}

/** A node of the imported graph before the import gives it its weights reference. */
export interface ImportedNode {
  id: string;
  type: string;
  params: Record<string, unknown>;
  frozen?: boolean;
  /** The architecture part whose weights this node holds (none for host nodes such as the tokenizer). */
  part?: string;
  /** Canvas position. */
  position: { x: number; y: number };
}

/** What an architecture makes of a folder. */
export interface ImportedGraph {
  /** Graph name shown in the app, e.g. "LLaVA (llava-hf/llava-1.5-7b-hf)". */
  name: string;
  nodes: ImportedNode[];
  edges: DocEdge[];
  /** Titled canvas groups (e.g. "Vision tower (frozen)"). */
  groups?: Array<{ id: string; title: string; nodeIds: string[] }>;
  /** Things the user should know (skipped buffers, defaults taken, simplifications). */
  notes: string[];
}

export interface ImportContext {
  /** Folder path as graph nodes should reference it (relative to where the graph file will be written, or absolute). */
  folderRef: string;
}

// ---------------------------------------------------------------------------------------------------------------
// The export direction (`vlmc export --format hf`): a graph → config.json + which node weight becomes which tensor.

/** The graph being exported, as an architecture file sees it. */
export interface HfExportSource {
  doc: GraphDocument;
  /** A node's params with every default filled in (zod-parsed), for reading dims. */
  params(id: string): Record<string, unknown>;
  /** Special-token ids of a tokenizer param's tokenizer.json (and the tokenizer_config.json beside it). */
  specialTokens(tokenizer: string): { bos?: number; eos?: number; pad?: number };
}

/** One node whose weights become checkpoint tensors. */
export interface HfExportPart {
  node: string;
  /** The architecture part (`'decoder'`, `'vision'`, …), the same names the import's `parts` use. */
  part: string;
  /** Our weight name → the state-dict name save_pretrained writes; null for one it does not save (a tied head). */
  toHf(ours: string): string | null;
  /** Reshapes the node's weights before naming them, still in our names (EVA's q_bias + v_bias → one fused qkv bias). */
  fuse?(weights: Map<string, Tensor>): Map<string, Tensor>;
}

/** What an architecture makes of a graph it recognises. */
export interface HfExportPlan {
  /** config.json without torch_dtype / transformers_version (the writer adds those). */
  config: Record<string, unknown>;
  parts: HfExportPart[];
  /** generation_config.json (language models). */
  generation?: Record<string, unknown>;
  /** The node whose `tokenizer` param names the tokenizer.json to ship. */
  tokenizerNode?: string;
  /** Tensors no node holds as a weight (CLIP's logit_scale, read from the zero-shot head's params). */
  extraTensors?: Map<string, Tensor>;
  /** Two token ids the shipped tokenizer.json trades (see clip.ts: an eos id transformers would misread). */
  tokenIdSwap?: [number, number];
  /** The shipped tokenizer's post-processor must append the end-of-text token (a text.labels node did it itself). */
  tokenizerAppendsEos?: boolean;
  /** Further tokenizers to ship in sub-folders (InstructBLIP's qformer_tokenizer/): the node whose `tokenizer` param names it. */
  subTokenizers?: Array<{ node: string; dir: string }>;
  /** Chat template to put in tokenizer_config.json (the graph's prompt.chat template). */
  chatTemplate?: string;
  /** The io.image node whose params become preprocessor_config.json, and the processor class to name. */
  image?: { node: string; processorClass?: string; imageProcessorType: string; processor?: Record<string, unknown> };
  /** Things the user should know (what the folder simplifies or leaves out). */
  notes: string[];
}

export interface HfArchitecture {
  /** File name and the `hf.architecture` value stored in graphs: 'llama', 'clip', … */
  id: string;
  /** `config.architectures[0]` class names this file imports. */
  classes: readonly string[];
  /** `config.model_type` values (used when `architectures` is absent). */
  modelTypes: readonly string[];
  toGraph(folder: HfModelFolder, ctx: ImportContext): ImportedGraph;
  parts: Record<string, HfPart>;
  /**
   * The export direction: the config and tensor names of a graph of this architecture's shape, or undefined when the
   * graph is not one (the exporter then tries the next architecture).
   */
  fromGraph?(src: HfExportSource): HfExportPlan | undefined;
}

/** The imported node as it lands in the graph document. */
export type ImportedDocNode = DocNode;
