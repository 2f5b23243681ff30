import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PyRandom } from '../../src/task/random-python.ts';
import { NpRandomState } from '../../src/task/random-numpy.ts';
import { bitLength } from '../../src/task/mt19937.ts';

// Produced with CPython 3.11.7 (random) and numpy 2.4.6 (np.random.RandomState) on this machine.
// Random values are repr() strings of the doubles, compared exactly.
const PY: Record<string, { u32: number[]; random: string[]; bits: number[]; randbelow: number[]; choice: string[]; shuffle14: number[]; randint: number[] }> = {
  '0': {
    u32: [3626764237, 1654615998, 3255389356, 3823568514, 1806341205],
    random: ['0.8444218515250481', '0.7579544029403025', '0.420571580830845', '0.25891675029296335'],
    bits: [1, 12, 99346, 1911784257, 1806341205, 271752282791482, 4376848748439138],
    randbelow: [0, 1, 0, 2, 8, 62, 51, 962838, 1302718217, 4156669319, 619073466650],
    choice: ['g', 'd', 'g', 'd', 'a', 'c', 'e', 'd', 'd', 'g', 'g', 'c'],
    shuffle14: [1, 10, 9, 5, 11, 2, 3, 7, 8, 4, 0, 12, 6, 13],
    randint: [36, 36, 30, 34, 38, 37],
  },
  '1': {
    u32: [577090037, 2444712010, 3639700191, 3445702192, 3280387012],
    random: ['0.13436424411240122', '0.8474337369372327', '0.763774618976614', '0.2550690257394217'],
    bits: [0, 18, 111074, 1722851096, 3280387012, 33188307809340, 6854138572100987],
    randbelow: [0, 0, 1, 0, 7, 97, 57, 495185, 1630434966, 3387541014, 1069849980556],
    choice: ['b', 'e', 'g', 'g', 'g', 'a', 'c', 'a', 'd', 'g', 'd', 'd'],
    shuffle14: [13, 10, 0, 12, 6, 5, 3, 8, 7, 11, 4, 1, 9, 2],
    randint: [32, 39, 31, 34, 31, 37],
  },
  '42': {
    u32: [2746317213, 478163327, 107420369, 3184935163, 1181241943],
    random: ['0.6394267984578837', '0.025010755222666936', '0.27502931836911926', '0.22321073814882275'],
    bits: [1, 3, 3278, 1592467581, 1181241943, 39274139637470, 923193498493097],
    randbelow: [0, 0, 2, 2, 3, 28, 17, 772246, 440213415, 1812140441, 201991441006],
    choice: ['f', 'a', 'a', 'f', 'c', 'b', 'b', 'b', 'f', 'a', 'f', 'f'],
    shuffle14: [8, 12, 7, 6, 13, 11, 5, 2, 9, 3, 4, 0, 1, 10],
    randint: [40, 31, 30, 34, 33, 33],
  },
  '4294967301': {
    u32: [675479763, 2085189291, 1213270837, 3822202474, 2596110301],
    random: ['0.15727238718789782', '0.2824866316461999', '0.6044540318498407', '0.014523449205355199'],
    bits: [0, 15, 37026, 1911101237, 6891077597, 99939656388353, 1543107136316917],
    randbelow: [0, 1, 1, 4, 13, 1, 45, 658270, 735810335, 3497239160, 350051233592],
    choice: ['b', 'd', 'c', 'e', 'g', 'a', 'c', 'f', 'b', 'g', 'g', 'f'],
    shuffle14: [11, 1, 10, 12, 3, 8, 6, 13, 5, 0, 9, 4, 7, 2],
    randint: [32, 37, 34, 39, 30, 35],
  },
  '-7': {
    u32: [1390851128, 4071050724, 647892279, 1695753998, 2795742288],
    random: ['0.32383276483316237', '0.15084917392450192', '0.6509344730398537', '0.07243628666754276'],
    bits: [0, 30, 19772, 847876999, 2795742288, 231168335884083, 847850320662571],
    randbelow: [0, 0, 1, 5, 0, 9, 105, 561913, 404285457, 2179419893, 189139603672],
    choice: ['c', 'b', 'd', 'f', 'a', 'a', 'g', 'e', 'a', 'c', 'e', 'a'],
    shuffle14: [3, 11, 13, 7, 9, 4, 12, 8, 1, 0, 10, 6, 2, 5],
    randint: [35, 32, 36, 40, 30, 31],
  },
  '18446744073709551619': {
    u32: [3921169615, 2134766284, 3962962676, 423737322, 3563206199],
    random: ['0.9129684455472157', '0.9226991467077957', '0.8296235909088164', '0.02124302826685509'],
    bits: [1, 15, 120940, 211868661, 3563206199, 278606029795016, 2382891624975063],
    randbelow: [0, 0, 1, 0, 3, 33, 0, 321953, 1632727415, 4238203955, 26704737539],
    choice: ['d', 'a', 'g', 'd', 'a', 'b', 'c', 'a', 'c', 'd', 'd', 'e'],
    shuffle14: [6, 11, 8, 12, 5, 9, 2, 10, 4, 3, 0, 13, 1, 7],
    randint: [37, 31, 37, 30, 33, 34],
  },
};
const NP: Record<string, { u32: number[]; randint7: number[]; randintRanges: number[]; randint1arg: number[]; choiceList: string[]; choiceInt: number[]; randomSample: string[]; shuffle10: number[]; permutation7: number[] }> = {
  '0': {
    u32: [2357136044, 2546248239, 3071714933, 3626093760, 2588848963],
    randint7: [4, 5, 0, 3, 3, 3, 1, 3, 5, 2, 4, 6],
    randintRanges: [0, 5, 7, 7, 5, 195, 67, 1537364731, 2340255427, 1879422756, -722019337146, 1334639456328280],
    randint1arg: [5, 0, 3, 3, 7],
    choiceList: ['computer', 'necklace', 'ring', 'basketball', 'basketball', 'basketball', 'kiss', 'basketball', 'necklace', 'bone'],
    choiceInt: [44, 47, 64, 67, 67, 103],
    randomSample: ['0.5488135039273248', '0.7151893663724195', '0.6027633760716439'],
    shuffle10: [2, 8, 4, 9, 1, 6, 7, 3, 0, 5],
    permutation7: [6, 2, 1, 3, 0, 5, 4],
  },
  '1': {
    u32: [1791095845, 4282876139, 3093770124, 4005303368, 491263],
    randint7: [5, 3, 4, 0, 1, 3, 5, 0, 0, 1, 4, 5],
    randintRanges: [0, 5, 0, 3, 8, 770, 9, 1298508491, 4290846341, 1703301249, 877839392327, 6380387248142844],
    randint1arg: [5, 8, 9, 5, 0],
    choiceList: ['necklace', 'basketball', 'computer', 'ring', 'kiss', 'basketball', 'necklace', 'ring', 'ring', 'kiss'],
    choiceInt: [37, 12, 72, 9, 75, 5],
    randomSample: ['0.417022004702574', '0.7203244934421581', '0.00011437481734488664'],
    shuffle10: [2, 9, 6, 4, 0, 3, 1, 7, 8, 5],
    permutation7: [6, 2, 1, 0, 4, 3, 5],
  },
  '42': {
    u32: [1608637542, 3421126067, 4083286876, 787846414, 3143890026],
    randint7: [6, 3, 4, 6, 2, 4, 4, 6, 1, 2, 6, 2],
    randintRanges: [0, 5, 1, 3, 7, 703, 20, 670094950, 1914837113, 429389014, 319800038858, 8365459559542132],
    randint1arg: [6, 3, 7, 4, 6],
    choiceList: ['basketball', 'computer', 'bone', 'computer', 'computer', 'kiss', 'bone', 'bone', 'bone', 'computer'],
    choiceInt: [102, 51, 92, 14, 71, 60],
    randomSample: ['0.3745401188473625', '0.9507143064099162', '0.7319939418114051'],
    shuffle10: [8, 1, 5, 0, 7, 2, 9, 4, 3, 6],
    permutation7: [0, 1, 5, 2, 4, 3, 6],
  },
  '1220': {
    u32: [823829347, 1543973335, 2117654459, 1431429457, 2350699251],
    randint7: [3, 3, 1, 3, 4, 2, 2, 3, 2, 4, 6, 1],
    randintRanges: [0, 5, -2, 7, 1, 758, 12, 1602367010, 2193923866, 3227362478, -748128930045, 6379263457090833],
    randint1arg: [3, 7, 1, 3, 2],
    choiceList: ['basketball', 'basketball', 'kiss', 'basketball', 'computer', 'bone', 'bone', 'basketball', 'bone', 'computer'],
    choiceInt: [99, 87, 59, 81, 12, 34],
    randomSample: ['0.19181271910283193', '0.49305484692216395', '0.5473148192211112'],
    shuffle10: [0, 6, 5, 2, 4, 8, 1, 9, 7, 3],
    permutation7: [4, 2, 0, 5, 1, 6, 3],
  },
  '4294967295': {
    u32: [419326371, 479346978, 3918654476, 2416749639, 3388880820],
    randint7: [3, 2, 4, 4, 0, 6, 2, 1, 0, 3, 2, 3],
    randintRanges: [0, 5, -2, 2, 7, 951, 64, 1202606294, 3309765114, 2987145323, 50248231114, 3604315813338253],
    randint1arg: [3, 2, 7, 4, 0],
    choiceList: ['basketball', 'bone', 'computer', 'computer', 'ring', 'bone', 'kiss', 'ring', 'basketball', 'bone'],
    choiceInt: [35, 34, 12, 71, 52, 64],
    randomSample: ['0.0976320289940138', '0.9123828453026218', '0.78903530185164'],
    shuffle10: [6, 9, 5, 1, 8, 0, 7, 4, 2, 3],
    permutation7: [1, 5, 0, 6, 4, 2, 3],
  },
};

const seq = <T>(n: number, f: () => T): T[] => Array.from({ length: n }, f);
const LETTERS = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
const OBJECTS = ['ring', 'kiss', 'bone', 'basketball', 'computer', 'necklace'];

for (const [seedText, e] of Object.entries(PY)) {
  test(`CPython random, seed ${seedText}`, () => {
    const seed = BigInt(seedText);
    const r = new PyRandom(seed);
    assert.deepEqual(seq(5, () => r.getrandbits(32)), e.u32, 'MT19937 words after init_by_array');
    r.seed(seed);
    assert.deepEqual(seq(4, () => r.random()), e.random.map(Number), 'random()');
    r.seed(seed);
    assert.deepEqual([1, 5, 17, 31, 33, 48, 53].map((k) => r.getrandbits(k)), e.bits, 'getrandbits(k)');
    r.seed(seed);
    assert.deepEqual([1, 2, 3, 7, 14, 100, 109, 1000003, 2 ** 31, 2 ** 32 + 7, 2 ** 40].map((n) => r.randrange(n)), e.randbelow, '_randbelow');
    r.seed(seed);
    assert.deepEqual(seq(12, () => r.choice(LETTERS)), e.choice, 'choice');
    r.seed(seed);
    const x = seq(14, () => 0).map((_, i) => i);
    r.shuffle(x);
    assert.deepEqual(x, e.shuffle14, 'shuffle');
    r.seed(seed);
    assert.deepEqual(seq(6, () => r.randint(30, 40)), e.randint, 'randint');
  });
}

test('CPython random: number seeds equal bigint seeds; negative seeds use |seed|', () => {
  assert.deepEqual(seq(3, () => new PyRandom(42).random()), seq(3, () => new PyRandom(42n).random()));
  const a = new PyRandom(-7);
  const b = new PyRandom(7);
  assert.deepEqual(seq(5, () => a.getrandbits(32)), seq(5, () => b.getrandbits(32)));
  assert.throws(() => new PyRandom(0).choice([]), RangeError);
  assert.throws(() => new PyRandom(0).randbelow(0), RangeError);
});

for (const [seedText, e] of Object.entries(NP)) {
  test(`numpy legacy RandomState, seed ${seedText}`, () => {
    const seed = Number(seedText);
    const r = new NpRandomState(seed);
    assert.deepEqual(seq(5, () => r.randint(0, 2 ** 32)), e.u32, 'raw words after init_genrand');
    r.seed(seed);
    assert.deepEqual(seq(12, () => r.randint(0, 7)), e.randint7, 'randint(0, 7)');
    r.seed(seed);
    const ranges: [number, number][] = [[0, 1], [5, 6], [-5, 10], [0, 8], [0, 9], [3, 1000], [0, 106], [0, 2 ** 31], [0, 2 ** 32], [0, 2 ** 32 + 1], [-(2 ** 40), 2 ** 40], [0, 2 ** 53]];
    assert.deepEqual(ranges.map(([lo, hi]) => r.randint(lo, hi)), e.randintRanges, 'randint over assorted ranges (one-value ranges draw nothing)');
    r.seed(seed);
    assert.deepEqual(seq(5, () => r.randint(10)), e.randint1arg, 'randint(high)');
    r.seed(seed);
    assert.deepEqual(seq(10, () => r.choice(OBJECTS)), e.choiceList, 'choice(list)');
    r.seed(seed);
    assert.deepEqual(seq(6, () => r.choiceIndex(106)), e.choiceInt, 'choice(int)');
    r.seed(seed);
    assert.deepEqual(seq(3, () => r.randomSample()), e.randomSample.map(Number), 'random_sample');
    r.seed(seed);
    const x = seq(10, () => 0).map((_, i) => i);
    r.shuffle(x);
    assert.deepEqual(x, e.shuffle10, 'shuffle');
    r.seed(seed);
    assert.deepEqual(r.permutation(7), e.permutation7, 'permutation');
  });
}

test('numpy legacy RandomState rejects what numpy rejects', () => {
  assert.throws(() => new NpRandomState(-1), RangeError);
  assert.throws(() => new NpRandomState(2 ** 32), RangeError);
  assert.throws(() => new NpRandomState(0).randint(3, 3), RangeError);
  assert.throws(() => new NpRandomState(0).choice([]), RangeError);
});

test('bitLength matches int.bit_length', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 255, 256, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1].map(bitLength), [0, 1, 2, 2, 3, 8, 9, 32, 32, 33, 53]);
});
