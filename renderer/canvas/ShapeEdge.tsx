// An edge coloured by the kind it carries, labelled with the tensor shape, red when validation blames it. Below the
// detail zoom (detail.ts) the label is left out: it would be a few unreadable pixels, each costing paint while panning.

import { BaseEdge, EdgeLabelRenderer, getBezierPath, type EdgeProps } from '@xyflow/react';
import { memo, type CSSProperties } from 'react';
import { portOfHandle, type ComposerEdge } from '../store/model.js';
import { useComposer } from '../store/store.js';
import { inputError, useLowDetail } from './detail.js';
import { kindColor } from './theme.js';

function ShapeEdgeImpl(props: EdgeProps<ComposerEdge>) {
  const { id, sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition, data, selected, target, targetHandleId } = props;
  const [path, labelX, labelY] = getBezierPath({ sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition });
  const port = portOfHandle(targetHandleId);
  const problem = useComposer((s) => inputError(s.diagnostics, target, port));
  const low = useLowDetail();
  const color = problem ? 'var(--danger)' : kindColor(data?.kind);
  // Thicker when zoomed out, so the wiring still reads at overview scale.
  const style: CSSProperties = { stroke: color, strokeWidth: (selected ? 2.5 : 1.6) * (low ? 2.5 : 1) };
  const label = data?.shape ?? data?.kind;
  return (
    <>
      <BaseEdge id={id} path={path} style={style} interactionWidth={16} />
      {label && !low && (
        <EdgeLabelRenderer>
          <div
            className={`edge-label${problem ? ' bad' : ''}`}
            style={{ transform: `translate(-50%, -50%) translate(${labelX}px, ${labelY}px)` }}
            title={problem ?? `${data?.kind ?? ''} ${data?.shape ?? ''}`}
          >
            {label}
          </div>
        </EdgeLabelRenderer>
      )}
    </>
  );
}

export const ShapeEdge = memo(ShapeEdgeImpl);
