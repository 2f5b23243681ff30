import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  accuracy,
  klDivergence,
  klDivergences,
  klFromClean,
  logitDiff,
  logitDiffs,
  logSoftmax,
  logSoftmaxRows,
  logSumExp,
  mean,
  normalizedMetric,
  normalizedMetrics,
  std,
  summarize,
  taskMetrics,
  probDiff,
  answeredCorrectly,
  setAccuracy,
} from '../../src/task/metrics.ts';

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('logit difference per prompt, from Float32Array and plain rows', () => {
  const rows = [Float32Array.from([0, 3, 1, 0]), [5, 0, 0, 2]];
  const answers = [
    { correct: [1], incorrect: [2] },
    { correct: [3], incorrect: [0] },
  ];
  assert.equal(logitDiff(rows[0]!, answers[0]!), 2);
  assert.deepEqual(Array.from(logitDiffs(rows, answers)), [2, -3]);
  assert.throws(() => logitDiffs(rows, answers.slice(1)), RangeError);
});

test('answer sets: logit-diff is the difference of set means, prob-diff of set probability masses; accuracy takes the best answer', () => {
  const row = [2, 0, 1, -1, 3];
  const a = { correct: [0, 4], incorrect: [1, 2, 3] };
  close(logitDiff(row, a), (2 + 3) / 2 - (0 + 1 - 1) / 3);
  const z = row.reduce((s, v) => s + Math.exp(v), 0);
  close(probDiff(row, a), (Math.exp(2) + Math.exp(3) - Math.exp(0) - Math.exp(1) - Math.exp(-1)) / z, 1e-15);
  // One answer each: the old definitions.
  close(logitDiff(row, { correct: [2], incorrect: [1] }), 1);
  assert.equal(answeredCorrectly([1, 5, 2, 4], 2), true, 'the best answer (5) is correct');
  assert.equal(answeredCorrectly([1, 4, 5, 0], 2), false);
  assert.equal(answeredCorrectly([4, 4], 1), false, 'ties are wrong');
  close(setAccuracy([[1, 5, 2, 4], [1, 4, 5, 0]], [a, a].map(() => ({ correct: [0, 1], incorrect: [2, 3] }))), 0.5);
});

test('mean and std: std is the sample std (n - 1), as torch.std by default', () => {
  const xs = [1.5, -0.25, 3.0, 0.75, 2.0];
  close(mean(xs), 1.4);
  close(std(xs), 1.2323757543866238); // numpy x.std(ddof=1)
  assert.equal(std([4.2]), 0, 'one value: 0, not NaN, so JSON can hold it');
  assert.ok(Number.isNaN(mean([])));
  assert.deepEqual(summarize([1, 3]), { mean: 2, std: Math.SQRT2, n: 2 });
});

test('accuracy is the share with logit[correct] > logit[incorrect]; ties are wrong', () => {
  assert.equal(accuracy([1, -1, 0, 2]), 0.5);
  const one = { correct: [1], incorrect: [0] };
  const m = taskMetrics([[1, 2], [3, 1], [0, 0]], [one, one, one]);
  assert.deepEqual(Array.from(m.logitDiffs), [1, -2, 0]);
  close(m.accuracy, 1 / 3);
  close(m.logitDiff.mean, -1 / 3);
});

test('normalised metric: (metric - corrupt) / (clean - corrupt)', () => {
  assert.equal(normalizedMetric(3, 3, -1), 1);
  assert.equal(normalizedMetric(-1, 3, -1), 0);
  assert.equal(normalizedMetric(1, 3, -1), 0.5);
  assert.ok(Number.isNaN(normalizedMetric(1, 2, 2)));
  assert.deepEqual(Array.from(normalizedMetrics([1, 0], [3, 2], [-1, 0])), [0.5, 0]);
});

test('log-softmax is numerically stable and matches numpy', () => {
  const expected = [-0.42146050191195483, -1.4214605019119548, -2.3214605019119547, -5.421460501911955];
  logSoftmax([2.0, 1.0, 0.1, -3.0]).forEach((v, i) => close(v, expected[i]!));
  // Huge logits would overflow exp() without the max shift.
  const big = logSoftmax(Float32Array.from([1000, 1000]));
  close(big[0]!, -Math.LN2);
  close(logSumExp([1e4, 0]), 1e4);
  const rows = logSoftmaxRows(Float64Array.from([2.0, 1.0, 0.1, -3.0, 0, 0, 0, 0]), 4);
  assert.equal(rows.length, 2);
  close(rows[1]![0]!, -Math.log(4));
  assert.throws(() => logSoftmaxRows([1, 2, 3], 2), RangeError);
});

test('KL divergence from the clean distribution', () => {
  const clean = logSoftmax([2.0, 1.0, 0.1, -3.0]);
  close(klFromClean(clean, [0.5, 0.2, 3.0, -1.0]), 1.6118046800357464, 1e-12); // numpy
  assert.equal(klFromClean(clean, [2.0, 1.0, 0.1, -3.0]), 0);
  // p = 0 terms contribute nothing, even where q = 0.
  assert.equal(klDivergence([0, -Infinity], [0, -Infinity]), 0);
  assert.equal(klDivergence([Math.log(0.5), Math.log(0.5)], [0, -Infinity]), Infinity);
  const per = klDivergences([clean, clean], [Float32Array.from([2, 1, 0.1, -3]), [0.5, 0.2, 3.0, -1.0]]);
  close(per[0]!, 0, 1e-6);
  close(per[1]!, 1.6118046800357464, 1e-12);
});
