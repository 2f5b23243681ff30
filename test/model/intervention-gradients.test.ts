import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/onnx/session.ts';
import { HookedModel, type Intervention } from '../../src/model/hooked.ts';
import { randomModel } from '../helpers/random-model.ts';
import { rng } from '../helpers/gradcheck.ts';
import { pairAnswers } from '../helpers/answers.ts';

const engine = new Engine({ device: 'cpu', threads: 1 });

test('gradients with respect to intervention inputs (continuous keep masks and constant values) match finite differences (float64)', async () => {
  const m = randomModel({ nLayer: 2, nHead: 2, dModel: 8, vocabSize: 30, seed: 12 });
  const model = new HookedModel(m, engine, 'float64');
  const toks = [
    [3, 9, 12, 5, 7],
    [8, 2, 21],
    [11, 4, 29, 0],
  ];
  const answers = pairAnswers([[4, 9], [2, 21], [17, 1]]);
  const B = toks.length;
  const k = m.config.nHead;
  const dh = m.config.dHead;
  const d = m.config.dModel;
  const r = rng(3);
  // Masks strictly inside (0, 1): a mix of the model's value and the constant, per row.
  const feeds = {
    'z_keep.0': Float64Array.from({ length: B * k }, () => 0.2 + 0.6 * r()),
    'z_value.0': Float64Array.from({ length: k * dh }, () => r() - 0.5),
    'mlp_keep.1': Float64Array.from({ length: B }, () => 0.2 + 0.6 * r()),
    'mlp_value.1': Float64Array.from({ length: d }, () => r() - 0.5),
    'z_keep.1': Float64Array.from({ length: B * k }, () => 0.2 + 0.6 * r()),
    'z_value.1': Float64Array.from({ length: k * dh }, () => r() - 0.5),
  };
  const run = (f: typeof feeds, gradients?: string[]) => {
    const iv = (keep: Float64Array, value: Float64Array): Intervention => ({ keep, value: { shape: 'const', data: value } });
    return model.run({
      tokens: toks,
      logits: 'answers',
      answers,
      z: new Map([
        [0, iv(f['z_keep.0'], f['z_value.0'])],
        [1, iv(f['z_keep.1'], f['z_value.1'])],
      ]),
      mlp: new Map([[1, iv(f['mlp_keep.1'], f['mlp_value.1'])]]),
      gradients,
    });
  };
  const names = Object.keys(feeds) as (keyof typeof feeds)[];
  const base = await run(feeds, names);
  const sum = (x: ArrayLike<number>) => Array.from(x).reduce((s, v) => s + v, 0);
  const h = 1e-6;
  for (const name of names) {
    const grad = base.grads.get(name)!;
    assert.equal(grad.data.length, feeds[name].length, `${name}: gradient has the input's size`);
    for (let i = 0; i < feeds[name].length; i++) {
      const at = async (delta: number) => {
        const f = Object.fromEntries(names.map((n) => [n, Float64Array.from(feeds[n])])) as typeof feeds;
        f[name][i] += delta;
        return sum((await run(f)).metric!);
      };
      const numeric = ((await at(h)) - (await at(-h))) / (2 * h);
      assert.ok(Math.abs(numeric - grad.data[i]) < 1e-6 * Math.max(1, Math.abs(numeric)), `${name}[${i}]: analytic ${grad.data[i]} numeric ${numeric}`);
    }
  }
  // The last layer runs at the metric position only; its keep gradient is still the full one.
  assert.ok(sum(base.grads.get('z_keep.1')!.data.map(Math.abs)) > 0);
});
