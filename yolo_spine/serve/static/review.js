// yolo_spine review page. Plain JavaScript, no framework, nothing fetched from outside this server.
//
// Flow: GET v1/models fills the model list; a dropped or chosen radiograph is sent once to
// POST v1/radiographs (JSON at a low confidence, REQUEST_CONF) and once to v1/radiographs/preview.png (the 8-bit
// image the model saw: a browser cannot show DICOM). The slider and the class boxes then filter in the browser, so
// moving them never re-runs the model. All coordinates are pixels of the original image (x right, y down), which
// is also the canvas's pixel grid.
"use strict";

(function () {
  const REQUEST_CONF = 0.01; // the lowest threshold the slider offers; everything above it is filtered here
  const FILL_ALPHA = 0.35;

  const $ = (id) => document.getElementById(id);
  const el = {
    model: $("model"), modelInfo: $("model-info"), drop: $("drop"), file: $("file"), token: $("token"),
    status: $("status"), review: $("review"), conf: $("conf"), confValue: $("conf-value"), shown: $("shown"),
    classList: $("class-list"), allClasses: $("all-classes"), noClasses: $("no-classes"),
    tokenBox: $("token-box"), dlJson: $("dl-json"), dlYolo: $("dl-yolo"), dlSeg: $("dl-seg"), canvas: $("canvas"),
    tbody: document.querySelector("#instances tbody"),
  };

  const state = {
    models: [], file: null, isDicom: false, result: null, image: null, hidden: new Set(), request: 0,
  };

  // Golden-ratio hues, as `yolo_spine predict` colours its overlays, so a class looks the same in both.
  function classColor(classId) {
    const h = (classId * 0.618033988749895) % 1.0;
    const s = 0.85;
    const v = 1.0;
    const i = Math.floor(h * 6);
    const f = h * 6 - i;
    const p = v * (1 - s), q = v * (1 - f * s), t = v * (1 - (1 - f) * s);
    const rgb = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i % 6];
    return rgb.map((c) => Math.round(c * 255));
  }
  const rgba = (c, a) => `rgba(${c[0]},${c[1]},${c[2]},${a})`;

  function setStatus(text, isError) {
    el.status.textContent = text;
    el.status.classList.toggle("error", Boolean(isError));
  }

  function authHeaders() {
    const token = el.token.value.trim();
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  // The server answers errors with {"detail": "one sentence"}; show that sentence, nothing else.
  async function errorSentence(response) {
    let detail = "";
    try {
      const body = await response.json();
      detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (e) {
      detail = response.statusText;
    }
    if (response.status === 401 || response.status === 403) {
      el.tokenBox.open = true;
      return `The server refused the request (${response.status}): ${detail} Enter its access token above.`;
    }
    return `The server could not read this radiograph (${response.status}): ${detail}`;
  }

  function currentModel() {
    return state.models.find((m) => m.name === el.model.value) || null;
  }

  async function loadModels() {
    let response;
    try {
      response = await fetch("v1/models", { headers: authHeaders() });
    } catch (e) {
      setStatus("The server cannot be reached.", true);
      return;
    }
    if (!response.ok) {
      setStatus(await errorSentence(response), true);
      return;
    }
    state.models = await response.json();
    el.model.textContent = "";
    for (const m of state.models) {
      const option = document.createElement("option");
      option.value = m.name;
      option.textContent = m.anatomy ? `${m.name} (${m.anatomy})` : m.name;
      el.model.append(option);
    }
    el.model.disabled = state.models.length === 0;
    showModelInfo();
    setStatus(state.models.length ? "Ready: drop or choose a radiograph." : "The server has no model loaded.",
      state.models.length === 0);
  }

  function showModelInfo() {
    const m = currentModel();
    el.modelInfo.textContent = m
      ? `${m.classes.length} classes, default confidence ${m.default_conf.toFixed(2)}, weights ${m.sha256_12}`
      : "";
  }

  // DICOM Part 10 files carry "DICM" at byte 128; a file without the preamble is recognised by its suffix.
  async function looksLikeDicom(file) {
    const head = new Uint8Array(await file.slice(128, 132).arrayBuffer());
    const magic = String.fromCharCode(...head);
    return magic === "DICM" || /\.(dcm|dicom)$/i.test(file.name);
  }

  async function post(path, file, params) {
    const form = new FormData();
    form.append("file", file);
    const query = new URLSearchParams(params).toString();
    return fetch(`${path}?${query}`, { method: "POST", body: form, headers: authHeaders() });
  }

  async function analyse(file) {
    const model = currentModel();
    if (!model) {
      setStatus("Choose a model first.", true);
      return;
    }
    const request = ++state.request;
    state.file = file;
    setStatus(`Segmenting with ${model.name}…`);
    el.dlSeg.disabled = true;
    let json, preview;
    try {
      state.isDicom = await looksLikeDicom(file);
      const params = { model: model.name, conf: String(REQUEST_CONF) };
      [json, preview] = await Promise.all([
        post("v1/radiographs", file, params),
        post("v1/radiographs/preview.png", file, { model: model.name }),
      ]);
    } catch (e) {
      if (request === state.request) {
        clearResult();
        setStatus("The server cannot be reached.", true);
      }
      return;
    }
    if (request !== state.request) return; // a newer file was dropped meanwhile
    for (const response of [json, preview]) {
      if (!response.ok) {
        clearResult();
        setStatus(await errorSentence(response), true);
        return;
      }
    }
    let result, image;
    try {
      result = await json.json();
      image = await loadImage(await preview.blob());
    } catch (e) {
      if (request === state.request) {
        clearResult();
        setStatus("The server's answer could not be read.", true);
      }
      return;
    }
    if (request !== state.request) return;
    if (image.naturalWidth !== result.width || image.naturalHeight !== result.height) {
      setStatus(`The preview is ${image.naturalWidth}×${image.naturalHeight} px but the instances are in ` +
        `${result.width}×${result.height} px; refusing to draw them misaligned.`, true);
      return;
    }
    state.result = result;
    state.image = image;
    state.hidden = new Set();
    const defaultConf = result.model && typeof result.model.default_conf === "number"
      ? result.model.default_conf : model.default_conf;
    el.conf.min = String(REQUEST_CONF);
    el.conf.value = String(Math.max(REQUEST_CONF, Math.min(1, defaultConf)));
    el.canvas.width = result.width;
    el.canvas.height = result.height;
    buildClassList();
    el.review.hidden = false;
    el.dlSeg.disabled = !state.isDicom;
    render();
    setStatus(`${result.instances.length} instances at confidence ≥ ${REQUEST_CONF} in a ` +
      `${result.width}×${result.height} px radiograph; filter them below.`);
  }

  // A failed upload hides the previous radiograph's result, so it is not taken for this file's.
  function clearResult() {
    state.result = null;
    state.image = null;
    el.review.hidden = true;
    el.dlSeg.disabled = true;
  }

  function loadImage(blob) {
    return new Promise((resolve, reject) => {
      const image = new Image();
      image.onload = () => resolve(image);
      image.onerror = () => reject(new Error("the preview is not an image"));
      image.src = URL.createObjectURL(blob);
    });
  }

  function classNames() {
    const fromModel = state.result.model && Array.isArray(state.result.model.classes) ? state.result.model.classes : [];
    return fromModel.length ? fromModel : (currentModel() || { classes: [] }).classes;
  }

  // Classes that have at least one instance, in registry order (never alphabetically).
  function buildClassList() {
    const counts = new Map();
    for (const inst of state.result.instances) counts.set(inst.class_id, (counts.get(inst.class_id) || 0) + 1);
    const names = classNames();
    const ids = [...counts.keys()].sort((a, b) => a - b);
    el.classList.textContent = "";
    for (const id of ids) {
      const li = document.createElement("li");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = true;
      box.id = `class-${id}`;
      box.dataset.classId = String(id);
      box.addEventListener("change", () => {
        if (box.checked) state.hidden.delete(id); else state.hidden.add(id);
        render();
      });
      const label = document.createElement("label");
      label.htmlFor = box.id;
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = rgba(classColor(id), 1);
      swatch.setAttribute("aria-hidden", "true");
      const name = names[id] !== undefined ? names[id] : `class ${id}`;
      label.append(swatch, `${name} `);
      const count = document.createElement("span");
      count.className = "note";
      count.id = `class-count-${id}`;
      label.append(count);
      li.append(box, label);
      el.classList.append(li);
    }
    if (!ids.length) {
      const li = document.createElement("li");
      li.textContent = "No instances found.";
      el.classList.append(li);
    }
  }

  function visibleInstances() {
    const threshold = Number(el.conf.value);
    return state.result.instances.filter((i) => i.confidence >= threshold && !state.hidden.has(i.class_id));
  }

  function render() {
    if (!state.result) return;
    const threshold = Number(el.conf.value);
    el.confValue.textContent = threshold.toFixed(2);
    const shown = visibleInstances();
    const ctx = el.canvas.getContext("2d");
    ctx.clearRect(0, 0, el.canvas.width, el.canvas.height);
    ctx.drawImage(state.image, 0, 0);
    const w = el.canvas.width, h = el.canvas.height;
    const lineWidth = Math.max(1, Math.round((w + h) / 2 * 0.002));
    const fontPx = Math.max(12, Math.round((w + h) / 2 * 0.012));
    const paths = shown.filter((i) => i.polygon_xy && i.polygon_xy.length >= 3).map((inst) => {
      const path = new Path2D();
      inst.polygon_xy.forEach(([x, y], k) => (k ? path.lineTo(x, y) : path.moveTo(x, y)));
      path.closePath();
      return [inst, path];
    });
    // Polygon vertices are pixel indices (vertex (u, v) is the centre of pixel [v, u]); on a canvas that centre
    // is at (u + 0.5, v + 0.5).
    ctx.save();
    ctx.translate(0.5, 0.5);
    // Fills, then outlines, then labels: no fill covers another instance's outline or label.
    for (const [inst, path] of paths) {
      ctx.fillStyle = rgba(classColor(inst.class_id), FILL_ALPHA);
      ctx.fill(path);
    }
    ctx.lineWidth = lineWidth;
    ctx.lineJoin = "round"; // a mitre at a sharp vertex would reach far outside the instance
    for (const [inst, path] of paths) {
      ctx.strokeStyle = rgba(classColor(inst.class_id), 1);
      ctx.stroke(path);
    }
    ctx.restore();
    ctx.font = `${fontPx}px system-ui, sans-serif`;
    ctx.textBaseline = "bottom";
    const names = classNames();
    for (const inst of shown) {
      const text = `${inst.name || names[inst.class_id]} ${inst.confidence.toFixed(2)}`;
      const [x1, y1] = inst.box_xyxy;
      const tw = ctx.measureText(text).width;
      const y = Math.max(y1, fontPx + 4);
      ctx.fillStyle = rgba(classColor(inst.class_id), 1);
      ctx.fillRect(x1, y - fontPx - 4, tw + 6, fontPx + 4);
      ctx.fillStyle = "#000";
      ctx.fillText(text, x1 + 3, y - 2);
    }
    describe(shown, threshold);
  }

  // The same information in text: a count, per-class counts, the canvas's label and a table.
  function describe(shown, threshold) {
    const total = state.result.instances.length;
    el.shown.textContent = `${shown.length} of ${total} instances shown (confidence ≥ ${threshold.toFixed(2)}).`;
    const perClass = new Map();
    for (const inst of state.result.instances) {
      if (inst.confidence >= threshold) perClass.set(inst.class_id, (perClass.get(inst.class_id) || 0) + 1);
    }
    for (const span of el.classList.querySelectorAll("[id^=class-count-]")) {
      const id = Number(span.id.slice("class-count-".length));
      span.textContent = `(${perClass.get(id) || 0})`;
    }
    const sorted = [...shown].sort((a, b) => a.class_id - b.class_id || b.confidence - a.confidence);
    const names = classNames();
    el.canvas.setAttribute("aria-label", sorted.length
      ? `Radiograph with ${sorted.length} instances: ` +
        sorted.map((i) => `${i.name || names[i.class_id]} ${i.confidence.toFixed(2)}`).join(", ")
      : "Radiograph with no instance shown");
    el.tbody.textContent = "";
    for (const inst of sorted) {
      const tr = document.createElement("tr");
      const cells = [inst.name || names[inst.class_id], inst.confidence.toFixed(3),
        inst.box_xyxy.map((v) => Math.round(v)).join(", ")];
      cells.forEach((text, k) => {
        const td = document.createElement("td");
        td.textContent = text;
        if (k) td.className = "num";
        tr.append(td);
      });
      el.tbody.append(tr);
    }
  }

  // Downloads are named after the model, never after the uploaded file: a radiograph's file name can identify
  // the patient (DICOM exports are often named by UID or by name).
  function download(blob, name) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }

  function baseName() {
    return `yolo_spine_${state.result.model && state.result.model.name ? state.result.model.name : "review"}`;
  }

  function downloadJson() {
    const threshold = Number(el.conf.value);
    const out = {
      width: state.result.width,
      height: state.result.height,
      model: state.result.model,
      not_for_clinical_use: true,
      conf: threshold,
      hidden_classes: [...state.hidden].sort((a, b) => a - b),
      instances: visibleInstances(),
    };
    download(new Blob([JSON.stringify(out, null, 1)], { type: "application/json" }), `${baseName()}.json`);
  }

  // YOLO-seg label lines: class id, then the polygon normalised to [0, 1] by the image's width and height.
  function downloadYolo() {
    const w = state.result.width, h = state.result.height;
    const lines = visibleInstances()
      .filter((i) => i.polygon_xy && i.polygon_xy.length >= 3)
      .map((i) => [String(i.class_id), ...i.polygon_xy.flatMap(([x, y]) => [
        Math.min(1, Math.max(0, x / w)).toFixed(6), Math.min(1, Math.max(0, y / h)).toFixed(6)])].join(" "));
    download(new Blob([lines.join("\n") + (lines.length ? "\n" : "")], { type: "text/plain" }), `${baseName()}.txt`);
  }

  async function downloadSeg() {
    if (!state.file || !state.isDicom) return;
    const model = state.result.model && state.result.model.name ? state.result.model.name : el.model.value;
    setStatus("Writing the DICOM-SEG…");
    el.dlSeg.disabled = true;
    try {
      const response = await post("v1/radiographs/seg.dcm", state.file, { model, conf: el.conf.value });
      if (!response.ok) {
        setStatus(await errorSentence(response), true);
        return;
      }
      download(await response.blob(), `${baseName()}_seg.dcm`);
      setStatus("DICOM-SEG downloaded (every class at the chosen confidence; not for clinical use).");
    } catch (e) {
      setStatus("The server cannot be reached.", true);
    } finally {
      el.dlSeg.disabled = !state.isDicom;
    }
  }

  function setAllClasses(visible) {
    for (const box of el.classList.querySelectorAll("input[type=checkbox]")) {
      box.checked = visible;
      const id = Number(box.dataset.classId);
      if (visible) state.hidden.delete(id); else state.hidden.add(id);
    }
    render();
  }

  function pick(files) {
    if (files && files.length) analyse(files[0]);
  }

  el.file.addEventListener("change", () => pick(el.file.files));
  // A file dropped anywhere on the page is taken (the browser would otherwise open it in place of the page).
  document.addEventListener("dragover", (e) => { e.preventDefault(); el.drop.classList.add("over"); });
  document.addEventListener("dragleave", (e) => { if (!e.relatedTarget) el.drop.classList.remove("over"); });
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    el.drop.classList.remove("over");
    pick(e.dataTransfer.files);
  });
  el.model.addEventListener("change", () => { showModelInfo(); if (state.file) analyse(state.file); });
  el.conf.addEventListener("input", render);
  el.allClasses.addEventListener("click", () => setAllClasses(true));
  el.noClasses.addEventListener("click", () => setAllClasses(false));
  el.dlJson.addEventListener("click", downloadJson);
  el.dlYolo.addEventListener("click", downloadYolo);
  el.dlSeg.addEventListener("click", downloadSeg);
  el.token.addEventListener("change", loadModels);
  loadModels();
})();
