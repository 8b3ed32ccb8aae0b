/** The common sample shape every dataset (built-in or loaded from files) produces. */
import { z } from 'zod';
import type { ImageDegradation, RgbImage } from '../image.js';

export const TurnSchema = z.object({
  from: z.enum(['human', 'gpt', 'system']),
  value: z.string(),
});
export type Turn = z.infer<typeof TurnSchema>;

export const QaPairSchema = z.object({ question: z.string().min(1), answer: z.string().min(1) });
export type QaPair = z.infer<typeof QaPairSchema>;

/** The placeholder LLaVA-style conversations use for "the image goes here". */
export const IMAGE_PLACEHOLDER = '<image>';

export interface Sample {
  id: string;
  /** Absolute path of the image file (loaded datasets). */
  imagePath?: string;
  /** Decoded pixels (built-in datasets). */
  image?: RgbImage;
  /** A degradation applied when the image is loaded (training augmentation; see `degradeImage`). */
  imageDegradation?: ImageDegradation;
  caption?: string;
  conversations?: Turn[];
  qa?: QaPair[];
}

export class DatasetError extends Error {
  override name = 'DatasetError';
}
