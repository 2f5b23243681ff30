/**
 * Progress for long loops: a bar with an ETA on a terminal, nothing when stderr is piped
 * (logs and JSON stay clean). onnxruntime's run blocks the event loop, so bars are redrawn
 * from our own callbacks between runs rather than by a timer.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, total: number, label?: string): void;
  stop(): void;
}

const quiet: Progress = { update: () => {}, stop: () => {} };

export function progressBar(title: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY || process.env.CI) return quiet;
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: `${title} [{bar}] {percentage}% | {value}/{total} | ETA {eta_formatted} | {label}`,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 50,
      fps: 5,
      noTTYOutput: false,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total, label = '') {
      if (!started) {
        // Start at the first value, not 0: a resumed run's first update is the work already done,
        // and the ETA must not count it as done in no time.
        bar.start(total, done, { label });
        started = true;
      }
      bar.setTotal(total);
      bar.update(done, { label });
      bar.render();
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
