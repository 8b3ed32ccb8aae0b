// The built-in datasets (procedural, no files) by name. No zod here: the renderer imports this list as a value.

export const BUILTIN_DATASETS = ['shapes'] as const;
export type BuiltinDataset = (typeof BUILTIN_DATASETS)[number];

/** True for a built-in dataset's name; anything else names a dataset file. */
export function isBuiltinDataset(name: string): name is BuiltinDataset {
  return (BUILTIN_DATASETS as readonly string[]).includes(name);
}
