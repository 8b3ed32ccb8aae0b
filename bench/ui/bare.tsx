// The baseline for bench/ui.ts: a bare React Flow page with default nodes and edges and nothing else. It takes the
// same graph file through the same kind of hidden file input as the app, so both sides start from the same trigger.

import {
  ReactFlow,
  ReactFlowProvider,
  useEdgesState,
  useNodesInitialized,
  useNodesState,
  useReactFlow,
  type Edge,
  type Node,
} from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import { useEffect } from 'react';
import { createRoot } from 'react-dom/client';

interface GraphFile {
  nodes: { id: string }[];
  edges: { from: { node: string }; to: { node: string } }[];
  ui: { positions: Record<string, { x: number; y: number }> };
}

function toFlow(doc: GraphFile): { nodes: Node[]; edges: Edge[] } {
  const nodes = doc.nodes.map((n) => ({ id: n.id, position: doc.ui.positions[n.id] ?? { x: 0, y: 0 }, data: { label: n.id } }));
  const edges = doc.edges.map((e, i) => ({ id: `e${i}`, source: e.from.node, target: e.to.node }));
  return { nodes, edges };
}

function Bare() {
  const [nodes, setNodes, onNodesChange] = useNodesState<Node>([]);
  const [edges, setEdges, onEdgesChange] = useEdgesState<Edge>([]);
  const initialised = useNodesInitialized();
  const { fitView } = useReactFlow();

  // Same framing as the app after it opens a graph.
  useEffect(() => {
    if (initialised) void fitView({ padding: 0.2, maxZoom: 1 });
  }, [initialised, fitView]);

  return (
    <div style={{ width: '100vw', height: '100vh' }}>
      <input
        type="file"
        hidden
        data-testid="open-file-input"
        onChange={(e) => {
          const file = e.target.files?.[0];
          if (!file) return;
          void file.text().then((text) => {
            const flow = toFlow(JSON.parse(text) as GraphFile);
            setNodes(flow.nodes);
            setEdges(flow.edges);
          });
        }}
      />
      <ReactFlow
        nodes={nodes}
        edges={edges}
        onNodesChange={onNodesChange}
        onEdgesChange={onEdgesChange}
        minZoom={0.15}
        maxZoom={2}
      />
    </div>
  );
}

const root = document.getElementById('root');
if (!root) throw new Error('bare.html has no #root element');
createRoot(root).render(
  <ReactFlowProvider>
    <Bare />
  </ReactFlowProvider>,
);
