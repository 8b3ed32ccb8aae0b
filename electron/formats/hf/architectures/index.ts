// The architectures Composer imports from Hugging Face folders, one file each; this list is the only registry.

import { ArchitectureError, configClass } from './mapping.js';
import type { HfArchitecture } from './types.js';
import { gpt2 } from './gpt2.js';
import { llama } from './llama.js';
import { mistral } from './mistral.js';
import { opt } from './opt.js';
import { qwen2 } from './qwen2.js';
import { bert } from './bert.js';
import { blip2, instructblip } from './blip2.js';
import { clip } from './clip.js';
import { siglip } from './siglip.js';
import { llava } from './llava.js';

export const ARCHITECTURES: HfArchitecture[] = [llama, mistral, qwen2, opt, gpt2, clip, siglip, bert, blip2, instructblip, llava];

/** Every `architectures` class name Composer imports, for error messages and the README. */
export function supportedClasses(): string[] {
  return ARCHITECTURES.flatMap((a) => a.classes);
}

/** The architecture for a folder's config.json: by `architectures[0]`, else by `model_type`. */
export function architectureFor(config: Record<string, unknown>): HfArchitecture {
  const cls = configClass(config);
  const modelType = typeof config.model_type === 'string' ? config.model_type : undefined;
  const byClass = cls ? ARCHITECTURES.find((a) => a.classes.includes(cls)) : undefined;
  if (byClass) return byClass;
  if (!cls && modelType) {
    const byType = ARCHITECTURES.find((a) => a.modelTypes.includes(modelType));
    if (byType) return byType;
  }
  const named = cls ? `architecture '${cls}'` : modelType ? `model_type '${modelType}'` : 'no architectures or model_type';
  throw new ArchitectureError(`config.json: ${named} is not supported; Composer imports ${supportedClasses().join(', ')}`);
}

export function architectureById(id: string): HfArchitecture {
  const a = ARCHITECTURES.find((x) => x.id === id);
  if (!a) throw new ArchitectureError(`unknown Hugging Face architecture mapping '${id}' (known: ${ARCHITECTURES.map((x) => x.id).join(', ')})`);
  return a;
}
