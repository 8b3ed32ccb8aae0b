// Keyboard shortcuts: one table drives both the handler and the help overlay.

import { openSearchAtCentre, saveGraph } from './actions.js';
import { startRun } from './jobs.js';
import { composerStore } from '../store/store.js';

export interface Shortcut {
  keys: string[];
  label: string;
  match(e: KeyboardEvent): boolean;
  run(e: KeyboardEvent): void;
}

const mod = (e: KeyboardEvent) => e.ctrlKey || e.metaKey;
const key = (e: KeyboardEvent, k: string) => e.key.toLowerCase() === k;
const st = () => composerStore.getState();

/** Runs even while typing (the prompt box is where one most wants it). */
const RUN_SHORTCUT: Shortcut = {
  keys: ['Ctrl', 'Enter'],
  label: 'Run the graph (also from the prompt box)',
  match: (e) => mod(e) && e.key === 'Enter',
  run: () => void startRun(),
};

export const SHORTCUTS: Shortcut[] = [
  RUN_SHORTCUT,
  { keys: ['Ctrl', 'Z'], label: 'Undo', match: (e) => mod(e) && !e.shiftKey && key(e, 'z'), run: () => st().undo() },
  { keys: ['Ctrl', 'Shift', 'Z'], label: 'Redo (also Ctrl+Y)', match: (e) => mod(e) && ((e.shiftKey && key(e, 'z')) || key(e, 'y')), run: () => st().redo() },
  { keys: ['Ctrl', 'A'], label: 'Select all nodes', match: (e) => mod(e) && key(e, 'a'), run: () => st().selectAll() },
  {
    keys: ['Ctrl', 'D'],
    label: 'Duplicate selection',
    match: (e) => mod(e) && key(e, 'd'),
    run: () => {
      const payload = st().copy();
      if (payload) st().paste(payload);
    },
  },
  { keys: ['Delete'], label: 'Delete selection (also Backspace)', match: (e) => !mod(e) && (e.key === 'Delete' || e.key === 'Backspace'), run: () => st().deleteSelection() },
  {
    keys: ['F'],
    label: 'Freeze / unfreeze selection',
    match: (e) => !mod(e) && key(e, 'f'),
    run: () => {
      const picked = st().nodes.filter((n) => n.selected);
      if (picked.length) st().setFrozen(picked.map((n) => n.id), !picked.every((n) => n.data.frozen));
    },
  },
  {
    keys: ['Space'],
    label: 'Add a node (search; also double-click the canvas)',
    match: (e) => !mod(e) && e.key === ' ',
    run: () => openSearchAtCentre(),
  },
  { keys: ['Ctrl', 'O'], label: 'Open a graph', match: (e) => mod(e) && key(e, 'o'), run: () => document.getElementById('open-graph')?.click() },
  { keys: ['Ctrl', 'S'], label: 'Save', match: (e) => mod(e) && !e.shiftKey && key(e, 's'), run: () => void saveGraph() },
  { keys: ['Ctrl', 'Shift', 'S'], label: 'Save as…', match: (e) => mod(e) && e.shiftKey && key(e, 's'), run: () => void saveGraph(true) },
  { keys: ['T'], label: 'Templates', match: (e) => !mod(e) && key(e, 't'), run: () => st().openDialog('templates') },
  { keys: ['?'], label: 'This help', match: (e) => e.key === '?', run: () => st().openDialog('help') },
  { keys: ['Ctrl', 'C'], label: 'Copy selection', match: () => false, run: () => undefined },
  { keys: ['Ctrl', 'V'], label: 'Paste', match: () => false, run: () => undefined },
  { keys: ['Shift', 'drag'], label: 'Box-select; Ctrl+click adds to the selection', match: () => false, run: () => undefined },
];

function typingInField(e: KeyboardEvent): boolean {
  const t = e.target;
  return t instanceof HTMLElement && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName));
}

export function handleShortcut(e: KeyboardEvent): void {
  if (RUN_SHORTCUT.match(e) && !st().dialog) {
    e.preventDefault();
    RUN_SHORTCUT.run(e);
    return;
  }
  if (typingInField(e)) return;
  if (e.key === 'Escape') {
    st().openDialog(null);
    st().openSearch(null);
    return;
  }
  if (st().dialog || st().search) return;
  const hit = SHORTCUTS.find((s) => s.match(e));
  if (!hit) return;
  e.preventDefault();
  hit.run(e);
}
