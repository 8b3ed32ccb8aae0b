// Electron main process: one locked-down window serving the built renderer from app://bundle, and one IPC channel
// into the host API. See research/electron-reactflow.md §1 for the checklist this follows.

import { app, BrowserWindow, dialog, ipcMain, net, protocol, session, shell, type IpcMainInvokeEvent } from 'electron';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createHostApi, type Dialogs, type HostApi } from './host/api.js';
import { contentSecurityPolicy, contentType } from './host/csp.js';
import { appRoot, RENDERER_DIST } from './host/paths.js';

const APP_ORIGIN = 'app://bundle';
const RPC_CHANNEL = 'composer:rpc';
const EVENT_CHANNEL = 'composer:event';
const DROPPED_CHANNEL = 'composer:dropped';

// Must run before `ready`, and only once.
protocol.registerSchemesAsPrivileged([
  { scheme: 'app', privileges: { standard: true, secure: true, supportFetchAPI: true } },
]);

const root = appRoot();
const rendererDir = resolve(root, RENDERER_DIST);
let api: HostApi | null = null;
let mainWindow: BrowserWindow | null = null;

function isAppUrl(raw: string): boolean {
  try {
    return new URL(raw).origin === APP_ORIGIN;
  } catch {
    return false;
  }
}

function serveApp(request: Request): Promise<Response> | Response {
  const { pathname } = new URL(request.url);
  const file = resolve(rendererDir, `.${decodeURIComponent(pathname === '/' ? '/index.html' : pathname)}`);
  const rel = relative(rendererDir, file);
  if (rel.startsWith('..') || isAbsolute(rel)) return new Response('not found', { status: 404 });
  return net.fetch(pathToFileURL(file).href).then(async (res) => {
    const headers = new Headers({
      'content-type': contentType(file),
      'content-security-policy': contentSecurityPolicy(),
      'x-content-type-options': 'nosniff',
    });
    return new Response(await res.arrayBuffer(), { status: res.status, headers });
  });
}

function dialogs(): Dialogs {
  const parent = () => mainWindow ?? undefined;
  return {
    async openFile({ title, extensions }) {
      const options = { title, properties: ['openFile' as const], filters: [{ name: extensions.join(', '), extensions }] };
      const r = await (parent() ? dialog.showOpenDialog(parent()!, options) : dialog.showOpenDialog(options));
      return r.canceled || r.filePaths.length === 0 ? null : r.filePaths[0];
    },
    async saveFile({ title, defaultName, extensions }) {
      const options = { title, defaultPath: defaultName, filters: [{ name: extensions.join(', '), extensions }] };
      const r = await (parent() ? dialog.showSaveDialog(parent()!, options) : dialog.showSaveDialog(options));
      return r.canceled || !r.filePath ? null : r.filePath;
    },
    async pickFolder({ title }) {
      const options = { title, properties: ['openDirectory' as const, 'createDirectory' as const] };
      const r = await (parent() ? dialog.showOpenDialog(parent()!, options) : dialog.showOpenDialog(options));
      return r.canceled || r.filePaths.length === 0 ? null : r.filePaths[0];
    },
  };
}

/** Only our own top frame, loaded from app://bundle, may call the host. */
function trustedSender(event: IpcMainInvokeEvent): boolean {
  const frame = event.senderFrame;
  if (!frame || frame.parent !== null) return false;
  if (!mainWindow || event.sender !== mainWindow.webContents) return false;
  return isAppUrl(frame.url);
}

function createWindow(): void {
  mainWindow = new BrowserWindow({
    width: 1440,
    height: 900,
    minWidth: 960,
    minHeight: 600,
    title: 'Composer',
    show: false,
    webPreferences: {
      preload: join(import.meta.dirname, 'preload.cjs'),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      experimentalFeatures: false,
      webviewTag: false,
    },
  });
  mainWindow.once('ready-to-show', () => mainWindow?.show());
  mainWindow.on('closed', () => {
    mainWindow = null;
  });
  void mainWindow.loadURL(`${APP_ORIGIN}/index.html`);
}

app.enableSandbox();

app.on('web-contents-created', (_event, contents) => {
  const stayInApp = (e: { preventDefault(): void }, url: string) => {
    if (!isAppUrl(url)) e.preventDefault();
  };
  contents.on('will-navigate', stayInApp);
  contents.on('will-frame-navigate', (e) => stayInApp(e, e.url));
  contents.on('will-redirect', stayInApp);
  contents.on('will-attach-webview', (e) => e.preventDefault());
  contents.setWindowOpenHandler(({ url }) => {
    // Documentation links open in the user's browser; nothing opens inside the app.
    try {
      if (new URL(url).protocol === 'https:') void shell.openExternal(url);
    } catch {
      // not a URL: ignore
    }
    return { action: 'deny' };
  });
});

app.whenReady().then(() => {
  const ses = session.defaultSession;
  ses.setPermissionRequestHandler((_wc, _permission, callback) => callback(false));
  ses.setPermissionCheckHandler(() => false);
  ses.setDevicePermissionHandler(() => false);
  protocol.handle('app', serveApp);

  api = createHostApi({
    mode: 'electron',
    dataDir: process.env.COMPOSER_DATA_DIR ?? app.getPath('userData'),
    templatesDir: join(root, 'graphs'),
    dialogs: dialogs(),
  });
  api.onEvent((event) => mainWindow?.webContents.send(EVENT_CHANNEL, event));

  // The one IPC entry point: sender checked, method looked up and payload zod-validated inside api.call.
  ipcMain.handle(RPC_CHANNEL, async (event, method: unknown, params: unknown) => {
    if (!trustedSender(event)) {
      return { ok: false, error: { code: 'invalid-request', message: 'IPC from an untrusted frame was refused' } };
    }
    if (typeof method !== 'string') return { ok: false, error: { code: 'invalid-request', message: 'method must be a string' } };
    return api!.call(method, params);
  });

  // The preload reports the OS path of something dropped on the window (webUtils.getPathForFile of a real File): a
  // pick, like a dialog's. Returns the resolved path, or null when it cannot be read.
  ipcMain.handle(DROPPED_CHANNEL, (event, path: unknown) => {
    if (!trustedSender(event) || typeof path !== 'string') return null;
    try {
      return api!.files.grantDropped(path);
    } catch (e) {
      process.stderr.write(`composer: dropped '${path}' ignored: ${(e as Error).message}\n`);
      return null;
    }
  });

  createWindow();
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) createWindow();
  });
}, (e: unknown) => {
  process.stderr.write(`composer: failed to start: ${String(e)}\n`);
  app.exit(1);
});

app.on('window-all-closed', () => {
  if (process.platform !== 'darwin') app.quit();
});

app.on('will-quit', () => {
  void api?.close();
});
