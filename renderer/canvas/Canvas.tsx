// The React Flow canvas: store-driven nodes and edges, one isValidConnection, drop-to-add, double-click search.

import {
  Background,
  BackgroundVariant,
  Controls,
  MiniMap,
  ReactFlow,
  getViewportForBounds,
  useReactFlow,
  useStoreApi,
  type Connection,
  type Edge,
  type IsValidConnection,
} from '@xyflow/react';
import { useCallback, useEffect, type DragEvent, type MouseEvent } from 'react';
import { useShallow } from 'zustand/react/shallow';
import { registerFit, registerSearchAtCentre } from '../app/actions.js';
import { takeImageFile } from '../app/jobs.js';
import { takeModelDrop } from '../app/models.js';
import { connectionProblem, nodePorts, type CatalogIndex, type ComposerEdge, type ComposerNode } from '../store/model.js';
import { composerStore, useComposer, type ComposerState } from '../store/store.js';
import { ComposerNodeView } from './ComposerNodeView.js';
import { NODE_WIDTH, nodeHeight, SHOWN_PARAMS, useLowDetail } from './detail.js';
import { ShapeEdge } from './ShapeEdge.js';
import { familyColor } from './theme.js';

// Module level, so React Flow never sees new objects (warning 002).
const nodeTypes = { composer: ComposerNodeView };
const edgeTypes = { shape: ShapeEdge };
const defaultEdgeOptions = { type: 'shape' };
const proOptions = { hideAttribution: true };
const fitViewOptions = { maxZoom: 1, padding: 0.2 };
export const PALETTE_MIME = 'application/x-composer-node-type';

/** A graph was just opened: the store replaced the nodes and started a fresh, empty history. */
function isDocumentLoad(state: ComposerState, prev: ComposerState): boolean {
  return state.past !== prev.past && state.past.length === 0 && state.future.length === 0 && state.nodes.length > 0;
}

/** Bounds of the nodes before React Flow has measured them: positions plus the full-detail node size. */
function estimatedBounds(catalog: CatalogIndex, nodes: readonly ComposerNode[]) {
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const n of nodes) {
    const { inputs, outputs } = nodePorts(catalog, n);
    const params = Math.min(SHOWN_PARAMS, catalog[n.data.type]?.params.length ?? 0);
    x0 = Math.min(x0, n.position.x);
    y0 = Math.min(y0, n.position.y);
    x1 = Math.max(x1, n.position.x + (n.measured?.width ?? NODE_WIDTH));
    y1 = Math.max(y1, n.position.y + (n.measured?.height ?? nodeHeight(Math.max(inputs.length, outputs.length), params)));
  }
  return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
}

const minimapColor = (n: ComposerNode) => familyColor(composerStore.getState().catalog[n.data.type]?.family);

export function Canvas() {
  const { nodes, edges, onNodesChange, onEdgesChange, onConnect, beginDrag, endDrag, theme } = useComposer(
    useShallow((s) => ({
      nodes: s.nodes,
      edges: s.edges,
      onNodesChange: s.onNodesChange,
      onEdgesChange: s.onEdgesChange,
      onConnect: s.onConnect,
      beginDrag: s.beginDrag,
      endDrag: s.endDrag,
      theme: s.theme,
    })),
  );
  const flow = useReactFlow<ComposerNode, ComposerEdge>();
  const flowStore = useStoreApi<ComposerNode, ComposerEdge>();
  const low = useLowDetail();

  // Frame an opened graph before its nodes first render, so a large graph renders once, at the zoom it is shown at
  // (light nodes when that is below the detail zoom), instead of at the previous zoom and then again. Runs in the
  // store listener, ahead of React's render; the fitView the open action requests then refines it on measured sizes.
  useEffect(
    () =>
      composerStore.subscribe((state, prev) => {
        if (!isDocumentLoad(state, prev)) return;
        const { width, height, minZoom } = flowStore.getState();
        if (!width || !height) return;
        const bounds = estimatedBounds(state.catalog, state.nodes);
        void flow.setViewport(getViewportForBounds(bounds, width, height, minZoom, fitViewOptions.maxZoom, fitViewOptions.padding));
      }),
    [flow, flowStore],
  );

  useEffect(() => {
    registerFit(() => void flow.fitView({ padding: 0.2, duration: 200, maxZoom: 1 }));
    registerSearchAtCentre(() => {
      const rect = document.querySelector('.canvas')?.getBoundingClientRect();
      const screen = rect ? { x: rect.left + rect.width / 2 - 180, y: rect.top + 100 } : { x: 300, y: 200 };
      composerStore.getState().openSearch({ screen, flow: flow.screenToFlowPosition({ x: screen.x + 180, y: screen.y + 60 }) });
    });
  }, [flow]);

  const isValidConnection: IsValidConnection<ComposerEdge> = useCallback((c: Connection | Edge) => {
    const s = composerStore.getState();
    return connectionProblem(s.catalog, s.nodes, s.edges, c) === null;
  }, []);

  const onDragOver = useCallback((e: DragEvent) => {
    if (e.dataTransfer.types.includes(PALETTE_MIME) || e.dataTransfer.types.includes('Files')) {
      e.preventDefault();
      e.dataTransfer.dropEffect = 'copy';
    }
  }, []);

  const onDrop = useCallback(
    (e: DragEvent) => {
      // A model folder (or its config.json) becomes nodes placed where it was dropped.
      if (takeModelDrop(e.dataTransfer, flow.screenToFlowPosition({ x: e.clientX, y: e.clientY }))) {
        e.preventDefault();
        return;
      }
      // An image file dropped anywhere on the canvas (or on the Image node) becomes the run image.
      const file = e.dataTransfer.files?.[0];
      if (file) {
        e.preventDefault();
        void takeImageFile(file);
        return;
      }
      const type = e.dataTransfer.getData(PALETTE_MIME);
      if (!type) return;
      e.preventDefault();
      const at = flow.screenToFlowPosition({ x: e.clientX, y: e.clientY });
      composerStore.getState().addNode(type, { x: at.x - 110, y: at.y - 30 });
    },
    [flow],
  );

  const onDoubleClick = useCallback(
    (e: MouseEvent) => {
      // Only the empty pane opens search; double-clicking a node keeps React Flow's behaviour.
      if (!(e.target instanceof Element) || !e.target.classList.contains('react-flow__pane')) return;
      composerStore.getState().openSearch({
        screen: { x: e.clientX, y: e.clientY },
        flow: flow.screenToFlowPosition({ x: e.clientX, y: e.clientY }),
      });
    },
    [flow],
  );

  return (
    <div className="canvas" onDragOver={onDragOver} onDrop={onDrop} onDoubleClick={onDoubleClick}>
      <ReactFlow<ComposerNode, ComposerEdge>
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        edgeTypes={edgeTypes}
        defaultEdgeOptions={defaultEdgeOptions}
        onNodesChange={onNodesChange}
        onEdgesChange={onEdgesChange}
        onConnect={onConnect}
        onNodeDragStart={beginDrag}
        onNodeDragStop={endDrag}
        isValidConnection={isValidConnection}
        deleteKeyCode={null}
        zoomOnDoubleClick={false}
        selectionKeyCode="Shift"
        multiSelectionKeyCode={['Meta', 'Control']}
        colorMode={theme}
        minZoom={0.15}
        maxZoom={2}
        fitView
        fitViewOptions={fitViewOptions}
        proOptions={proOptions}
      >
        {/* Below the detail zoom the dots shrink to sub-pixel specks, yet repainting them costs every pan frame. */}
        {!low && <Background variant={BackgroundVariant.Dots} gap={20} size={1.2} />}
        <MiniMap pannable zoomable nodeColor={minimapColor} nodeStrokeWidth={0} className="minimap" />
        <Controls showInteractive={false} />
      </ReactFlow>
    </div>
  );
}
