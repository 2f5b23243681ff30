/** Running the carve command line from tests: as a child process (the real thing, exit code and all). */
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
const BIN = join(ROOT, 'bin', 'carve.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function carve(args: string[], cwd = ROOT): Promise<CliResult> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, NO_COLOR: '1', CI: '1' } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', rej);
    p.on('close', (code) => res({ code, stdout, stderr }));
  });
}

/** A user error: exit 2, exactly one `carve: error:` line on stderr, nothing on stdout. */
export function isUserError(r: CliResult): boolean {
  const lines = r.stderr.trim().split('\n');
  return r.code === 2 && lines.length === 1 && lines[0].startsWith('carve: error: ') && r.stdout === '';
}

/**
 * Assert a user error: exit 2, one `carve: error:` line on stderr matching `pattern`, and (given
 * `out`) no output file written.
 */
export function assertUserError(r: CliResult, pattern: RegExp, out?: string): void {
  assert.equal(r.code, 2, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^carve: error: /);
  assert.match(lines[0], pattern);
  if (out !== undefined) assert.ok(!existsSync(out), `${out} must not be written after a user error`);
}

/**
 * The same command line run in this process (no start-up cost): for user errors, whose whole
 * output is the stderr line and the exit code. stdout is not captured (it carries the test's report).
 */
export async function carveHere(args: string[], cwd?: string): Promise<CliResult> {
  const { main } = await import('../../src/cli/main.ts');
  let stderr = '';
  const write = process.stderr.write;
  const saved = process.exitCode;
  process.exitCode = 0;
  process.stderr.write = ((s: string) => ((stderr += s), true)) as typeof process.stderr.write;
  const here = process.cwd();
  try {
    if (cwd) process.chdir(cwd);
    await main(['node', 'carve', ...args]);
  } finally {
    process.chdir(here);
    process.stderr.write = write;
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = saved;
  return { code, stdout: '', stderr };
}

/** The in-process runner under the name the architecture and prune CLI tests use. */
export const carveInProcess = carveHere;
export type CarveRun = CliResult;
