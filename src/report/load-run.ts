/**
 * Reads a run directory into typed data. Files are recognised by what their JSON holds, not by their
 * names, because users rename and collect outputs freely; anything unrecognised is left alone.
 */
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { join, relative, basename, extname } from 'node:path';
import { fail } from '../util/errors.ts';
import { scanMethodLabel } from '../discover/method-label.ts';

export interface ScanComponent {
  name: string;
  layer: number;
  /** null for an MLP. */
  head: number | null;
  score: number;
  std: number | null;
}

export interface ScanData {
  file: string;
  model: string | null;
  task: string | null;
  ablation: string;
  method: string;
  /** The metric the scan used (`metric_name`; files from before it existed: null, i.e. logit-diff). */
  metricName: string | null;
  nPrompts: number | null;
  cleanMetric: number | null;
  cleanStd: number | null;
  corruptMetric: number | null;
  components: ScanComponent[];
}

export interface PruneStep {
  removed: number;
  component: string | null;
  metric: number;
  std: number | null;
  /** With `--eval-task`: the same removals measured on the evaluation prompts. */
  evalMetric?: number | null;
  evalStd?: number | null;
}

export interface PruneData {
  file: string;
  order: string;
  ablation: string;
  method: string;
  metricName: string | null;
  cleanMetric: number | null;
  corruptMetric: number | null;
  steps: PruneStep[];
  /** With `--eval-task`: the evaluation task and its clean metric. */
  evalTask?: string | null;
  evalCleanMetric?: number | null;
}

export interface EvalData {
  file: string;
  /** A short display name: "original"/"compressed" from the demo's file names, else the model field. */
  label: string;
  model: string | null;
  metricName: string | null;
  metric: number;
  std: number | null;
  accuracy: number;
  nParams: number;
  nParamsNonEmbedding: number | null;
  msPerPrompt: number | null;
  /** MLP neurons the model has (absent in evals written before neuron pruning existed). */
  nNeurons: number | null;
  /** Model files on disk, and its ONNX export (float16 weights). */
  fileBytes: number | null;
  onnxF16Bytes: number | null;
}

export interface TaskPrompt {
  clean: string | null;
  corrupt: string | null;
  /** A single answer's text, or an answer set's texts. */
  correct: string | string[] | null;
  incorrect: string | string[] | null;
  io: string | null;
  s: string | null;
  /** Token-form tasks carry no text; the ids stand in for it. */
  cleanTokens: number[] | null;
}

export interface TaskData {
  file: string;
  /** Lines in the file that hold a prompt. */
  count: number;
  /** The first few prompts, for display. */
  prompts: TaskPrompt[];
}

export interface KeptLayer {
  sourceLayer: number;
  heads: number[];
  mlp: boolean;
  /** Neurons the MLP keeps, when neuron pruning cut it (absent: all of them). */
  neurons?: number;
}

export interface CompressedModelData {
  /** The directory, relative to the run directory. */
  dir: string;
  nHead: number | null;
  nLayer: number | null;
  layers: KeptLayer[];
  /** Size of model.safetensors in bytes, when present. */
  weightBytes: number | null;
  /** The original MLP width, when the config says. */
  dMlp: number | null;
  /** Tokens the model keeps, when its vocabulary was trimmed to the task's. */
  vocabKept: number | null;
}

/** An edge scan (`carve scan --level edges`): one score per edge. */
export interface EdgeScanData {
  file: string;
  model: string | null;
  task: string | null;
  ablation: string;
  method: string;
  edges: { name: string; sender: string; receiver: string; score: number }[];
}

/** ACDC over edges (`carve prune --order acdc --level edges`): the edges kept. */
export interface EdgePruneData {
  file: string;
  ablation: string;
  threshold: number | null;
  nEdges: number | null;
  kept: { name: string; sender: string; receiver: string }[];
  finalMetric: number | null;
  cleanMetric: number | null;
}

/** A faithfulness curve (`carve faithfulness`). */
export interface FaithfulnessData {
  file: string;
  level: string;
  /** The method of the scan whose ranking was tested, and that scan's file, when recorded. */
  method: string | null;
  scoresFile: string | null;
  ablation: string;
  /** `mib` for MIB's own evaluation (points: the |score| ranking, CPR from the signed one); null: nominal. */
  variant: string | null;
  points: { fraction: number; faithfulness: number; metric: number; kept: number | null }[];
  cpr: number;
  cmd: number;
}

export interface RunData {
  dir: string;
  scans: ScanData[];
  prunes: PruneData[];
  edgeScans: EdgeScanData[];
  edgePrunes: EdgePruneData[];
  faithfulness: FaithfulnessData[];
  evals: EvalData[];
  task: TaskData | null;
  compressed: CompressedModelData[];
  /** Files that looked like carve output but could not be read; reported, not fatal. */
  warnings: string[];
}

/** How many prompts the report shows; the rest only count. */
export const TASK_PROMPTS_SHOWN = 8;
/** Deeper than this is not a run layout carve writes, and walking it could take long. */
const MAX_DEPTH = 3;
/** Tokenizer or weight dumps can be large JSON; carve's own outputs are far smaller. */
const MAX_JSON_BYTES = 32 * 1024 * 1024;
/** The report's own output: never read back as input. */
const OUTPUT_DIRS = new Set(['figures', 'node_modules']);

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Field readers that name the file and field, so a user can find the bad value. */
class Fields {
  constructor(private readonly where: string) {}

  num(o: Obj, key: string): number {
    const v = o[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(`${this.where}: field "${key}" must be a finite number`);
    return v;
  }

  optNum(o: Obj, key: string): number | null {
    const v = o[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(`${this.where}: field "${key}" must be a number or null`);
    return v;
  }

  int(o: Obj, key: string): number {
    const v = this.num(o, key);
    if (!Number.isInteger(v) || v < 0) fail(`${this.where}: field "${key}" must be a non-negative integer`);
    return v;
  }

  str(o: Obj, key: string, fallback: string): string {
    const v = o[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'string') fail(`${this.where}: field "${key}" must be a string`);
    return v;
  }

  optStr(o: Obj, key: string): string | null {
    const v = o[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') fail(`${this.where}: field "${key}" must be a string`);
    return v;
  }

  at(index: number, arrayName: string): Fields {
    return new Fields(`${this.where}: ${arrayName}[${index}]`);
  }
}

function parseScan(file: string, o: Obj): ScanData {
  const f = new Fields(file);
  const raw = o.components as unknown[];
  if (raw.length === 0) fail(`${file}: "components" is empty`);
  const components = raw.map((c, i): ScanComponent => {
    const g = f.at(i, 'components');
    if (!isObj(c)) fail(`${file}: components[${i}] must be an object`);
    const layer = g.int(c, 'layer');
    const head = c.head === null || c.head === undefined ? null : g.int(c, 'head');
    const name = g.str(c, 'name', head === null ? `L${layer}MLP` : `L${layer}H${head}`);
    return { name, layer, head, score: g.num(c, 'score'), std: g.optNum(c, 'std') };
  });
  return {
    file,
    model: f.optStr(o, 'model'),
    task: f.optStr(o, 'task'),
    ablation: f.str(o, 'ablation', 'unknown'),
    method: f.str(o, 'method', 'unknown'),
    metricName: f.optStr(o, 'metric_name'),
    nPrompts: f.optNum(o, 'n_prompts'),
    cleanMetric: f.optNum(o, 'clean_metric'),
    cleanStd: f.optNum(o, 'clean_std'),
    corruptMetric: f.optNum(o, 'corrupt_metric'),
    components,
  };
}

/** `SENDER->RECEIVER` split at its arrow. */
function splitEdge(file: string, where: string, name: string): { sender: string; receiver: string } {
  const at = name.indexOf('->');
  if (at <= 0 || at + 2 >= name.length) fail(`${file}: ${where}: ${JSON.stringify(name)} is not an edge name (SENDER->RECEIVER)`);
  return { sender: name.slice(0, at), receiver: name.slice(at + 2) };
}

function parseEdgeScan(file: string, o: Obj): EdgeScanData {
  const f = new Fields(file);
  const raw = o.edges as unknown[];
  if (raw.length === 0) fail(`${file}: "edges" is empty`);
  const edges = raw.map((e, i) => {
    const g = f.at(i, 'edges');
    if (!isObj(e)) fail(`${file}: edges[${i}] must be an object`);
    const name = g.str(e, 'name', '');
    return { name, ...splitEdge(file, `edges[${i}].name`, name), score: g.num(e, 'score') };
  });
  return { file, model: f.optStr(o, 'model'), task: f.optStr(o, 'task'), ablation: f.str(o, 'ablation', 'unknown'), method: scanMethodLabel(f.str(o, 'method', 'unknown'), o.ig_path), edges };
}

function parseEdgePrune(file: string, o: Obj): EdgePruneData {
  const f = new Fields(file);
  const kept = (o.kept as unknown[]).map((n, i) => {
    if (typeof n !== 'string') fail(`${file}: kept[${i}] must be an edge name`);
    return { name: n, ...splitEdge(file, `kept[${i}]`, n) };
  });
  const steps = Array.isArray(o.steps) ? (o.steps as unknown[]) : [];
  const last = steps.at(-1);
  return {
    file,
    ablation: f.str(o, 'ablation', 'unknown'),
    threshold: f.optNum(o, 'threshold'),
    nEdges: f.optNum(o, 'n_edges'),
    kept,
    finalMetric: isObj(last) && typeof last.metric === 'number' ? last.metric : null,
    cleanMetric: f.optNum(o, 'clean_metric'),
  };
}

function parseFaithfulness(file: string, o: Obj): FaithfulnessData {
  const f = new Fields(file);
  const raw = o.points as unknown[];
  if (raw.length === 0) fail(`${file}: "points" is empty`);
  const points = raw.map((p, i) => {
    const g = f.at(i, 'points');
    if (!isObj(p)) fail(`${file}: points[${i}] must be an object`);
    return { fraction: g.num(p, 'fraction'), faithfulness: g.num(p, 'faithfulness'), metric: g.num(p, 'metric'), kept: g.optNum(p, 'n_edges') ?? g.optNum(p, 'n_components') };
  });
  return {
    file,
    level: f.str(o, 'level', 'components'),
    method: f.optStr(o, 'scores_method'),
    scoresFile: f.optStr(o, 'scores_file'),
    ablation: f.str(o, 'ablation', 'unknown'),
    variant: f.optStr(o, 'variant'),
    points,
    cpr: f.num(o, 'cpr'),
    cmd: f.num(o, 'cmd'),
  };
}

function parsePrune(file: string, o: Obj): PruneData {
  const f = new Fields(file);
  const raw = o.steps as unknown[];
  if (raw.length === 0) fail(`${file}: "steps" is empty`);
  const steps = raw.map((s, i): PruneStep => {
    const g = f.at(i, 'steps');
    if (!isObj(s)) fail(`${file}: steps[${i}] must be an object`);
    return {
      removed: g.int(s, 'removed'),
      component: g.optStr(s, 'component'),
      metric: g.num(s, 'metric'),
      std: g.optNum(s, 'std'),
      evalMetric: g.optNum(s, 'eval_metric'),
      evalStd: g.optNum(s, 'eval_std'),
    };
  });
  const held = isObj(o.eval) ? o.eval : undefined;
  return {
    file,
    order: f.str(o, 'order', 'unknown'),
    ablation: f.str(o, 'ablation', 'unknown'),
    method: f.str(o, 'method', 'unknown'),
    metricName: f.optStr(o, 'metric_name'),
    cleanMetric: f.optNum(o, 'clean_metric'),
    corruptMetric: f.optNum(o, 'corrupt_metric'),
    steps,
    evalTask: held ? new Fields(`${file} eval`).optStr(held, 'task') : null,
    evalCleanMetric: held ? new Fields(`${file} eval`).optNum(held, 'clean_metric') : null,
  };
}

function evalLabel(file: string, model: string | null): string {
  const stem = basename(file, extname(file));
  const m = /^eval[-_.](.+)$/i.exec(stem);
  if (m) return m[1];
  return model ?? stem;
}

function parseEval(file: string, o: Obj): EvalData {
  const f = new Fields(file);
  const model = f.optStr(o, 'model');
  return {
    file,
    label: evalLabel(file, model),
    model,
    metricName: f.optStr(o, 'metric_name'),
    metric: f.num(o, 'metric'),
    std: f.optNum(o, 'std'),
    accuracy: f.num(o, 'accuracy'),
    nParams: f.int(o, 'n_params'),
    nParamsNonEmbedding: f.optNum(o, 'n_params_non_embedding'),
    msPerPrompt: f.optNum(o, 'ms_per_prompt'),
    nNeurons: f.optNum(o, 'n_neurons'),
    fileBytes: f.optNum(o, 'file_bytes'),
    onnxF16Bytes: f.optNum(o, 'onnx_f16_bytes'),
  };
}

function firstNumber(o: Obj, keys: string[]): number | null {
  for (const k of keys) if (typeof o[k] === 'number') return o[k] as number;
  return null;
}

function parseCompressed(runDir: string, dir: string, config: Obj): CompressedModelData {
  const rel = relative(runDir, dir) || '.';
  const where = `${join(rel, 'config.json')}`;
  const f = new Fields(where);
  const carve = config.carve as Obj;
  if (!Array.isArray(carve.layers)) fail(`${where}: "carve.layers" must be an array`);
  const layers = (carve.layers as unknown[]).map((l, i): KeptLayer => {
    const g = f.at(i, 'carve.layers');
    if (!isObj(l)) fail(`${where}: carve.layers[${i}] must be an object`);
    const heads = l.heads;
    if (!Array.isArray(heads) || !heads.every((h) => Number.isInteger(h) && h >= 0)) {
      fail(`${where}: carve.layers[${i}].heads must be an array of head indices`);
    }
    if (typeof l.mlp !== 'boolean') fail(`${where}: carve.layers[${i}].mlp must be true or false`);
    const neurons = l.neurons;
    if (neurons !== undefined && !Array.isArray(neurons)) fail(`${where}: carve.layers[${i}].neurons must be an array of neuron indices`);
    return { sourceLayer: g.int(l, 'source_layer'), heads: [...(heads as number[])].sort((a, b) => a - b), mlp: l.mlp, ...(neurons === undefined ? {} : { neurons: (neurons as unknown[]).length }) };
  });
  const weights = join(dir, 'model.safetensors');
  return {
    dir: rel,
    nHead: typeof config.n_head === 'number' ? config.n_head : null,
    nLayer: typeof config.n_layer === 'number' ? config.n_layer : null,
    layers,
    weightBytes: existsSync(weights) ? statSync(weights).size : null,
    dMlp: firstNumber(config, ['n_inner', 'intermediate_size']) ?? (typeof config.n_embd === 'number' ? 4 * config.n_embd : null),
    vocabKept: Array.isArray(carve.vocab) ? carve.vocab.length : null,
  };
}

function optText(o: Obj, key: string): string | null {
  const v = o[key];
  return typeof v === 'string' ? v : null;
}

/** An answer as text, or an answer set as its members' texts. */
function answerText(o: Obj, key: string): string | string[] | null {
  const v = o[key];
  if (typeof v === 'string') return v;
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string')) return null;
  return v as string[];
}

/** Reads only the prompts shown, so a huge task file costs a line count, not a parse of every line. */
function parseTask(file: string, text: string): TaskData | null {
  const lines = text.split('\n').map((l) => l.trim());
  const prompts: TaskPrompt[] = [];
  let count = 0;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] === '') continue;
    count++;
    if (prompts.length >= TASK_PROMPTS_SHOWN) continue;
    let o: unknown;
    try {
      o = JSON.parse(lines[i]);
    } catch {
      fail(`${file}: line ${i + 1} is not valid JSON`);
    }
    if (!isObj(o)) fail(`${file}: line ${i + 1} must be a JSON object`);
    const tokens = Array.isArray(o.clean_tokens) && o.clean_tokens.every((t) => Number.isInteger(t)) ? (o.clean_tokens as number[]) : null;
    const clean = optText(o, 'clean');
    if (clean === null && tokens === null) fail(`${file}: line ${i + 1} has neither "clean" text nor "clean_tokens"`);
    prompts.push({
      clean,
      corrupt: optText(o, 'corrupt'),
      correct: answerText(o, 'correct'),
      incorrect: answerText(o, 'incorrect'),
      io: optText(o, 'io') ?? optText(o, 'IO'),
      s: optText(o, 's') ?? optText(o, 'S'),
      cleanTokens: tokens,
    });
  }
  return count === 0 ? null : { file, count, prompts };
}

/** A task file is task.jsonl, or any JSONL whose first line looks like a prompt pair. */
function looksLikeTask(path: string): boolean {
  if (basename(path) === 'task.jsonl') return true;
  const text = readFileSync(path, 'utf8');
  const first = text.slice(0, text.indexOf('\n') === -1 ? undefined : text.indexOf('\n')).trim();
  try {
    const o = JSON.parse(first);
    return isObj(o) && ('clean' in o || 'clean_tokens' in o);
  } catch {
    return false;
  }
}

export function loadRun(runDir: string): RunData {
  if (!existsSync(runDir)) fail(`run directory ${runDir} does not exist`);
  if (!statSync(runDir).isDirectory()) fail(`${runDir} is not a directory`);
  const run: RunData = { dir: runDir, scans: [], prunes: [], edgeScans: [], edgePrunes: [], faithfulness: [], evals: [], task: null, compressed: [], warnings: [] };
  const taskFiles: string[] = [];

  const walk = (dir: string, depth: number): void => {
    const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
    const config = entries.find((e) => e.isFile() && e.name === 'config.json');
    if (config && depth > 0) {
      const o = readJson(join(dir, 'config.json'));
      if (isObj(o) && isObj(o.carve)) run.compressed.push(parseCompressed(runDir, dir, o));
      // Another model directory (a copy of the original, say): its JSON files are tokenizer and
      // weight metadata, not run outputs. A compressed model's directory may also hold its eval.
      else if (isObj(o) && 'n_layer' in o) return;
    }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const path = join(dir, e.name);
      if (e.isDirectory()) {
        if (depth < MAX_DEPTH && !(depth === 0 && OUTPUT_DIRS.has(e.name)) && e.name !== 'node_modules') walk(path, depth + 1);
        continue;
      }
      if (!e.isFile()) continue;
      if (e.name.endsWith('.jsonl')) {
        if (looksLikeTask(path)) taskFiles.push(path);
        continue;
      }
      if (!e.name.endsWith('.json') || (e.name === 'config.json' && depth > 0)) continue;
      const o = readJson(path);
      if (!isObj(o)) continue;
      const rel = relative(runDir, path);
      if (o.level === 'edges' && Array.isArray(o.edges)) run.edgeScans.push(parseEdgeScan(rel, o));
      else if (o.level === 'edges' && Array.isArray(o.kept)) run.edgePrunes.push(parseEdgePrune(rel, o));
      else if (Array.isArray(o.points) && typeof o.cpr === 'number') run.faithfulness.push(parseFaithfulness(rel, o));
      // A scan's components are score objects (an ONNX export's metadata lists component names).
      else if (Array.isArray(o.components) && o.components.every(isObj)) run.scans.push(parseScan(rel, o));
      // A prune output names its order; carve-compress.json also holds a step curve, but no order.
      else if (Array.isArray(o.steps) && typeof o.order === 'string') run.prunes.push(parsePrune(rel, o));
      else if (typeof o.n_params === 'number') run.evals.push(parseEval(rel, o));
      else if (e.name === 'config.json' && isObj(o.carve)) run.compressed.push(parseCompressed(runDir, dir, o));
    }
  };

  const readJson = (path: string): unknown => {
    if (statSync(path).size > MAX_JSON_BYTES) return undefined;
    try {
      return JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      run.warnings.push(`${relative(runDir, path)}: not valid JSON, skipped (${(e as Error).message})`);
      return undefined;
    }
  };

  walk(runDir, 0);

  // task.jsonl at the top wins over task-like files elsewhere: it is the run's own task.
  taskFiles.sort((a, b) => rank(a) - rank(b));
  function rank(p: string): number {
    return (basename(p) === 'task.jsonl' ? 0 : 2) + (relative(runDir, p).includes('/') ? 1 : 0);
  }
  if (taskFiles.length > 0) run.task = parseTask(relative(runDir, taskFiles[0]), readFileSync(taskFiles[0], 'utf8'));

  if (run.scans.length + run.prunes.length + run.edgeScans.length + run.edgePrunes.length + run.faithfulness.length + run.evals.length + run.compressed.length === 0) {
    const why = run.warnings.length > 0 ? ` (${run.warnings.join('; ')})` : '';
    fail(`${runDir}: nothing to report: no scan, prune, faithfulness, eval or compressed-model output found${why}`);
  }
  return run;
}
