/**
 * The explore HTTP server (Node's http module): the page's static assets and the JSON API of SPEC
 * "Explore", over an ExploreSession.
 *
 * Safety, since it runs a model and can write files on the user's machine:
 *  - it binds the host it is given (127.0.0.1 by default) and answers only requests whose Host header
 *    names that host and port (403 otherwise): a DNS-rebinding page cannot talk to it;
 *  - POSTs must be `application/json` and, when the browser sends an Origin, come from the served
 *    origin: a form or script on another site cannot make it write (CSRF);
 *  - it serves only the asset files listed below, read once at start, never a path from the URL;
 *  - bodies over 1 MB are refused (413), and every bad request is a 400 with `{"error"}`; the server
 *    goes on.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { networkInterfaces } from 'node:os';
import { CarveError, fail } from '../util/errors.ts';
import type { ExploreSession } from './session.ts';

export const MAX_BODY_BYTES = 1024 * 1024;

const ASSET_DIR = join(dirname(fileURLToPath(import.meta.url)), 'assets');
/** URL path → asset file and content type. Nothing else is ever read from disk. */
const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/charts.js': { file: 'charts.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface ExploreServer {
  server: Server;
  /** The URL the page is served at, e.g. http://127.0.0.1:8765/ */
  url: string;
  host: string;
  port: number;
  close(): Promise<void>;
}

function loadAssets(): Map<string, { body: Buffer; type: string }> {
  const out = new Map<string, { body: Buffer; type: string }>();
  for (const [path, a] of Object.entries(ASSETS)) out.set(path, { body: readFileSync(join(ASSET_DIR, a.file)), type: a.type });
  return out;
}

/** How a host appears in a Host header or URL: IPv6 literals in brackets. */
function hostForUrl(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/**
 * The Host header values that name this server: the bound host, and for a loopback or wildcard
 * bind the names that reach it from this machine (a wildcard bind also answers on every interface
 * address, which is what its user asked for).
 */
export function allowedHosts(host: string, port: number): Set<string> {
  const names = new Set<string>([hostForUrl(host.toLowerCase())]);
  const loopback = ['127.0.0.1', 'localhost', '[::1]'];
  if (loopback.includes(hostForUrl(host.toLowerCase()))) loopback.forEach((n) => names.add(n));
  if (host === '0.0.0.0' || host === '::') {
    loopback.forEach((n) => names.add(n));
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) names.add(hostForUrl(a.address.toLowerCase()));
  }
  return new Set([...names].map((n) => `${n}:${port}`));
}

function sendJson(res: ServerResponse, status: number, value: unknown, extra: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

/** The request body, refused past MAX_BODY_BYTES whatever the Content-Length claims. */
function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) {
      reject(new HttpError(413, `request body of ${declared} bytes is over the limit of ${MAX_BODY_BYTES} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        done = true;
        chunks.length = 0;
        reject(new HttpError(413, `request body is over the limit of ${MAX_BODY_BYTES} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!done) resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', (e) => {
      if (!done) reject(e);
    });
  });
}

async function jsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') throw new HttpError(415, `expected Content-Type: application/json, got ${JSON.stringify(type || 'none')}`);
  const text = await readBody(req);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    fail(`the request body is not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('the request body must be a JSON object');
  return v as Record<string, unknown>;
}

function stringList(body: Record<string, unknown>, key: string): string[] {
  const v = body[key] ?? [];
  if (!Array.isArray(v)) fail(`"${key}" must be an array of component names, got ${JSON.stringify(v)}`);
  v.forEach((x, i) => {
    if (typeof x !== 'string') fail(`"${key}"[${i}] must be a component name, got ${JSON.stringify(x)}`);
  });
  return v as string[];
}

function stringField(body: Record<string, unknown>, key: string, fallback?: string): string {
  const v = body[key] ?? fallback;
  if (typeof v !== 'string') fail(`"${key}" must be a string${v === undefined ? ' (it is missing)' : `, got ${JSON.stringify(v)}`}`);
  return v;
}

/** A query parameter that must be a non-negative integer. */
function intParam(q: URLSearchParams, key: string): number {
  const v = q.get(key);
  if (v === null) fail(`query parameter "${key}" is missing`);
  if (!/^\d{1,9}$/.test(v)) fail(`query parameter "${key}" must be a non-negative integer, got ${JSON.stringify(v)}`);
  return Number(v);
}

function listParam(q: URLSearchParams, key: string): string[] {
  const v = q.get(key);
  return v === null || v.trim() === '' ? [] : v.split(',').map((s) => s.trim());
}

/**
 * After refusing an over-long body: read and drop the rest, so the client gets to read the answer
 * instead of a reset mid-upload, but cut the connection if it keeps sending far past the limit.
 */
function drainThenClose(req: IncomingMessage): void {
  let drained = 0;
  req.on('data', (c: Buffer) => {
    drained += c.length;
    if (drained > 16 * MAX_BODY_BYTES) req.destroy();
  });
  req.resume();
}

type Handler = (req: IncomingMessage, url: URL) => Promise<unknown>;

function routes(session: ExploreSession): Record<string, Handler> {
  return {
    'GET /api/info': async () => session.info(),
    'GET /api/components': async () => session.components(),
    'GET /api/prompts': async () => ({ prompts: session.prompts() }),
    'GET /api/scans': async () => ({ scans: session.scans() }),
    'GET /api/curves': async () => ({ curves: session.curves() }),
    'POST /api/evaluate': async (req) => {
      const body = await jsonBody(req);
      return session.evaluate(stringList(body, 'removed'), stringField(body, 'ablation', 'mean'));
    },
    'POST /api/scan': async (req) => {
      const body = await jsonBody(req);
      return session.computeScan(stringField(body, 'ablation', 'mean'), stringField(body, 'method', 'exact'));
    },
    'GET /api/attention': async (_req, url) => {
      const q = url.searchParams;
      return session.attention(intParam(q, 'prompt'), intParam(q, 'layer'), intParam(q, 'head'), listParam(q, 'removed'), q.get('ablation') ?? 'mean');
    },
    'POST /api/keep': async (req) => {
      const body = await jsonBody(req);
      return session.saveKeep(stringList(body, 'removed'), stringField(body, 'name', 'keep.json'));
    },
    'POST /api/compress': async (req) => {
      const body = await jsonBody(req);
      return session.compress(stringList(body, 'removed'), stringField(body, 'ablation', 'mean'), stringField(body, 'name', 'compressed'));
    },
  };
}

/** Start serving `session` on host:port (port 0: any free port). */
export async function startExploreServer(session: ExploreSession, opts: { host: string; port: number; log?: (line: string) => void }): Promise<ExploreServer> {
  const assets = loadAssets();
  const table = routes(session);
  const log = opts.log ?? ((line: string) => process.stderr.write(line + '\n'));
  let allowed = new Set<string>();
  let origins = new Set<string>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const host = String(req.headers.host ?? '').toLowerCase();
    if (!allowed.has(host)) {
      sendJson(res, 403, { error: `Host ${JSON.stringify(req.headers.host ?? '')} is not the served host` });
      req.resume();
      return;
    }
    const url = new URL(req.url ?? '/', `http://${host}`);
    const method = req.method ?? 'GET';
    if (method === 'GET' || method === 'HEAD') {
      const a = assets.get(url.pathname);
      if (a) {
        res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': a.type, 'Content-Length': a.body.length });
        res.end(method === 'HEAD' ? undefined : a.body);
        return;
      }
    }
    const origin = req.headers.origin;
    if (method === 'POST' && origin !== undefined && !origins.has(origin.toLowerCase())) {
      sendJson(res, 403, { error: `Origin ${JSON.stringify(origin)} may not post to this server` });
      req.resume();
      return;
    }
    const handler = table[`${method} ${url.pathname}`];
    if (!handler) {
      const known = Object.keys(table).some((k) => k.endsWith(` ${url.pathname}`));
      sendJson(res, known ? 405 : 404, { error: known ? `${method} is not allowed on ${url.pathname}` : `no such page or endpoint: ${url.pathname}` });
      req.resume();
      return;
    }
    try {
      sendJson(res, 200, await handler(req, url));
    } catch (e) {
      if (e instanceof HttpError) {
        if (e.status === 413) drainThenClose(req);
        sendJson(res, e.status, { error: e.message }, e.status === 413 ? { Connection: 'close' } : {});
      } else if (e instanceof CarveError) {
        sendJson(res, 400, { error: e.message });
      } else {
        log(`carve explore: internal error on ${method} ${url.pathname}: ${(e as Error).stack ?? String(e)}`);
        sendJson(res, 500, { error: `internal error: ${(e as Error).message}` });
      }
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      log(`carve explore: ${(e as Error).stack ?? String(e)}`);
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE') reject(new CarveError(`--port ${opts.port}: ${opts.host}:${opts.port} is already in use; choose another port (--port 0 picks a free one)`));
      else if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND') reject(new CarveError(`--host ${opts.host}: not an address of this machine`));
      else if (e.code === 'EACCES') reject(new CarveError(`--port ${opts.port}: permission denied (ports below 1024 need privileges)`));
      else reject(e);
    };
    server.once('error', onError);
    server.listen(opts.port, opts.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : opts.port;
  allowed = allowedHosts(opts.host, port);
  origins = new Set([...allowed].map((h) => `http://${h}`));
  const url = `http://${hostForUrl(opts.host)}:${port}/`;
  return {
    server,
    url,
    host: opts.host,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
