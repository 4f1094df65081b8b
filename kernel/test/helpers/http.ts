import type { Hono } from 'hono';
import { createHttpApp } from '../../src/http/index.js';
import { httpDepsFromKernel } from '../../src/wiring.js';
import type { Kernel } from '../../src/kernel.js';

export const PORT = 3210;
export const BASE = `http://127.0.0.1:${PORT}`;

/**
 * A minimal browser-like client for app.request(): keeps cookies, sends the
 * CSRF header on mutating requests, and presents a loopback peer.
 */
export class TestClient {
  cookies = new Map<string, string>();
  lastSetCookies: string[] = [];
  constructor(
    readonly app: Hono<never>,
    readonly options: { remoteAddress?: string | null; csrf?: boolean } = {},
  ) {}

  async request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
    const h: Record<string, string> = { host: `127.0.0.1:${PORT}`, ...headers };
    if (this.cookies.size > 0) h.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    if (method !== 'GET' && this.options.csrf !== false && this.cookies.has('aip_csrf') && !('x-csrf-token' in h)) h['x-csrf-token'] = this.cookies.get('aip_csrf')!;
    let payload: string | undefined;
    if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body);
      h['content-type'] ??= 'application/json';
      h['content-length'] = String(Buffer.byteLength(payload));
    }
    const remoteAddress = this.options.remoteAddress === undefined ? '127.0.0.1' : this.options.remoteAddress;
    const env = remoteAddress === null ? {} : { incoming: { socket: { remoteAddress } } };
    const response = await this.app.request(`${BASE}${path}`, { method, headers: h, ...(payload !== undefined ? { body: payload } : {}) }, env);
    this.lastSetCookies = response.headers.getSetCookie();
    for (const line of this.lastSetCookies) {
      const [pair] = line.split(';');
      const [name, ...rest] = pair!.split('=');
      const value = rest.join('=');
      if (/Max-Age=0/i.test(line) || value === '') this.cookies.delete(name!.trim());
      else this.cookies.set(name!.trim(), value);
    }
    return response;
  }

  get = (path: string, headers?: Record<string, string>) => this.request('GET', path, undefined, headers);
  post = (path: string, body?: unknown, headers?: Record<string, string>) => this.request('POST', path, body ?? {}, headers);
  put = (path: string, body?: unknown) => this.request('PUT', path, body ?? {});
  patch = (path: string, body?: unknown) => this.request('PATCH', path, body ?? {});
  delete = (path: string) => this.request('DELETE', path);

  async json<T = Record<string, any>>(method: string, path: string, body?: unknown, expectStatus = 200): Promise<T> {
    const response = await this.request(method, path, body);
    const text = await response.text();
    if (response.status !== expectStatus) throw new Error(`${method} ${path} -> ${response.status} (expected ${expectStatus}): ${text}`);
    return JSON.parse(text) as T;
  }
}

export function httpApp(kernel: Kernel) {
  const { app, sessions } = createHttpApp({ deps: httpDepsFromKernel(kernel), getPort: () => PORT, version: 'test' });
  return { app: app as unknown as Hono<never>, sessions };
}

/** A response body as loosely typed JSON, for assertions. */
export const jsonOf = (response: Response): Promise<any> => response.json();
