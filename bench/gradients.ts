/**
 * bench/gradients: on the GPT-2-small-shaped model with 25 IOI prompts, the time of one
 * forward-and-backward pass giving the metric's gradient at every component (every layer's hook_z
 * and hook_mlp_out) as a ratio to one forward pass computing the metric, measured interleaved in
 * the same run.
 */
import { Engine } from '../src/onnx/session.ts';
import { HookedModel } from '../src/model/hooked.ts';
import { componentHooks } from '../src/discover/replacements.ts';
import { loadGpt2Small, ioiPrompts, median } from './gpt2-small.ts';

const engine = new Engine({ device: 'cpu', threads: 0 });
const model = new HookedModel(loadGpt2Small(), engine);
const task = await ioiPrompts(25);
const tokens = task.pairs.map((p) => p.clean);
const answers = task.pairs;
const { z, mlp } = componentHooks(model);
const hooks = [...z.values(), ...mlp.values()];
const forward = () => model.run({ tokens, logits: 'answers', answers });
const backward = () => model.run({ tokens, logits: 'answers', answers, gradients: hooks });
await forward();
await backward();
const f: number[] = [];
const b: number[] = [];
for (let i = 0; i < Number(process.env.REPS ?? 7); i++) {
  let t0 = performance.now();
  await forward();
  f.push(performance.now() - t0);
  t0 = performance.now();
  await backward();
  b.push(performance.now() - t0);
}
const out = { forward_ms: median(f), forward_backward_ms: median(b), ratio: median(b) / median(f), gradient_hooks: hooks.length };
console.log(JSON.stringify(out, null, 2));
console.log(`forward+backward to all ${hooks.length} component hooks = ${out.ratio.toFixed(2)} x one forward`);
await engine.release();
