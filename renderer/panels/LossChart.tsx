// Live training chart (uPlot): the loss per step, and the evaluation metrics at their steps (losses on the left
// axis, other metrics such as accuracy on the right).

import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { TrainState } from '../store/jobs.js';
import { chartData } from './chart-data.js';

const COLORS = ['#f59e0b', '#8b5cf6', '#10b981', '#ec4899', '#3b82f6'];

/** Plot height in pixels (the legend goes below it); the width follows the panel. */
const PLOT_HEIGHT = 130;

export function LossChart({ train, theme }: { train: Pick<TrainState, 'steps' | 'losses' | 'evals'>; theme: 'light' | 'dark' }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const { names, data } = chartData(train);
  const shapeKey = `${names.join(',')}|${theme}`;

  // (Re)create when the set of series or the theme changes; otherwise only feed new data.
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const ink = theme === 'dark' ? '#cbd5e1' : '#334155';
    const grid = theme === 'dark' ? 'rgba(148,163,184,0.15)' : 'rgba(100,116,139,0.15)';
    // Sides are uPlot's defaults (x bottom, y left) unless given; an explicit undefined would put an axis on top.
    const axis = (scale: string, side?: uPlot.Axis.Side): uPlot.Axis => ({
      scale,
      ...(side !== undefined ? { side } : {}),
      stroke: ink,
      grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid },
    });
    const metricIsLoss = (n: string) => /loss|perplexity/i.test(n);
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: PLOT_HEIGHT,
      scales: { x: { time: false }, y: {}, metric: {} },
      legend: { show: true },
      cursor: { drag: { x: true, y: false } },
      axes: [
        { ...axis('x'), size: 28 },
        { ...axis('y'), size: 44 },
        ...(names.some((n) => !metricIsLoss(n)) ? [{ ...axis('metric', 1), size: 40, grid: { show: false } }] : []),
      ],
      series: [
        { label: 'step' },
        { label: 'loss', stroke: COLORS[0], width: 2, spanGaps: true, points: { show: false } },
        ...names.map((n, i) => ({
          label: n,
          stroke: COLORS[(i + 1) % COLORS.length],
          width: 2,
          spanGaps: true,
          scale: metricIsLoss(n) ? 'y' : 'metric',
          points: { show: true, size: 6 },
        })),
      ],
    };
    const u = new uPlot(opts, data as uPlot.AlignedData, el);
    plot.current = u;
    const resize = new ResizeObserver(() => {
      const width = Math.max(200, el.clientWidth);
      if (width !== u.width) u.setSize({ width, height: PLOT_HEIGHT });
    });
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shapeKey]);

  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData);
  });

  return <div ref={box} className="loss-chart" data-testid="loss-chart" />;
}
