/**
 * Running `carve ...` in this process (no start-up cost). Only stderr is captured: stdout carries
 * the test file's own report to the test runner (capturing it loses test results), so in-process
 * commands must write their JSON with --out.
 */
import { main } from '../../src/cli/main.ts';

export interface CarveRun {
  stderr: string;
  code: number;
}

export async function carveInProcess(args: string[]): Promise<CarveRun> {
  let stderr = '';
  const err = process.stderr.write;
  process.stderr.write = ((s: string | Uint8Array) => ((stderr += String(s)), true)) as typeof process.stderr.write;
  const before = process.exitCode;
  process.exitCode = 0;
  try {
    await main(['node', 'carve', ...args]);
  } finally {
    process.stderr.write = err;
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = before;
  return { stderr, code };
}
