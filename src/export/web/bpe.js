/*
 * GPT-2's byte-level BPE, for the exported page (a classic script: it runs from file:// too).
 * The same tokenisation carve uses (src/tokenizer/gpt2.ts): text is split at "<|endoftext|>"
 * (token 50256), each part into words by GPT-2's pattern, each word's UTF-8 bytes are merged
 * pairwise, lowest-ranked merge first (leftmost on ties), where a merge's rank is the id of the
 * token the two pieces make. `tokens[id]` is token id's bytes as a string of char codes 0..255.
 * test/export/bpe.test.ts checks it against carve's tokenizer.
 */
(function (root) {
  'use strict';
  var SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

  function bytesOf(text) {
    var b = new TextEncoder().encode(text);
    var s = '';
    for (var i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
    return s;
  }

  function create(tokens, specials) {
    var rank = new Map();
    tokens.forEach(function (t, id) {
      if (typeof t === 'string') rank.set(t, id);
    });
    var special = new Map(Object.entries(specials || {}));

    function word(bytes) {
      var whole = rank.get(bytes);
      if (whole !== undefined) return [whole];
      var parts = bytes.split('');
      for (;;) {
        var best = -1;
        var bestRank = Infinity;
        for (var i = 0; i + 1 < parts.length; i++) {
          var r = rank.get(parts[i] + parts[i + 1]);
          if (r !== undefined && r < bestRank) {
            bestRank = r;
            best = i;
          }
        }
        if (best < 0) break;
        parts.splice(best, 2, parts[best] + parts[best + 1]);
      }
      return parts.map(function (p) {
        var r = rank.get(p);
        if (r === undefined) throw new Error('no token for bytes ' + JSON.stringify(p));
        return r;
      });
    }

    function encodePlain(text, out) {
      var m;
      SPLIT.lastIndex = 0;
      while ((m = SPLIT.exec(text)) !== null) {
        var ids = word(bytesOf(m[0]));
        for (var i = 0; i < ids.length; i++) out.push(ids[i]);
      }
    }

    function encode(text) {
      var out = [];
      var names = Array.from(special.keys());
      var start = 0;
      for (;;) {
        var next = -1;
        var name = '';
        names.forEach(function (n) {
          var at = text.indexOf(n, start);
          if (at >= 0 && (next < 0 || at < next)) {
            next = at;
            name = n;
          }
        });
        if (next < 0) {
          encodePlain(text.slice(start), out);
          return out;
        }
        encodePlain(text.slice(start, next), out);
        out.push(special.get(name));
        start = next + name.length;
      }
    }

    function bytes(id) {
      for (var entry of special) if (entry[1] === id) return bytesOf(entry[0]);
      return tokens[id];
    }

    /** Readable text of one token (its bytes as UTF-8, undecodable bytes shown as <0xAB>). */
    function show(id) {
      var b = bytes(id);
      if (b === undefined) return '<' + id + '>';
      var arr = Uint8Array.from(b, function (c) { return c.charCodeAt(0); });
      try {
        return new TextDecoder('utf-8', { fatal: true }).decode(arr);
      } catch (e) {
        return Array.from(arr, function (x) { return '<0x' + x.toString(16).toUpperCase().padStart(2, '0') + '>'; }).join('');
      }
    }

    return { encode: encode, show: show };
  }

  root.CarveBpe = { create: create };
})(typeof window !== 'undefined' ? window : globalThis);
