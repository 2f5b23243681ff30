/*
 * The exported page's logic (a classic script, so the page also runs from file://): load the
 * model into onnxruntime-web's WASM backend, tokenise the prompt as carve does, map tokens to the
 * model's own ids, run it, and show the next-token prediction and the task's answers.
 *
 * Everything it needs comes from scripts beside it: window.CARVE (metadata, carve-data.js),
 * window.CARVE_BPE (the tokenizer's tokens, tokenizer.js), window.CARVE_MODEL (the ONNX file,
 * base64, model.js), window.ORT_WASM / window.ORT_GLUE (onnxruntime-web's WASM binary, base64, and its
 * loader module, as text) and `ort` (onnxruntime-web). Nothing is fetched: browsers refuse fetch()
 * and module imports from file://, so binaries travel as base64 text and the loader through a blob URL.
 */
(function () {
  'use strict';
  var C = window.CARVE;
  var $ = function (id) { return document.getElementById(id); };
  // GPT-2 BPE (bpe.js), or the model's own tokenizer.json through @huggingface/tokenizers (set up in start()).
  var bpe = window.CARVE_HF ? null : window.CarveBpe.create(window.CARVE_BPE.tokens, C.specials);

  async function hfTokenizer() {
    var H = window.CARVE_HF;
    var lib = await import(URL.createObjectURL(new Blob([H.lib], { type: 'text/javascript' })));
    var t = new lib.Tokenizer(H.json, H.config);
    return {
      // As carve's promptTokens: no special tokens from the library, BOS first when the tokenizer's
      // post-processor adds one and the text does not already start with it.
      encode: function (text) {
        var ids = Array.from(t.encode(text, { add_special_tokens: false }).ids);
        return H.bos !== null && ids[0] !== H.bos ? [H.bos].concat(ids) : ids;
      },
      show: function (id) { return t.decode([id], { skip_special_tokens: false }); },
    };
  }
  var localOf = new Map();
  if (C.vocab) C.vocab.forEach(function (orig, local) { localOf.set(orig, local); });
  var originalOf = function (local) { return C.vocab ? C.vocab[local] : local; };
  var session = null;
  var runs = 0;

  function fromBase64(text) {
    var bin = atob(text);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function setState(state, message) {
    document.body.dataset.state = state;
    $('status').textContent = message || '';
    $('status').className = state === 'error' ? 'error' : '';
  }

  function cell(row, text, cls) {
    var td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
  }

  function fillTable(id, rows) {
    var body = $(id).querySelector('tbody');
    body.textContent = '';
    rows.forEach(function (r) {
      var tr = document.createElement('tr');
      if (r.mark) tr.className = 'in-prompt';
      cell(tr, JSON.stringify(r.token), 'tok');
      cell(tr, String(r.id), 'num');
      cell(tr, r.logit.toFixed(3), 'num');
      cell(tr, r.prob.toFixed(4), 'num');
      var bar = document.createElement('td');
      var span = document.createElement('span');
      span.className = 'bar';
      span.style.width = Math.max(1, Math.round(200 * r.prob)) + 'px';
      bar.appendChild(span);
      tr.appendChild(bar);
      body.appendChild(tr);
    });
  }

  /** Forget the last prediction, so an error never stands next to an answer for another prompt. */
  function clearResult() {
    $('top-token').textContent = '';
    $('top-token').dataset.id = '';
    $('top-prob').textContent = '';
    fillTable('top', []);
    fillTable('answers', []);
    $('answers-note').textContent = '';
  }

  async function predict() {
    if (!session) return;
    clearResult();
    var text = $('prompt').value;
    var ids = bpe.encode(text);
    var chips = $('tokens');
    chips.textContent = '';
    ids.forEach(function (id) {
      var s = document.createElement('span');
      s.className = 'chip' + (C.vocab && !localOf.has(id) ? ' missing' : '');
      s.textContent = bpe.show(id);
      s.title = 'token ' + id;
      chips.appendChild(s);
    });
    if (ids.length === 0) return setState('ready', 'Type a prompt.');
    var missing = C.vocab ? ids.filter(function (id) { return !localOf.has(id); }) : ids.filter(function (id) { return id >= C.n_vocab; });
    if (missing.length > 0) {
      return setState('error', 'token ' + missing[0] + ' (' + JSON.stringify(bpe.show(missing[0])) + ') is not in the model\'s vocabulary: it keeps only the ' + C.n_vocab + ' tokens its task can produce');
    }
    if (ids.length > C.max_len) return setState('error', 'the prompt has ' + ids.length + ' tokens, more than the model\'s context of ' + C.max_len);
    var local = C.vocab ? ids.map(function (id) { return localOf.get(id); }) : ids;
    setState('running', 'Running…');
    var T = local.length;
    var feeds = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(local, function (x) { return BigInt(x); }), [1, T]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(T).fill(1n), [1, T]),
    };
    var out = await session.run(feeds);
    var V = C.n_vocab;
    var logits = out.logits.data.subarray((T - 1) * V, T * V);
    var max = -Infinity;
    for (var j = 0; j < V; j++) if (logits[j] > max) max = logits[j];
    var sum = 0;
    for (var k = 0; k < V; k++) sum += Math.exp(logits[k] - max);
    var lse = max + Math.log(sum);
    var entry = function (l) {
      var id = originalOf(l);
      return { id: id, token: bpe.show(id), logit: logits[l], prob: Math.exp(logits[l] - lse), mark: ids.indexOf(id) >= 0 };
    };
    var order = Array.from({ length: V }, function (_, l) { return l; }).sort(function (a, b) { return logits[b] - logits[a] || originalOf(a) - originalOf(b); });
    var top = order.slice(0, 10).map(entry);
    $('top-token').textContent = top[0].token;
    $('top-token').dataset.id = String(top[0].id);
    $('top-prob').textContent = (100 * top[0].prob).toFixed(1) + '%';
    fillTable('top', top);
    var answers = C.answers
      .filter(function (id) { return !C.vocab || localOf.has(id); })
      .map(function (id) { return entry(C.vocab ? localOf.get(id) : id); })
      .sort(function (a, b) { return b.logit - a.logit || a.id - b.id; });
    fillTable('answers', answers.slice(0, 12));
    $('answers-note').textContent = answers.length > 12 ? 'the 12 most likely of ' + answers.length + ' answers (names in the prompt highlighted)' : '';
    runs++;
    document.body.dataset.runs = String(runs);
    setState('ready', '');
  }

  async function start() {
    $('prompt').value = C.example || '';
    $('title').textContent = C.name;
    $('about').textContent = C.about;
    try {
      ort.env.wasm.numThreads = 1;
      ort.env.wasm.wasmBinary = fromBase64(window.ORT_WASM);
      ort.env.wasm.wasmPaths = { mjs: URL.createObjectURL(new Blob([window.ORT_GLUE], { type: 'text/javascript' })) };
      session = await ort.InferenceSession.create(fromBase64(window.CARVE_MODEL), { executionProviders: ['wasm'] });
      if (!bpe) bpe = await hfTokenizer();
    } catch (e) {
      setState('error', 'could not load the model: ' + (e && e.message ? e.message : e));
      return;
    }
    setState('ready', '');
    $('run').disabled = false;
    $('run').addEventListener('click', function () { predict().catch(function (e) { setState('error', String(e && e.message ? e.message : e)); }); });
    $('prompt').addEventListener('keydown', function (ev) {
      if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) $('run').click();
    });
    $('run').click();
  }

  start();
})();
