/*
 * The wire-format rules the page shares with keras_lit's Python, as plain
 * functions with no DOM: canonicalising prompts, reading image headers,
 * averaging prompt embeddings, and reading TF Serving's REST answers.
 *
 * Each is the JavaScript twin of one Python home and is checked against the
 * same test vectors under node (tests/wire_rules_test.py):
 *   canonicalize             keras_lit.zero_shot.weights.canonicalize_text
 *   formatPrompts            keras_lit.zero_shot.weights.format_prompts
 *   imageHeader              keras_lit.image_header.read_image_header
 *   averagePromptEmbeddings  keras_lit.zero_shot.weights.average_prompt_embeddings
 *   predictOutputs           keras_lit.serving.protocol.parse_predict_body
 *
 * Loaded by the page as window.litWire, and by node with require().
 */
"use strict";

(function (root, factory) {
  if (typeof module === "object" && module.exports) module.exports = factory();
  else root.litWire = factory();
})(typeof self !== "undefined" ? self : this, function () {
  // --- Text ------------------------------------------------------------------

  // Lower case; _ - / (Pc, Pd) become spaces; other punctuation and the
  // ASCII symbols $+<=>^`|~ are deleted; whitespace runs collapse.
  const TO_SPACE = /[\p{Pc}\p{Pd}/]/gu;
  const TO_DELETE = /[\p{P}$+<=>^`|~]/gu;
  const TO_BLANK = /[\t\n\v\f\r\p{Z}]/gu;
  function canonicalize(text) {
    return String(text)
      .toLowerCase()
      .replace(TO_SPACE, " ")
      .replace(TO_DELETE, "")
      .replace(TO_BLANK, " ")
      .split(" ")
      .filter((part) => part.length > 0)
      .join(" ");
  }

  // Prompt k*T+t is label k filled into template t, canonicalised.
  function formatPrompts(labels, templates) {
    return labels.flatMap((label) => templates.map((t) => canonicalize(t.split("{}").join(label))));
  }

  // --- Image headers -----------------------------------------------------------

  const ascii = (s) => Array.from(s, (c) => c.charCodeAt(0));
  const MAGIC = [
    ["JPEG", [[0, [0xff, 0xd8, 0xff]]]],
    ["PNG", [[0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]]]],
    ["GIF", [[0, ascii("GIF87a")]]],
    ["GIF", [[0, ascii("GIF89a")]]],
    ["BMP", [[0, ascii("BM")]]],
    ["WebP", [[0, ascii("RIFF")], [8, ascii("WEBP")]]],
  ];

  function reader(bytes) {
    const starts = (sig, o = 0) => sig.every((b, i) => bytes[o + i] === b);
    const be = (o, c) => { let v = 0; for (let i = 0; i < c; i++) v = v * 256 + (bytes[o + i] || 0); return v; };
    const le = (o, c) => { let v = 0; for (let i = c - 1; i >= 0; i--) v = v * 256 + (bytes[o + i] || 0); return v; };
    return { n: bytes.length, bytes, starts, be, le };
  }

  function imageFormat(bytes) {
    const r = reader(bytes);
    const found = MAGIC.find(([, parts]) => parts.every(([o, sig]) => r.starts(sig, o)));
    return found ? found[0] : "";
  }

  // One size reader per format: -> [width, height], or null if unreadable.
  const SIZE_READERS = {
    PNG: (r) => (r.n >= 24 ? [r.be(16, 4), r.be(20, 4)] : null),
    GIF: (r) => (r.n >= 10 ? [r.le(6, 2), r.le(8, 2)] : null),
    BMP: (r) => {
      if (r.n < 26) return null;
      let height = r.le(22, 4);
      if (height >= 2 ** 31) height = 2 ** 32 - height; // Top-down BMP.
      return [r.le(18, 4), height];
    },
    WebP: (r) => {
      if (r.starts(ascii("VP8 "), 12) && r.n >= 30) return [r.le(26, 2) % 16384, r.le(28, 2) % 16384];
      if (r.starts(ascii("VP8L"), 12) && r.n >= 25) {
        const bits = r.le(21, 4);
        return [(bits % 16384) + 1, (Math.floor(bits / 16384) % 16384) + 1];
      }
      if (r.starts(ascii("VP8X"), 12) && r.n >= 30) return [r.le(24, 3) + 1, r.le(27, 3) + 1];
      return null;
    },
    JPEG: (r) => {
      // Walk the segments to the first start-of-frame marker.
      let p = 2;
      while (p + 4 <= r.n) {
        if (r.bytes[p] !== 0xff) return null;
        const marker = r.bytes[p + 1];
        if (marker === 0xff) { p += 1; continue; } // Fill byte.
        if (marker === 0x01 || marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7)) { p += 2; continue; }
        const frame = marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker);
        if (frame && p + 9 <= r.n) return [r.be(p + 7, 2), r.be(p + 5, 2)];
        const length = r.be(p + 2, 2);
        if (length < 2) return null;
        p += 2 + length;
      }
      return null;
    },
  };

  // {format, width, height} from the file header only: format "" when
  // unknown, -1 sizes when unreadable. The page refuses a decompression
  // bomb before the browser or the model decodes it.
  function imageHeader(bytes) {
    const format = imageFormat(bytes);
    const size = format ? SIZE_READERS[format](reader(bytes)) : null;
    const [width, height] = size || [-1, -1];
    return { format, width, height };
  }

  // --- Zero-shot maths -----------------------------------------------------------

  function normalize(vector) {
    let sum = 0;
    for (const x of vector) sum += x * x;
    const norm = Math.max(Math.sqrt(sum), 1e-12);
    return vector.map((x) => x / norm);
  }

  function softmax(logits) {
    const top = Math.max(...logits);
    const exps = logits.map((x) => Math.exp(x - top));
    const total = exps.reduce((a, b) => a + b, 0);
    return exps.map((x) => x / total);
  }

  // Class-major prompt embeddings (row k*T+t is class k, template t) ->
  // per class: the mean of the normalised rows, normalised again.
  function averagePromptEmbeddings(rows, count) {
    if (!count || rows.length % count) {
      throw new Error(`Expected a whole number of classes of ${count} prompt embeddings each; received ${rows.length} rows.`);
    }
    const weights = [];
    for (let k = 0; k < rows.length / count; k++) {
      const mean = new Array(rows[0].length).fill(0);
      for (let t = 0; t < count; t++) {
        const row = normalize(rows[k * count + t]);
        for (let d = 0; d < mean.length; d++) mean[d] += row[d] / count;
      }
      weights.push(normalize(mean));
    }
    return weights;
  }

  // --- TF Serving REST answers -------------------------------------------------

  const SINGLE_OUTPUT = { embed_image: "embeddings", embed_text: "embeddings" };

  // A predict answer ("outputs" or "predictions") -> {output: value}.
  function predictOutputs(signatureName, data) {
    const single = SINGLE_OUTPUT[signatureName] || "output";
    if ("outputs" in data) {
      const outputs = data.outputs;
      const named = outputs && typeof outputs === "object" && !Array.isArray(outputs);
      return named ? outputs : { [single]: outputs };
    }
    if ("predictions" in data) {
      const rows = data.predictions;
      if (rows.length && rows[0] && typeof rows[0] === "object" && !Array.isArray(rows[0])) {
        const columns = {};
        for (const name of Object.keys(rows[0])) columns[name] = rows.map((row) => row[name]);
        return columns;
      }
      return { [single]: rows };
    }
    throw new Error("The predict answer holds neither 'outputs' nor 'predictions'.");
  }

  return {
    canonicalize, formatPrompts, imageFormat, imageHeader, normalize, softmax,
    averagePromptEmbeddings, predictOutputs,
  };
});
