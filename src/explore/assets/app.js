// The explore page: a layer × head grid to remove and restore components, the exact metric and its
// per-prompt bars, attention patterns, prompts, pruning curves, and saving or compressing the set.
// It only talks to its own server's JSON API (see src/explore/server.ts).
import { attentionMap, barChart, clear, divergingColor, empty, fmt, inkOn, lineChart } from './charts.js';

const $ = (id) => document.getElementById(id);

const state = {
  info: null,
  prompts: [],
  scans: [],
  curves: [],
  removed: new Set(),
  ablation: 'mean',
  scanId: '',
  clean: null,
  result: null,
  selectedPrompt: 0,
  watched: null,
  seq: 0,
  shown: 0,
};

// ------------------------------------------------------------------ plumbing

async function api(path, body) {
  const init = body === undefined ? {} : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
  const res = await fetch(path, init);
  let json;
  try {
    json = await res.json();
  } catch {
    throw new Error(`${path}: HTTP ${res.status}`);
  }
  if (!res.ok) throw new Error(json && json.error ? json.error : `${path}: HTTP ${res.status}`);
  return json;
}

function status(message, kind = '') {
  const el = $('status');
  el.textContent = message;
  el.className = `status ${kind}`;
}

function report(e) {
  status(e instanceof Error ? e.message : String(e), 'error');
}

function option(select, value, label) {
  const o = document.createElement('option');
  o.value = value;
  o.textContent = label;
  select.appendChild(o);
  return o;
}

function canonical(names) {
  const order = new Map(state.info.components.map((n, i) => [n, i]));
  return [...names].filter((n) => order.has(n)).sort((a, b) => order.get(a) - order.get(b));
}

// ------------------------------------------------------------------ the grid

function currentScan() {
  return state.scans.find((s) => s.id === state.scanId) ?? null;
}

function renderGrid() {
  const { info } = state;
  const wrap = $('grid');
  clear(wrap);
  const scan = currentScan();
  const scores = new Map((scan?.components ?? []).map((c) => [c.name, c]));
  const extent = Math.max(1e-12, ...[...scores.values()].map((c) => Math.abs(c.score)));
  const dense = info.n_heads > 16;
  const table = document.createElement('table');
  table.className = 'grid';
  const head = table.createTHead().insertRow();
  head.appendChild(document.createElement('th'));
  for (let h = 0; h < info.n_heads; h++) {
    const th = document.createElement('th');
    th.textContent = dense && h % 4 !== 0 ? '' : `H${h}`;
    head.appendChild(th);
  }
  const mlpTh = document.createElement('th');
  mlpTh.textContent = 'MLP';
  head.appendChild(mlpTh);
  const body = table.createTBody();
  for (const layer of info.layers) {
    const row = body.insertRow();
    const th = document.createElement('th');
    th.textContent = `L${layer.layer}`;
    row.appendChild(th);
    const names = [];
    for (let h = 0; h < info.n_heads; h++) names.push(layer.heads.includes(h) ? `L${layer.layer}H${h}` : null);
    names.push(layer.mlp ? `L${layer.layer}MLP` : null);
    for (const name of names) {
      const td = row.insertCell();
      if (name === null) continue;
      const b = document.createElement('button');
      b.type = 'button';
      b.className = `cell${dense ? ' dense' : ''}${state.removed.has(name) ? ' removed' : ''}${state.watched === name ? ' watched' : ''}`;
      b.dataset.name = name;
      const s = scores.get(name);
      if (s) {
        b.style.background = divergingColor(s.score, extent);
        b.style.color = inkOn(s.score, extent);
        b.textContent = Math.abs(s.score) >= 10 ? s.score.toFixed(1) : s.score.toFixed(2);
      } else {
        b.textContent = dense ? '' : name.replace(/^L\d+/, '');
      }
      const what = s ? `score ${fmt(s.score)}${s.std !== null ? ` \u00b1 ${fmt(s.std)}` : ''}` : 'no score';
      const act = state.removed.has(name) ? 'click: restore' : 'click: remove';
      b.dataset.tip = `${name}: ${what}\n${act}${name.endsWith('MLP') ? '' : '\nalt-click: attention'}`;
      b.setAttribute('aria-pressed', state.removed.has(name) ? 'true' : 'false');
      b.addEventListener('click', (e) => {
        if (e.altKey && !name.endsWith('MLP')) {
          const m = /^L(\d+)H(\d+)$/.exec(name);
          showAttention(Number(m[1]), Number(m[2]));
          return;
        }
        toggle(name);
      });
      td.appendChild(b);
    }
  }
  wrap.appendChild(table);
  const legend = $('grid-legend');
  clear(legend);
  if (scan) {
    const lo = document.createElement('span');
    lo.textContent = `${fmt(-extent, 2)} (needed)`;
    const ramp = document.createElement('span');
    ramp.className = 'ramp';
    const hi = document.createElement('span');
    hi.textContent = `${fmt(extent, 2)} (removal helps)`;
    legend.append(lo, ramp, hi);
  }
  $('removed-count').textContent = state.removed.size === 0 ? '' : `(${state.removed.size} removed)`;
}

function toggle(name) {
  status('');
  if (state.removed.has(name)) state.removed.delete(name);
  else state.removed.add(name);
  renderGrid();
  evaluate();
}

function setRemoved(names) {
  state.removed = new Set(names);
  renderGrid();
  evaluate();
}

// ------------------------------------------------------------------ the metric

async function evaluate() {
  const seq = ++state.seq;
  const removed = canonical(state.removed);
  $('busy').hidden = false;
  try {
    const r = await api('/api/evaluate', { removed, ablation: state.ablation });
    // Only the latest answer is shown: clicks may outrun the server.
    if (seq < state.shown) return;
    state.shown = seq;
    state.result = r;
    renderMetric();
    if (seq === state.seq) $('busy').hidden = true;
  } catch (e) {
    if (seq === state.seq) $('busy').hidden = true;
    report(e);
  }
}

function renderMetric() {
  const r = state.result;
  if (!r) return;
  const el = $('metric');
  el.textContent = `${fmt(r.metric, 4)} \u00b1 ${fmt(r.std, 4)}`;
  el.dataset.value = String(r.metric);
  el.dataset.std = String(r.std);
  el.dataset.removed = r.removed.join(',');
  el.dataset.ablation = r.ablation;
  $('accuracy').textContent = r.accuracy === null ? '–' : `${(100 * r.accuracy).toFixed(1)}%`;
  $('accuracy').dataset.value = String(r.accuracy);
  renderBars();
  renderPromptValues();
  renderCurves();
}

function renderBars() {
  const r = state.result;
  if (!r || !state.clean) return;
  barChart($('bars'), {
    values: r.per_prompt,
    clean: state.clean.per_prompt,
    selected: state.selectedPrompt,
    label: (i) => `prompt ${i}\nwith removals ${fmt(r.per_prompt[i])}\nclean ${fmt(state.clean.per_prompt[i])}`,
    onClick: (i) => selectPrompt(i),
  });
}

// ------------------------------------------------------------------ prompts

function renderPrompts() {
  const list = $('prompts');
  clear(list);
  for (const p of state.prompts) {
    const li = document.createElement('li');
    li.dataset.index = String(p.index);
    const row = document.createElement('div');
    row.className = 'row';
    const textEl = document.createElement('span');
    textEl.className = 'text';
    const val = document.createElement('span');
    val.className = 'val';
    row.append(textEl, val);
    li.appendChild(row);
    const marks = new Map(p.marks.map((m) => [m.pos, m]));
    p.tokens.forEach((t, pos) => {
      const span = document.createElement('span');
      span.className = 'tok';
      span.textContent = t;
      const mark = marks.get(pos);
      if (mark) {
        span.classList.add(`mark-${mark.kind}`);
        span.title = mark.label;
      }
      textEl.appendChild(span);
    });
    const ans = document.createElement('span');
    ans.className = 'muted';
    ans.textContent = `  \u2192 ${JSON.stringify(p.correct)} vs ${JSON.stringify(p.incorrect)}`;
    textEl.appendChild(ans);
    li.addEventListener('click', () => selectPrompt(p.index));
    list.appendChild(li);
  }
  markSelectedPrompt();
}

function renderPromptValues() {
  const r = state.result;
  if (!r) return;
  for (const li of $('prompts').children) {
    const v = r.per_prompt[Number(li.dataset.index)];
    const val = li.querySelector('.val');
    val.textContent = fmt(v, 2);
    val.classList.toggle('neg', state.info.metric_name !== 'kl' && v <= 0);
  }
}

function markSelectedPrompt() {
  for (const li of $('prompts').children) li.classList.toggle('selected', Number(li.dataset.index) === state.selectedPrompt);
}

function selectPrompt(i) {
  state.selectedPrompt = i;
  $('att-prompt').value = String(i);
  markSelectedPrompt();
  renderBars();
  loadAttention();
}

// ------------------------------------------------------------------ attention

function fillHeads() {
  const layer = state.info.layers.find((l) => String(l.layer) === $('att-layer').value);
  const sel = $('att-head');
  const keep = sel.value;
  clear(sel);
  for (const h of layer?.heads ?? []) option(sel, String(h), `H${h}`);
  if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
}

function showAttention(layer, head) {
  $('att-layer').value = String(layer);
  fillHeads();
  $('att-head').value = String(head);
  loadAttention();
}

async function loadAttention() {
  const prompt = Number($('att-prompt').value);
  const layer = Number($('att-layer').value);
  const head = Number($('att-head').value);
  if (!Number.isInteger(layer) || !Number.isInteger(head) || $('att-head').value === '') return;
  state.watched = `L${layer}H${head}`;
  renderGrid();
  const q = new URLSearchParams({ prompt: String(prompt), layer: String(layer), head: String(head) });
  if ($('att-ablated').checked && state.removed.size > 0) {
    q.set('removed', canonical(state.removed).join(','));
    q.set('ablation', state.ablation);
  }
  const box = $('attention');
  try {
    const r = await api(`/api/attention?${q}`);
    const p = state.prompts[prompt];
    const marks = new Map((p?.marks ?? []).map((m) => [m.pos, m.kind]));
    attentionMap(box, { tokens: r.tokens, pattern: r.pattern, marks, title: `attention of L${layer}H${head} on prompt ${prompt}` });
    box.dataset.layer = String(layer);
    box.dataset.head = String(head);
    box.dataset.prompt = String(prompt);
    const cap = document.createElement('p');
    cap.className = 'hint';
    cap.textContent = `L${layer}H${head} on prompt ${prompt}${q.has('removed') ? ` with ${state.removed.size} components removed (${state.ablation})` : ''}: where each token (row) attends.`;
    box.prepend(cap);
  } catch (e) {
    empty(box, '');
    report(e);
  }
}

// ------------------------------------------------------------------ scans and curves

function renderScanSelect() {
  const sel = $('scan-select');
  clear(sel);
  option(sel, '', 'no scores');
  for (const s of state.scans) option(sel, s.id, s.label);
  sel.value = state.scanId;
}

async function computeScan(method) {
  status(`computing ${method} scores under ${state.ablation} ablation…`);
  try {
    const s = await api('/api/scan', { ablation: state.ablation, method });
    state.scans = (await api('/api/scans')).scans;
    state.scanId = s.id;
    renderScanSelect();
    renderGrid();
    status(`${s.label}: ready`, 'ok');
  } catch (e) {
    report(e);
  }
}

function curveLabel(c) {
  return `${c.file}: ${c.order}, ${c.ablation}${c.method && c.method !== 'exact' ? `, ${c.method}` : ''}`;
}

function renderCurves() {
  const box = $('curves');
  if (state.curves.length === 0) {
    empty(box, 'No pruning curves: start with a run directory (carve explore RUN_DIR) holding carve prune outputs.');
    return;
  }
  const series = state.curves.map((c) => ({ label: curveLabel(c), points: c.steps.map((s) => ({ x: s.removed, y: s.metric, std: s.std, component: s.component })) }));
  const clean = state.clean ? state.clean.metric : (state.curves[0].steps[0]?.metric ?? null);
  const current = state.result ? { x: state.result.removed.length, y: state.result.metric } : null;
  lineChart(box, {
    series,
    clean,
    current,
    onPoint: (si, k) => {
      const c = state.curves[si];
      const names = c.steps.filter((s) => s.component !== null && s.removed <= k).map((s) => s.component);
      if (state.info.ablations.includes(c.ablation) && c.ablation !== state.ablation) {
        state.ablation = c.ablation;
        $('ablation').value = c.ablation;
      }
      status(`removed the first ${k} components of ${c.file}`, 'ok');
      setRemoved(names.filter((n) => state.info.components.includes(n)));
    },
  });
}

// ------------------------------------------------------------------ writing

async function saveKeep() {
  try {
    const r = await api('/api/keep', { removed: canonical(state.removed), name: $('keep-name').value.trim() });
    status(`wrote ${r.path} (${r.kept.length} components kept)`, 'ok');
  } catch (e) {
    report(e);
  }
}

async function compress() {
  status('compressing…');
  $('compress').disabled = true;
  try {
    const r = await api('/api/compress', { removed: canonical(state.removed), ablation: state.ablation, name: $('compress-name').value.trim() });
    status(`wrote ${r.path}: ${r.kept.length} components kept, parameters ${r.n_params_before.toLocaleString('en-US')} \u2192 ${r.n_params_after.toLocaleString('en-US')}, metric ${fmt(r.metric)}`, 'ok');
  } catch (e) {
    report(e);
  } finally {
    $('compress').disabled = !state.info.can_write;
  }
}

// ------------------------------------------------------------------ tooltips

function tooltips() {
  const tip = $('tip');
  document.addEventListener('mousemove', (e) => {
    const el = e.target && e.target.closest ? e.target.closest('[data-tip]') : null;
    if (!el) {
      tip.hidden = true;
      return;
    }
    tip.textContent = el.getAttribute('data-tip');
    tip.hidden = false;
    tip.style.left = `${Math.min(e.clientX + 14, window.innerWidth - tip.offsetWidth - 4)}px`;
    tip.style.top = `${e.clientY + 12}px`;
  });
}

// ------------------------------------------------------------------ start

async function start() {
  tooltips();
  const [info, prompts, scans, curves] = await Promise.all([api('/api/info'), api('/api/prompts'), api('/api/scans'), api('/api/curves')]);
  state.info = info;
  state.prompts = prompts.prompts;
  state.scans = scans.scans;
  state.curves = curves.curves;

  const meta = $('meta');
  clear(meta);
  const part = (label, value) => {
    const b = document.createElement('b');
    b.textContent = value;
    meta.append(`${label} `, b, ' \u00b7 ');
  };
  part('model', info.model);
  part('task', info.task);
  part('prompts', String(info.n_prompts));
  part('metric', info.metric_name);
  meta.append(info.can_write ? `writes to ${info.out_dir}` : 'read-only (start with --out-dir DIR to save)');
  $('metric-name').textContent = `metric (${info.metric_name}), mean \u00b1 std`;

  for (const a of info.ablations) option($('ablation'), a, a);
  $('ablation').value = state.ablation;
  $('ablation').addEventListener('change', () => {
    state.ablation = $('ablation').value;
    evaluate();
    if ($('att-ablated').checked) loadAttention();
  });
  $('scan-select').addEventListener('change', () => {
    state.scanId = $('scan-select').value;
    renderGrid();
  });
  $('compute-exact').addEventListener('click', () => computeScan('exact'));
  $('compute-attr').addEventListener('click', () => computeScan('attribution'));
  $('compute-attr').disabled = info.metric_name !== 'logit-diff';
  $('restore-all').addEventListener('click', () => {
    status('');
    setRemoved([]);
  });
  for (const id of ['save-keep', 'compress', 'keep-name', 'compress-name']) {
    $(id).disabled = !info.can_write;
    if (!info.can_write) $(id).title = 'start carve explore with --out-dir DIR to write files';
  }
  $('save-keep').addEventListener('click', saveKeep);
  $('compress').addEventListener('click', compress);

  for (const p of state.prompts) option($('att-prompt'), String(p.index), `${p.index}`);
  for (const l of info.layers) if (l.heads.length > 0) option($('att-layer'), String(l.layer), `L${l.layer}`);
  fillHeads();
  $('att-prompt').addEventListener('change', () => selectPrompt(Number($('att-prompt').value)));
  $('att-layer').addEventListener('change', () => {
    fillHeads();
    loadAttention();
  });
  $('att-head').addEventListener('change', loadAttention);
  $('att-show').addEventListener('click', loadAttention);
  $('att-ablated').addEventListener('change', loadAttention);

  renderPrompts();
  // A run's exact scan under the current ablation colours the grid first, else its first scan.
  const pick = state.scans.find((s) => s.method === 'exact' && s.ablation === state.ablation) ?? state.scans[0];
  state.scanId = pick ? pick.id : '';
  renderScanSelect();
  renderGrid();

  state.clean = await api('/api/evaluate', { removed: [], ablation: state.ablation });
  $('clean').textContent = `${fmt(state.clean.metric, 4)} \u00b1 ${fmt(state.clean.std, 4)}${state.clean.accuracy === null ? '' : `, ${(100 * state.clean.accuracy).toFixed(1)}%`}`;
  $('clean').dataset.value = String(state.clean.metric);
  await evaluate();
  document.body.dataset.ready = 'true';
  loadAttention();
  // Small models are scored at once, so the grid has colours without a click.
  if (!pick && info.components.length <= 64) computeScan('exact');
}

start().catch(report);
