// Learning-rate schedule: linear warmup from 0, then cosine decay to `minLr` (as transformers'
// get_cosine_schedule_with_warmup, which decays to 0; min_lr keeps a floor like LAVIS' cosine → 1e-5).

export interface ScheduleOptions {
  peakLr: number;
  totalSteps: number;
  warmupSteps: number;
  minLr?: number;
}

/** Learning rate of step `t` (1-based). */
export function learningRateAt(t: number, o: ScheduleOptions): number {
  const min = o.minLr ?? 0;
  if (o.warmupSteps > 0 && t <= o.warmupSteps) return (o.peakLr * t) / (o.warmupSteps + 1);
  const span = Math.max(1, o.totalSteps - o.warmupSteps);
  const progress = Math.min(1, Math.max(0, (t - o.warmupSteps - 1) / span));
  return min + (o.peakLr - min) * 0.5 * (1 + Math.cos(Math.PI * progress));
}

export function warmupStepsFor(totalSteps: number, ratio: number): number {
  return Math.round(totalSteps * ratio);
}
