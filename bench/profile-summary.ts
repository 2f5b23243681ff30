/**
 * Where a graph's time goes: reads onnxruntime profiles (written by a bench run with
 * CARVE_ORT_PROFILE=<prefix>, see EngineOptions.profilePrefix) and prints, for the last run of each
 * session, the time per operator type and the slowest nodes with their shapes.
 *
 *     CARVE_ORT_PROFILE=/tmp/edges ONLY=eap npm run bench:edges
 *     node --import tsx bench/profile-summary.ts /tmp/edges_*.json
 *
 * Profiling adds a fixed cost per node, so graphs of many small nodes look slower than they run;
 * compare shares within one profile, not against unprofiled times.
 */
import { readFileSync } from 'node:fs';

interface ProfileEvent {
  cat?: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string; input_type_shape?: Record<string, number[]>[]; output_type_shape?: Record<string, number[]>[] };
}

const TOP = Number(process.env.TOP ?? 12);
const shapes = (xs: Record<string, number[]>[] | undefined) => (xs ?? []).map((x) => `[${Object.values(x)[0]}]`).join(' ');
const ms = (us: number) => (us / 1000).toFixed(1).padStart(8);

for (const file of process.argv.slice(2)) {
  const events = JSON.parse(readFileSync(file, 'utf8')) as ProfileEvent[];
  const runs = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
  const last = runs.at(-1);
  if (!last) continue;
  const nodes = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time') && e.ts >= last.ts && e.ts <= last.ts + last.dur);
  const byOp = new Map<string, { us: number; n: number }>();
  for (const e of nodes) {
    const op = e.args?.op_name ?? '?';
    const s = byOp.get(op) ?? { us: 0, n: 0 };
    s.us += e.dur;
    s.n++;
    byOp.set(op, s);
  }
  const total = nodes.reduce((a, e) => a + e.dur, 0);
  console.log(`${file}: ${runs.length} runs; the last: ${ms(last.dur)} ms, ${ms(total)} ms in ${nodes.length} nodes`);
  for (const [op, s] of [...byOp].sort((a, b) => b[1].us - a[1].us).slice(0, TOP)) {
    console.log(`  ${op.padEnd(22)} ${ms(s.us)} ms ${((100 * s.us) / total).toFixed(1).padStart(5)}%  ${s.n} nodes`);
  }
  console.log('  slowest nodes:');
  for (const e of [...nodes].sort((a, b) => b.dur - a.dur).slice(0, TOP)) {
    console.log(`  ${ms(e.dur)} ms  ${(e.args?.op_name ?? '?').padEnd(14)} ${shapes(e.args?.input_type_shape)} -> ${shapes(e.args?.output_type_shape)}`);
  }
}
