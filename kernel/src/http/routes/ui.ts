import { Hono } from 'hono';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HttpEnv } from '../context.js';

/**
 * The web UI's Content-Security-Policy: everything from this origin only, no
 * inline script or style, no plugins, no framing (clickjacking an approval),
 * no <base> tricks, forms and fetches back to the gateway only. The UI renders
 * every user-supplied string as text; this is the second wall if it ever did not.
 */
export const UI_CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** A year: asset names carry a content hash (`index-3f2a1c.js`), so a changed file is a new URL. */
export const IMMUTABLE_CACHE = 'public, max-age=31536000, immutable';

/** 32 MiB: far above the UI's budget (150 KB gzipped); a dist this large is not ours. */
const MAX_UI_BYTES = 32 * 1024 * 1024;

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

/** The UI's build output next to this kernel in the repository (kernel/dist/http/routes -> ui/dist). */
export function defaultUiDir(): string {
  return fileURLToPath(new URL('../../../../ui/dist/', import.meta.url));
}

interface UiFile {
  body: Uint8Array;
  type: string;
}

/**
 * Reads the whole build once: the routes serve only files that were in it at
 * start, looked up by exact path, so no request path ever reaches the file
 * system (no traversal, no symlink or file planted later is served).
 */
function loadUi(dir: string): Map<string, UiFile> | undefined {
  const files = new Map<string, UiFile>();
  let total = 0;
  const walk = (folder: string): void => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) {
        const dot = entry.name.lastIndexOf('.');
        const type = TYPES[dot >= 0 ? entry.name.slice(dot) : ''];
        if (!type) continue;
        total += statSync(path).size;
        if (total > MAX_UI_BYTES) throw new Error(`the UI build in ${dir} is larger than ${MAX_UI_BYTES} bytes`);
        files.set(`/${relative(dir, path).split(sep).join('/')}`, { body: readFileSync(path), type });
      }
    }
  };
  try {
    walk(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  return files.has('/index.html') ? files : undefined;
}

export interface UiRouteOptions {
  /** The built UI (ui/dist); when it is missing, `/` says how to build it. */
  uiDir: string;
  version: string;
}

/**
 * Serves the web UI at `/` on the gateway's own origin: hashed assets under
 * /assets/ with a long cache, index.html never cached (a new build is picked
 * up at once), and every other non-API path that looks like a page (no file
 * extension) answered with index.html so the UI's own router shows it.
 * Registered after /api and /mcp: those keep their own answers and 404s.
 */
export function uiRoutes(options: UiRouteOptions) {
  const files = loadUi(options.uiDir);
  const app = new Hono<HttpEnv>();
  app.on(['GET', 'HEAD'], '*', (c, next) => {
    const serve = (file: UiFile, cache: string) =>
      c.body(file.body as Uint8Array<ArrayBuffer>, 200, { 'Content-Type': file.type, 'Cache-Control': cache, 'Content-Security-Policy': UI_CONTENT_SECURITY_POLICY });
    const path = c.req.path;
    if (path === '/api' || path.startsWith('/api/') || path === '/mcp') return next();
    if (!files) {
      return c.text(
        `AIPermission ${options.version} is running on this machine, but its web UI is not built.\n` +
          `Build it with \`npm run build\` (or start the gateway with \`npm start\`, which builds it), then reload.\n` +
          `Meanwhile the aip CLI (aip status) and the REST API (docs/api.md) work.\n`,
        503,
      );
    }
    const file = files.get(path);
    if (file && path !== '/index.html') return serve(file, path.startsWith('/assets/') ? IMMUTABLE_CACHE : 'no-cache');
    const last = path.slice(path.lastIndexOf('/') + 1);
    // A missing file (a stale asset name, a typo) is a 404, never the page: a
    // script tag must not get HTML back.
    if (last.includes('.') && path !== '/index.html') return next();
    return serve(files.get('/index.html')!, 'no-cache');
  });
  return app;
}
