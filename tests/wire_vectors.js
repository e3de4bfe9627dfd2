// Runs the page's wire-format rules (keras_lit/app/static/wire.js) on the
// shared test vectors in tests/data and prints the results as JSON, for
// tests/wire_rules_test.py to compare with the Python homes.
"use strict";
const fs = require("fs");
const path = require("path");

const wire = require(path.join(__dirname, "..", "keras_lit", "app", "static", "wire.js"));
const read = (name) => JSON.parse(fs.readFileSync(path.join(__dirname, "data", name), "utf8"));

const images = read("image_header_vectors.json").vectors;
const text = read("text_vectors.json");
const averaging = read("prompt_averaging_vectors.json").cases;
console.log(JSON.stringify({
  headers: images.map((v) => wire.imageHeader(Uint8Array.from(Buffer.from(v.bytes_b64, "base64")))),
  canonical: text.canonical.map((v) => wire.canonicalize(v.text)),
  prompts: wire.formatPrompts(text.prompts.class_names, text.prompts.templates),
  averages: averaging.map((c) => wire.averagePromptEmbeddings(c.prompt_embeddings, c.num_templates)),
}));
