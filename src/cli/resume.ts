/**
 * `--out FILE` and `--resume` for the commands whose runs can be long (`carve prune`, the exact
 * `carve scan --level edges`): checkpoints go to FILE.partial.json, written atomically, and
 * `--resume` continues from that file. What a checkpoint holds and whether it belongs to the run is
 * the library's (discover/checkpoint.ts); here is only the file handling every command shares.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { fail } from '../util/errors.ts';
import { writeFileAtomic } from '../util/atomic.ts';

/** Where the partial result of `--out FILE` lives. */
export function partialPath(out: string): string {
  return `${out}.partial.json`;
}

/** Read a partial file and check its shape with `parse` (whether it belongs to this run is the run's check). */
export function readPartial<CP>(path: string, parse: (text: string, where: string) => CP): CP {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    fail(`${path}: cannot read the partial result: ${(e as Error).message.split('\n')[0]}`);
  }
  return parse(text, path);
}

/**
 * The partial file of `--out FILE` and, with `--resume`, the checkpoint read from it (none, with a
 * note on stderr, when an interrupted run left no file: the run starts from the beginning). Call
 * it before loading anything, so that a bad flag or file costs nothing.
 */
export function resumeFrom<CP>(opts: { resume?: boolean; out?: string }, parse: (text: string, where: string) => CP): { partial?: string; resume?: CP } {
  if (opts.resume && !opts.out) fail('--resume needs --out FILE: the partial result lives in FILE.partial.json');
  if (!opts.out) return {};
  const partial = partialPath(opts.out);
  if (!opts.resume) return { partial };
  if (existsSync(partial)) return { partial, resume: readPartial(partial, parse) };
  process.stderr.write(`carve: no ${partial} to resume from; starting from the beginning\n`);
  return { partial };
}

/**
 * A checkpoint callback writing to `path` (atomically: temp file, then rename). With
 * `everySeconds`, at most that often, counted from its creation — so a run shorter than that
 * writes none — for checkpoints that are large or frequent; every checkpoint holds the whole state,
 * so skipping some loses only the work since the last one written.
 */
export function partialWriter<CP>(path: string | undefined, everySeconds = 0): ((cp: CP) => void) | undefined {
  if (!path) return undefined;
  let last = performance.now();
  return (cp) => {
    const now = performance.now();
    if (everySeconds > 0 && now - last < everySeconds * 1000) return;
    writeFileAtomic(path, JSON.stringify(cp) + '\n');
    last = now;
  };
}

/** Once the output is written: the partial file has served (or is a stale one this run replaced). */
export function removePartial(path: string | undefined): void {
  if (path) rmSync(path, { force: true });
}
