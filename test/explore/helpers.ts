import { request } from 'node:http';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from '../../src/onnx/session.ts';
import { loadModelDir } from '../../src/model/load.ts';
import { loadTask } from '../../src/task/load.ts';
import { IOI_DEFAULTS } from '../../src/task/ioi.ts';
import { ExploreSession, type SessionOptions } from '../../src/explore/session.ts';
import { startExploreServer, type ExploreServer } from '../../src/explore/server.ts';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = join(here, '..', '..');
export const TOY_DIR = join(REPO, 'models', 'toy-ioi');
export const OUT_ROOT = join(REPO, '.test-out', 'explore');

export function freshDir(name: string): string {
  const dir = join(OUT_ROOT, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

export const engine = new Engine({ device: 'cpu', threads: 1 });

export function toySession(n: number, opts: SessionOptions = {}): ExploreSession {
  const loaded = loadModelDir(TOY_DIR, 'toy-ioi');
  const task = loadTask({ task: 'ioi', ...IOI_DEFAULTS, n }, { nCtx: loaded.config.nCtx });
  return new ExploreSession(loaded, task, engine, opts);
}

export async function serve(session: ExploreSession): Promise<ExploreServer> {
  return startExploreServer(session, { host: '127.0.0.1', port: 0, log: () => {} });
}

export interface Reply {
  status: number;
  json: Record<string, unknown> & { error?: string };
  text: string;
  headers: Record<string, string | string[] | undefined>;
}

/** One raw HTTP request (node:http, so the Host and Origin headers are ours to set). */
export function call(
  port: number,
  opts: { method?: string; path: string; headers?: Record<string, string>; body?: string | Buffer; chunks?: Buffer[] },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { Host: `127.0.0.1:${port}`, ...(opts.headers ?? {}) };
    if (opts.body !== undefined && opts.chunks === undefined) headers['Content-Length'] = String(Buffer.byteLength(opts.body));
    const req = request({ host: '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path, headers, setHost: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let json: Reply['json'] = {};
        try {
          json = JSON.parse(text);
        } catch {
          // not JSON (an asset)
        }
        resolve({ status: res.statusCode ?? 0, json, text, headers: res.headers });
      });
    });
    // A server that refuses a long body may close before it is all sent; the answer still counts.
    req.on('error', reject);
    if (opts.chunks) {
      for (const c of opts.chunks) req.write(c);
      req.end();
    } else {
      req.end(opts.body);
    }
  });
}

export function postJson(port: number, path: string, value: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  return call(port, { method: 'POST', path, headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(value) });
}
