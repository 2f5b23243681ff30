/**
 * The interrupted-then-resumed pattern every resumable run is tested with (pruning, the exact edge
 * scan, ACDC over edges): run until `after` checkpoints have been saved, throw from the next one as
 * an interruption would, then resume from the last one saved. Checkpoints are read back through
 * JSON (or the run's own parser), as the CLI reads them from FILE.partial.json.
 */
import assert from 'node:assert/strict';

/** A run given its checkpoint hooks (the library's ResumeHooks, or the part of them the test sets). */
export type ResumableRun<CP, R> = (hooks: { onCheckpoint?: (cp: CP) => void; resume?: CP }) => Promise<R>;

/** How a saved checkpoint is read back: JSON by default, or a format's parser (text, where). */
export type ReadBack<CP> = (text: string, where: string) => CP;
const json = <CP>(text: string) => JSON.parse(text) as CP;

/** Run, throwing from the checkpoint callback once `after` checkpoints are saved; the last one saved. */
export async function interruptedAfter<CP>(run: ResumableRun<CP, unknown>, after: number, read: ReadBack<CP> = json): Promise<CP> {
  let saved: CP | undefined;
  let calls = 0;
  await assert.rejects(
    run({
      onCheckpoint: (cp) => {
        if (++calls > after) throw new Error('interrupted');
        saved = read(JSON.stringify(cp), 'x.partial.json');
      },
    }),
    /interrupted/,
    `the run ended before checkpoint ${after + 1}`,
  );
  assert.ok(saved, 'no checkpoint was saved before the interruption');
  return saved;
}

/** interruptedAfter, then the same run resumed from the checkpoint: its result and the checkpoints it made. */
export async function interruptedThenResumed<CP, R>(
  run: ResumableRun<CP, R>,
  after: number,
  read: ReadBack<CP> = json,
): Promise<{ result: R; saved: CP; checkpoints: CP[] }> {
  const saved = await interruptedAfter(run, after, read);
  const checkpoints: CP[] = [];
  const result = await run({ resume: saved, onCheckpoint: (cp) => void checkpoints.push(JSON.parse(JSON.stringify(cp))) });
  return { result, saved, checkpoints };
}
