// Over 500 lines: one closure whose tabs (zero-shot, images, share links, search) share the page state; the rules shared with Python are in wire.js.
/*
 * keras_lit demo page. Plain JavaScript, no build step.
 *
 * Every model call is a TF Serving REST predict request,
 *   POST /v1/models/<name>:predict
 *   {"signature_name": ..., "inputs": {...}}   (columnar; images as {"b64": ...})
 * answered by the app itself or, with --serving-url, by TF Serving.
 *
 * Zero-shot takes one of two paths, shown under the bars:
 * - templates equal to the exported ones: the `zero_shot` signature, which
 *   fills the templates, embeds and averages the prompts inside the model;
 * - edited templates: `embed_text` on the filled-in prompts and
 *   `embed_image` on the image, then the same arithmetic in the page
 *   (wire.js: canonicalise each prompt, average a label's prompt
 *   embeddings, re-normalise; here: scale the cosines by the exported
 *   temperature, softmax). With the exported templates both paths give the
 *   same probabilities.
 */
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const wire = window.litWire; // wire.js: the rules shared with Python.
  const { canonicalize, imageHeader } = wire;
  const MAX_LABELS = 256;

  const app = {
    config: null,
    // Tests turn this off to check the server's own refusals.
    clientChecks: true,
    image: null, // {key, name, b64, size, source, sample}
    imageCounter: 0,
    imageGeneration: 0,
    imageEmbeddings: new Map(), // image key -> Float64Array
    textEmbeddings: new Map(), // canonical prompt -> number[]
    runId: 0,
    searchId: 0,
    debounce: null,
    statusTimer: null,
    statusRequest: null,
  };
  window.litApp = app;

  class AppError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  // --- Text -----------------------------------------------------------------

  function lines(text) {
    return text
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line.length > 0);
  }

  function sameList(a, b) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length &&
      a.every((value, i) => value === b[i]);
  }

  function megabytes(bytes) {
    return `${(bytes / 1e6).toFixed(1)} MB`;
  }

  // --- TF Serving REST ----------------------------------------------------------

  // The readable part of a model error: the text of the failed assertion,
  // without TensorFlow's node names.
  function modelErrorText(message) {
    let text = String(message);
    const marker = "assertion failed: [";
    const start = text.indexOf(marker);
    if (start >= 0) {
      text = text.slice(start + marker.length);
      const end = text.search(/\]\s*(\n|$)/);
      if (end >= 0) text = text.slice(0, end);
    }
    text = text.split(/\n\s*\[\[/)[0].trim();
    return text
      .replace(/^image_bytes\[\d+\]: /, "the image: ")
      .replace(/^class_names\[(\d+)\]: /, (_, i) => `label ${Number(i) + 1}: `)
      .replace(/^texts\[(\d+)\]: /, "the text: ");
  }

  function httpErrorText(status, message) {
    if (status === 413) return message;
    if (status === 400) return `The input was refused — ${modelErrorText(message)}`;
    if (status === 404) return `Not found: ${message}`;
    if (status === 502 || status === 503) return message;
    return `Server error (HTTP ${status}): ${modelErrorText(message)}`;
  }

  async function postJson(url, body) {
    const text = JSON.stringify(body);
    const limit = app.config ? app.config.max_request_bytes : Infinity;
    if (app.clientChecks && text.length > limit) {
      throw new AppError(
        `Request too large: ${megabytes(text.length)}, over this app's limit of ` +
        `${megabytes(limit)} per request (start it with a larger --max-request-mb).`, 413);
    }
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: text,
      });
    } catch (error) {
      throw new AppError(
        `Could not reach the app at ${location.origin} (${error.message}). ` +
        "Is it still running? The request may also have been too large.");
    }
    const answer = await response.text();
    let data = null;
    try { data = JSON.parse(answer); } catch (error) { data = null; }
    if (!response.ok) {
      const message = data && typeof data.error === "string"
        ? data.error : (answer.slice(0, 300) || response.statusText);
      throw new AppError(httpErrorText(response.status, message), response.status);
    }
    if (data === null) throw new AppError("The server's answer is not JSON.");
    return data;
  }

  // One predict call in TF Serving's columnar format; `{output: value}` back.
  async function predict(signatureName, inputs) {
    const data = await postJson(app.config.predict_url, {
      signature_name: signatureName,
      inputs,
    });
    try {
      return wire.predictOutputs(signatureName, data);
    } catch (error) {
      throw new AppError(error.message);
    }
  }

  // --- Zero-shot maths (the embed_text + embed_image path) ------------------------

  async function embedTexts(prompts) {
    const missing = [...new Set(prompts.filter((p) => !app.textEmbeddings.has(p)))];
    const batch = (app.config && app.config.max_batch) || 1024;
    for (let i = 0; i < missing.length; i += batch) {
      const chunk = missing.slice(i, i + batch);
      const out = await predict("embed_text", { texts: chunk });
      chunk.forEach((prompt, j) => app.textEmbeddings.set(prompt, out.embeddings[j]));
    }
    return prompts.map((p) => app.textEmbeddings.get(p));
  }

  async function embedImage(image) {
    if (!app.imageEmbeddings.has(image.key)) {
      const out = await predict("embed_image", { image_bytes: [{ b64: image.b64 }] });
      app.imageEmbeddings.set(image.key, out.embeddings[0]);
    }
    return app.imageEmbeddings.get(image.key);
  }

  function checkLabelsHaveWords(labels) {
    labels.forEach((label, i) => {
      if (!canonicalize(label)) {
        throw new AppError(
          `Label ${i + 1} (“${label}”) has no words once lower-cased and ` +
          "stripped of punctuation; type a real label.");
      }
    });
  }

  // Probabilities from embed_text + embed_image, as the zero_shot signature
  // computes them: prompt k*T+t is label k filled into template t.
  async function zeroShotViaEmbeddings(image, labels, templates) {
    const temperature = app.config.temperature;
    if (typeof temperature !== "number") {
      throw new AppError("Editing templates needs the export's temperature; start the app with --model <export_dir>.");
    }
    checkLabelsHaveWords(labels);
    const prompts = wire.formatPrompts(labels, templates);
    const [imageEmbedding, textEmbeddings] = await Promise.all([
      embedImage(image), embedTexts(prompts),
    ]);
    const weights = wire.averagePromptEmbeddings(textEmbeddings, templates.length);
    const logits = weights.map((weight) => {
      let dot = 0;
      for (let d = 0; d < weight.length; d++) dot += weight[d] * imageEmbedding[d];
      return temperature * dot;
    });
    return { probabilities: wire.softmax(logits), path: "embeddings" };
  }

  async function zeroShotSignature(image, labels) {
    const out = await predict("zero_shot", {
      image_bytes: [{ b64: image.b64 }],
      class_names: labels,
    });
    return { probabilities: out.probabilities[0], topClass: out.top_class[0], path: "zero_shot" };
  }

  // --- Zero-shot tab ----------------------------------------------------------------

  function showError(id, message) {
    const box = $(id);
    box.textContent = message;
    box.hidden = !message;
  }

  function currentTemplates() {
    return lines($("zs-templates").value);
  }

  function templatesEdited() {
    return Boolean(app.config.templates) && !sameList(currentTemplates(), app.config.templates);
  }

  function clearResults() {
    $("zs-results").replaceChildren();
    $("zs-results").dataset.state = "empty";
    $("zs-top").hidden = true;
  }

  async function classify() {
    clearTimeout(app.debounce);
    const runId = ++app.runId;
    showError("zs-error", "");
    const labels = lines($("zs-labels").value);
    const templates = currentTemplates();
    const image = app.image;
    const fail = (message) => {
      if (runId !== app.runId) return;
      clearResults();
      $("zs-results").dataset.state = "error";
      $("zs-results").closest(".card").classList.remove("busy");
      $("zs-status").textContent = "";
      showError("zs-error", message);
    };
    if (!image) return fail("Choose an image first: upload one, drop one here, or pick a sample.");
    if (!labels.length) return fail("Enter at least one label, one per line (for example “cat” and “dog”).");
    if (labels.length > MAX_LABELS) return fail(`Too many labels: ${labels.length}; the page sends at most ${MAX_LABELS}.`);
    const edited = templatesEdited();
    if (edited) {
      if (!templates.length) return fail("Enter at least one prompt template containing {}, or click “Use the exported templates”.");
      const bad = templates.find((t) => !t.includes("{}"));
      if (bad !== undefined) return fail(`Every template needs {} where the label goes. This one has none: “${bad}”.`);
    }
    $("zs-results").closest(".card").classList.add("busy");
    $("zs-results").dataset.state = "busy";
    $("zs-status").textContent = "Classifying…";
    const started = performance.now();
    try {
      const result = edited
        ? await zeroShotViaEmbeddings(image, labels, templates)
        : await zeroShotSignature(image, labels);
      if (runId !== app.runId) return;
      renderBars(image, labels, result, performance.now() - started);
    } catch (error) {
      fail(error.message || String(error));
    }
  }

  function percent(p) {
    if (p >= 0.9995) return "100%";
    if (p < 0.0005) return "<0.1%";
    return `${(100 * p).toFixed(1)}%`;
  }

  function renderBars(image, labels, result, milliseconds) {
    const probabilities = result.probabilities;
    const order = labels.map((_, i) => i).sort((a, b) => probabilities[b] - probabilities[a] || a - b);
    const list = $("zs-results");
    const items = order.map((index, rank) => {
      const item = document.createElement("li");
      item.dataset.label = labels[index];
      item.dataset.probability = String(probabilities[index]);
      if (rank === 0) item.classList.add("best");
      const name = document.createElement("span");
      name.className = "label";
      name.textContent = labels[index];
      name.title = labels[index];
      const track = document.createElement("span");
      track.className = "track";
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.width = `${(100 * probabilities[index]).toFixed(2)}%`;
      track.append(fill);
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = percent(probabilities[index]);
      item.append(name, track, value);
      return item;
    });
    list.replaceChildren(...items);
    const best = order[0];
    $("zs-top-label").textContent = labels[best];
    $("zs-top-value").textContent = percent(probabilities[best]);
    $("zs-top").hidden = false;
    list.dataset.labels = JSON.stringify(labels);
    list.dataset.image = image.name;
    list.dataset.path = result.path;
    list.dataset.state = "done";
    list.closest(".card").classList.remove("busy");
    const how = result.path === "zero_shot"
      ? "zero_shot signature (the exported templates)"
      : `embed_text + embed_image, averaged over ${currentTemplates().length} edited template(s) in the page`;
    $("zs-status").textContent = `${image.name} · ${how} · ${Math.round(milliseconds)} ms`;
  }

  function scheduleClassify() {
    updateTemplateBadge();
    updateAddress();
    clearTimeout(app.debounce);
    if (app.image) app.debounce = setTimeout(classify, 450);
  }

  function updateTemplateBadge() {
    if (!app.config) return;
    $("zs-template-count").textContent = String(currentTemplates().length);
    $("zs-templates-edited").hidden = !templatesEdited();
  }

  // --- Choosing an image ---------------------------------------------------------

  function readAsBase64(blob) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
      reader.onerror = () => reject(new AppError(`Could not read the file: ${reader.error}`));
      reader.readAsDataURL(blob);
    });
  }

  function rejectImage(message) {
    app.imageGeneration++;
    app.image = null;
    const preview = $("zs-preview");
    if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
    preview.hidden = true;
    preview.removeAttribute("src");
    $("zs-image-name").textContent = "No image.";
    markSample(null);
    clearResults();
    $("zs-results").dataset.state = "error";
    $("zs-status").textContent = "";
    showError("zs-error", message);
    updateAddress();
  }

  async function useImage(blob, name, sample) {
    app.runId++; // Answers for the previous image are stale now.
    const generation = ++app.imageGeneration;
    const stale = () => generation !== app.imageGeneration;
    showError("zs-error", "");
    const limit = app.config.max_request_bytes;
    const encoded = Math.ceil(blob.size / 3) * 4 + 4096;
    if (app.clientChecks && encoded > limit) {
      return rejectImage(
        `${name} is ${megabytes(blob.size)}: too large. This app accepts requests up to ` +
        `${megabytes(limit)}, and an image travels base64-encoded, so images up to about ` +
        `${megabytes(limit * 0.74)} fit. Shrink the image, or start the app with a larger --max-request-mb.`);
    }
    if (blob.size === 0) return rejectImage(`${name} is empty (0 bytes).`);
    const bytes = new Uint8Array(await blob.arrayBuffer());
    if (stale()) return undefined;
    const header = imageHeader(bytes);
    const pixels = header.width * header.height;
    const maxPixels = app.config.max_pixels;
    const tooManyPixels = header.width > 0 && header.height > 0 && pixels > maxPixels;
    if (app.clientChecks && tooManyPixels) {
      return rejectImage(
        `${name}: its ${header.format} header claims ${header.width} × ${header.height} pixels ` +
        `(${(pixels / 1e6).toFixed(0)} megapixels), over the limit of ${(maxPixels / 1e6).toFixed(0)} ` +
        "megapixels. Refused before decoding: a small file that claims a huge image is a " +
        "decompression bomb.");
    }
    const b64 = await readAsBase64(blob);
    if (stale()) return undefined;
    app.image = { key: ++app.imageCounter, name, b64, size: blob.size, sample: sample || null };
    markSample(sample || null);
    const preview = $("zs-preview");
    if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
    // Never let the browser decode what the checks refuse or cannot read.
    if (header.format && header.width > 0 && !tooManyPixels) {
      preview.src = URL.createObjectURL(blob);
      preview.hidden = false;
      $("zs-image-name").textContent = `${name} · ${header.width} × ${header.height} ${header.format}`;
    } else {
      preview.hidden = true;
      preview.removeAttribute("src");
      let why = `${header.format} header unreadable`;
      if (!header.format) why = "not a JPEG, PNG, GIF, BMP or WebP file";
      else if (tooManyPixels) why = `its header claims ${header.width} × ${header.height} pixels`;
      $("zs-image-name").textContent = `${name}: ${why}; no preview.`;
    }
    updateAddress();
    return classify();
  }

  async function useSample(name) {
    const sample = (app.config.samples || []).find((s) => s.name === name);
    if (!sample) {
      return rejectImage(`There is no sample image named “${name}”.`);
    }
    const generation = ++app.imageGeneration;
    try {
      const response = await fetch(sample.url);
      if (!response.ok) throw new AppError(`HTTP ${response.status}`);
      const blob = await response.blob();
      if (generation !== app.imageGeneration) return undefined; // Replaced.
      return useImage(blob, sample.name, sample.name);
    } catch (error) {
      return rejectImage(`Could not load the sample ${name}: ${error.message}`);
    }
  }

  function markSample(name) {
    for (const button of $("zs-samples").querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(button.dataset.sample === name));
    }
  }

  function renderSamples() {
    const buttons = (app.config.samples || []).map((sample) => {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.sample = sample.name;
      button.title = sample.name;
      button.setAttribute("aria-pressed", "false");
      const img = document.createElement("img");
      img.src = sample.url;
      img.alt = sample.name.replace(/\.[a-z]+$/, "").replace(/-/g, " ");
      button.append(img);
      button.addEventListener("click", () => useSample(sample.name));
      return button;
    });
    $("zs-samples").replaceChildren(...buttons);
  }

  // --- Share links ----------------------------------------------------------------------

  function shareParams() {
    const params = new URLSearchParams();
    const searchTab = !$("panel-search").hidden;
    if (searchTab) {
      params.set("tab", "search");
      const query = $("search-query").value.trim();
      if (query) params.set("q", query);
      return params;
    }
    for (const label of lines($("zs-labels").value)) params.append("label", label);
    if (templatesEdited()) {
      for (const template of currentTemplates()) params.append("template", template);
    }
    if (app.image && app.image.sample) params.set("sample", app.image.sample);
    return params;
  }

  function shareUrl() {
    const query = shareParams().toString();
    return `${location.origin}${location.pathname}${query ? `?${query}` : ""}`;
  }

  function updateAddress() {
    if (!app.config) return;
    history.replaceState(null, "", shareUrl());
  }

  async function copyShareLink() {
    const url = shareUrl();
    const field = $("zs-share-url");
    field.value = url;
    field.hidden = false;
    const note = $("zs-share-note");
    note.hidden = false;
    note.textContent = app.image && !app.image.sample
      ? "Copied. The link holds the labels and templates; an uploaded image stays on this computer."
      : "Copied: the link opens this page with these labels, templates and sample.";
    try {
      await navigator.clipboard.writeText(url);
    } catch (error) {
      field.select();
      note.textContent = "Select and copy the link above.";
    }
  }

  function applyUrl() {
    const params = new URLSearchParams(location.search);
    let labels = params.getAll("label");
    if (!labels.length && params.has("labels")) labels = params.get("labels").split(/[,\n]/);
    labels = labels.map((l) => l.trim()).filter(Boolean);
    $("zs-labels").value = (labels.length ? labels : app.config.default_labels || []).join("\n");
    const templates = params.getAll("template").map((t) => t.trim()).filter(Boolean);
    $("zs-templates").value = (templates.length ? templates : app.config.templates || []).join("\n");
    if (templates.length) $("zs-templates-box").open = true;
    if (params.get("q")) $("search-query").value = params.get("q");
    selectTab(params.get("tab") === "search" ? "search" : "zero-shot", false);
    return params;
  }

  // --- Tabs ------------------------------------------------------------------------------

  function selectTab(name, record = true) {
    for (const tab of document.querySelectorAll('[role="tab"]')) {
      const selected = tab.dataset.tab === name;
      tab.setAttribute("aria-selected", String(selected));
      $(tab.getAttribute("aria-controls")).hidden = !selected;
    }
    if (name === "search") pollSearchStatus();
    if (record) updateAddress();
  }

  // --- Search tab ---------------------------------------------------------------------

  function describeIndex(status) {
    if (status.state === "error") return `Indexing failed: ${status.error}`;
    if (status.state !== "ready") {
      return `Indexing ${status.folder}: ${status.done} of ${status.files} images embedded…`;
    }
    const parts = [`${status.images} image${status.images === 1 ? "" : "s"} in ${status.folder}`];
    if (status.embedded) parts.push(`${status.embedded} embedded now, ${status.from_cache} from the cache`);
    else parts.push("embeddings from the cache");
    return parts.join(" · ");
  }

  function showSkipped(status) {
    const skipped = status.skipped || [];
    const box = $("search-skipped-box");
    box.hidden = skipped.length === 0;
    if (!skipped.length) return;
    $("search-skipped-summary").textContent =
      `${status.skipped_count} file${status.skipped_count === 1 ? "" : "s"} skipped`;
    $("search-skipped").replaceChildren(...skipped.map((item) => {
      const li = document.createElement("li");
      li.textContent = `${item.name}: ${item.reason}`;
      return li;
    }));
  }

  function pollSearchStatus() {
    // One status request at a time, however many callers ask.
    if (!app.statusRequest) {
      app.statusRequest = readSearchStatus().finally(() => { app.statusRequest = null; });
    }
    return app.statusRequest;
  }

  async function readSearchStatus() {
    clearTimeout(app.statusTimer);
    if (!app.config || !app.config.search) {
      $("search-status").textContent = "Search is off: start the app with --images DIR.";
      return null;
    }
    try {
      const response = await fetch("/api/search/status");
      const status = await response.json();
      if (!response.ok) throw new AppError(status.error || `HTTP ${response.status}`);
      $("search-status").textContent = describeIndex(status);
      $("search-status").dataset.state = status.state;
      showSkipped(status);
      if (status.state === "indexing" || status.state === "pending") {
        app.statusTimer = setTimeout(pollSearchStatus, 700);
      }
      return status;
    } catch (error) {
      $("search-status").textContent = `Could not read the index status: ${error.message}`;
      return null;
    }
  }

  async function runSearch() {
    const searchId = ++app.searchId;
    showError("search-error", "");
    const results = $("search-results");
    const query = $("search-query").value.trim();
    updateAddress();
    const fail = (message) => {
      if (searchId !== app.searchId) return;
      results.replaceChildren();
      results.dataset.state = "error";
      showError("search-error", message);
    };
    if (!query) return fail("Type what you are looking for, for example “a red circle”.");
    const text = canonicalize(query);
    if (!text) return fail("The query has no words once lower-cased and stripped of punctuation.");
    results.dataset.state = "busy";
    try {
      const out = await predict("embed_text", { texts: [text] });
      const data = await postJson("/api/search", {
        embedding: out.embeddings[0],
        top_k: Number($("search-top-k").value),
      });
      if (searchId !== app.searchId) return;
      renderHits(query, data.results);
      if (data.status) $("search-status").textContent = describeIndex(data.status);
    } catch (error) {
      fail(error.message);
      if (error.status === 503) pollSearchStatus();
    }
  }

  function renderHits(query, hits) {
    const results = $("search-results");
    const figures = hits.map((hit, rank) => {
      const figure = document.createElement("figure");
      figure.dataset.name = hit.name;
      figure.dataset.score = String(hit.score);
      if (rank === 0) figure.classList.add("best");
      const img = document.createElement("img");
      img.src = hit.url;
      img.alt = hit.name;
      img.loading = "lazy";
      const caption = document.createElement("figcaption");
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = `${rank + 1}. ${hit.name}`;
      name.title = hit.name;
      const score = document.createElement("span");
      score.className = "score";
      score.textContent = `cosine ${hit.score.toFixed(3)}`;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "secondary small";
      button.textContent = "Classify this";
      button.addEventListener("click", async () => {
        selectTab("zero-shot");
        try {
          const response = await fetch(hit.url);
          if (!response.ok) throw new AppError(`HTTP ${response.status}`);
          await useImage(await response.blob(), hit.name.split("/").pop(), null);
        } catch (error) {
          rejectImage(`Could not load ${hit.name}: ${error.message}`);
        }
      });
      caption.append(name, score, button);
      figure.append(img, caption);
      return figure;
    });
    if (!figures.length) {
      const empty = document.createElement("p");
      empty.className = "muted";
      empty.textContent = "No images in the folder yet.";
      figures.push(empty);
    }
    results.replaceChildren(...figures);
    results.dataset.query = query;
    results.dataset.state = "done";
  }

  // --- Start ------------------------------------------------------------------------------

  async function start() {
    try {
      const response = await fetch("/api/config");
      if (!response.ok) throw new AppError(`HTTP ${response.status}`);
      app.config = await response.json();
    } catch (error) {
      showError("page-error", `Could not load the app's configuration (${error.message}). Is the app running?`);
      return;
    }
    const config = app.config;
    $("model-line").textContent = `Model: ${config.backend.description}`;
    $("endpoint-line").textContent = `POST ${config.predict_url}`;
    $("metadata-link").href = config.metadata_url;
    if (!config.templates) {
      $("zs-templates-box").hidden = true;
    }
    renderSamples();
    const params = applyUrl();
    updateTemplateBadge();

    $("zs-labels").addEventListener("input", scheduleClassify);
    $("zs-templates").addEventListener("input", scheduleClassify);
    for (const box of [$("zs-labels"), $("zs-templates")]) {
      box.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) classify();
      });
    }
    $("zs-templates-reset").addEventListener("click", () => {
      $("zs-templates").value = (config.templates || []).join("\n");
      scheduleClassify();
    });
    $("zs-run").addEventListener("click", classify);
    $("zs-share").addEventListener("click", copyShareLink);
    $("zs-file").addEventListener("change", (event) => {
      const file = event.target.files[0];
      event.target.value = ""; // Choosing the same file again fires again.
      if (file) useImage(file, file.name, null);
    });
    const drop = $("zs-drop");
    drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("dragging"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("dragging");
      const file = event.dataTransfer.files[0];
      if (file) useImage(file, file.name, null);
    });
    document.addEventListener("paste", (event) => {
      const file = Array.from(event.clipboardData.files || [])[0];
      if (file && $("panel-search").hidden) useImage(file, file.name || "pasted image", null);
    });
    for (const tab of document.querySelectorAll('[role="tab"]')) {
      tab.addEventListener("click", () => selectTab(tab.dataset.tab));
    }
    $("search-form").addEventListener("submit", (event) => { event.preventDefault(); runSearch(); });
    $("search-refresh").addEventListener("click", async () => {
      try {
        await postJson("/api/search/refresh", {});
      } catch (error) {
        showError("search-error", error.message);
      }
      pollSearchStatus();
    });

    const status = pollSearchStatus();
    const sample = params.get("sample") || (config.samples[0] && config.samples[0].name);
    if (sample) await useSample(sample);
    if (params.get("tab") === "search" && params.get("q")) {
      await status;
      await runSearch();
    }
    document.body.dataset.ready = "true";
  }

  Object.assign(app, {
    canonicalize, imageHeader, predict, zeroShotSignature, zeroShotViaEmbeddings,
    modelErrorText, classify, runSearch, useImage,
  });
  document.addEventListener("DOMContentLoaded", start);
})();
