import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const FIXTURE_RUN = join(here, 'fixtures', 'run');
export const OUT_ROOT = join(here, '..', '..', '.test-out', 'report');

/** A fresh copy of the fixture run, so a report never writes into the committed fixtures. */
export function freshRun(name: string, from = FIXTURE_RUN): string {
  const dir = join(OUT_ROOT, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dirname(dir), { recursive: true });
  if (from) cpSync(from, dir, { recursive: true });
  return dir;
}

export function emptyDir(name: string): string {
  const dir = join(OUT_ROOT, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}
