// Sandboxed preload (bundled to one CommonJS file): exposes the narrow `window.composer` bridge. Listeners get the
// event payload only, never the IpcRendererEvent (it would leak `sender`).

import { contextBridge, ipcRenderer, webUtils } from 'electron';
import type { ComposerBridge, HostEvent, Reply } from './host/contract.js';

const bridge: ComposerBridge = {
  invoke: (method: string, params: unknown) => ipcRenderer.invoke('composer:rpc', method, params) as Promise<Reply>,
  onEvent(listener: (event: HostEvent) => void) {
    const forward = (_e: unknown, event: HostEvent) => listener(event);
    ipcRenderer.on('composer:event', forward);
    return () => {
      ipcRenderer.off('composer:event', forward);
    };
  },
  // The path comes from the OS for a real dropped File only (a File made by a script has none), and the main process
  // then treats it as the user's pick.
  async pathForFile(file: File) {
    const path = webUtils.getPathForFile(file);
    return path ? ((await ipcRenderer.invoke('composer:dropped', path)) as string | null) : null;
  },
};

contextBridge.exposeInMainWorld('composer', bridge);
