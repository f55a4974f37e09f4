// The explorer's page: plain JavaScript over the server's API (README, "The explorer's API"). The view lives in
// the address (?layer=&image=&filter=&view=&class=), so a view can be linked and reloaded.

const $ = (id) => document.getElementById(id);
const state = { layer: null, image: null, filter: null, view: "maps", cls: null, method: "gradcam" };
let model = null;
let images = [];
let layout = null;

const enc = encodeURIComponent;
const safeName = (layer) => layer.replaceAll("/", "__").replace(/[^A-Za-z0-9._-]/g, "_");

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  const kind = response.headers.get("content-type") || "";
  const body = kind.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    throw new Error(body && body.error ? body.error : `${response.status} ${response.statusText}`);
  }
  return body;
}

function readState() {
  const query = new URLSearchParams(location.search);
  for (const key of ["layer", "image", "view"]) {
    if (query.get(key)) state[key] = query.get(key);
  }
  state.cls = query.get("class");
  state.method = query.get("method") || "gradcam";
  state.filter = query.has("filter") ? Number(query.get("filter")) : null;
}

function writeState() {
  const query = new URLSearchParams();
  if (state.layer) query.set("layer", state.layer);
  if (state.image) query.set("image", state.image);
  if (state.filter !== null) query.set("filter", String(state.filter));
  if (state.view !== "maps") query.set("view", state.view);
  if (state.cls) query.set("class", state.cls);
  if (state.method !== "gradcam") query.set("method", state.method);
  history.replaceState(null, "", `/?${query}`);
}

// -- the model's layers, grouped by nested model ---------------------------------------------------------------

function renderLayers() {
  const nav = $("layers");
  nav.replaceChildren();
  const groups = new Map();
  for (const layer of model.layers) {
    const cut = layer.name.lastIndexOf("/");
    const group = cut < 0 ? "" : layer.name.slice(0, cut);
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push(layer);
  }
  for (const [group, layers] of groups) {
    const box = document.createElement(group ? "details" : "div");
    if (group) {
      box.open = true;
      const summary = document.createElement("summary");
      summary.textContent = `${group}/`;
      box.append(summary);
    }
    for (const layer of layers) {
      const button = document.createElement("button");
      button.className = "layer";
      button.dataset.layer = layer.name;
      button.disabled = !layer.maps;
      button.title = layer.maps ? `${layer.params.toLocaleString()} parameters` : "no 2-D or 1-D maps to draw";
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = group ? layer.name.slice(group.length + 1) : layer.name;
      const about = document.createElement("span");
      about.className = "about";
      about.textContent = `${layer.kind} ${layer.kernel} → ${layer.output}`;
      button.append(name, about);
      button.addEventListener("click", () => selectLayer(layer.name));
      box.append(button);
    }
    nav.append(box);
  }
}

// -- images ------------------------------------------------------------------------------------------------------

async function loadImages() {
  images = await api("/api/images");
  const strip = $("strip");
  strip.replaceChildren();
  for (const image of images) {
    const button = document.createElement("button");
    button.className = "thumb";
    button.dataset.image = image.id;
    button.title = image.name;
    const picture = document.createElement("img");
    picture.src = `/api/images/${image.id}.png`;
    picture.alt = image.name;
    const name = document.createElement("span");
    name.textContent = image.name;
    button.append(picture, name);
    button.addEventListener("click", () => selectImage(image.id));
    strip.append(button);
  }
  markChosen();
}

async function upload(files) {
  const error = $("upload-error");
  error.hidden = true;
  let last = null;
  for (const file of files) {
    try {
      last = await api(`/api/images?name=${enc(file.name)}`, { method: "POST", body: file });
    } catch (failure) {
      error.textContent = `${file.name}: ${failure.message}`;
      error.hidden = false;
    }
  }
  await loadImages();
  if (last) selectImage(last.id);
}

// -- the views -----------------------------------------------------------------------------------------------------

function markChosen() {
  for (const button of document.querySelectorAll("button.layer")) {
    button.classList.toggle("chosen", button.dataset.layer === state.layer);
  }
  for (const button of document.querySelectorAll("button.thumb")) {
    button.classList.toggle("chosen", button.dataset.image === state.image);
  }
  for (const tab of document.querySelectorAll("button.tab")) {
    tab.classList.toggle("chosen", tab.dataset.view === state.view);
  }
}

function selectLayer(name) {
  state.layer = name;
  state.filter = null;
  show();
}

function selectImage(id) {
  state.image = id;
  show();
}

function setStatus(text) {
  $("view-status").textContent = text;
}

// An image that shows a view: its error, if any, is the API's JSON message, fetched again to be read.
function loadPicture(img, url) {
  delete img.dataset.loaded;
  delete img.dataset.error;
  img.classList.add("loading");
  return new Promise((resolve, reject) => {
    img.onload = () => {
      img.classList.remove("loading");
      img.dataset.loaded = url;
      resolve();
    };
    img.onerror = async () => {
      let failure = new Error("the picture could not be shown");
      try {
        await api(url);
      } catch (given) {
        failure = given;
      }
      img.classList.remove("loading");
      img.dataset.error = failure.message;
      reject(failure);
    };
    img.src = url;
  });
}

async function show() {
  writeState();
  markChosen();
  $("maps-view").hidden = state.view !== "maps";
  $("gradcam-view").hidden = state.view !== "gradcam";
  if (state.view !== "maps" || state.filter === null) $("card").hidden = true;
  $("mark").hidden = true;
  if (state.image === null) {
    setStatus(images.length ? "Choose an image." : "Upload an image to begin.");
    return;
  }
  if (state.view === "gradcam") return showGradcam();
  if (!state.layer) {
    setStatus("Choose a layer.");
    return;
  }
  const { image, layer } = state;
  const url = `/api/maps/${image}/${enc(layer)}.png`;
  setStatus(`Computing ${layer}…`);
  $("save").href = url;
  $("save").download = `${safeName(layer)}.png`;
  try {
    const [found] = await Promise.all([api(`/api/maps/${image}/${enc(layer)}.json`), loadPicture($("grid"), url)]);
    if (state.image !== image || state.layer !== layer) return;
    layout = found;
    const [rows, cols] = layout.shape;
    setStatus(`${layer}: ${layout.channels.length} maps of ${rows}×${cols ?? ""}`.replace(/×$/, ""));
    showShape(layer, layout.shape);
    $("grid").dataset.ready = `${image} ${layer}`;
    if (state.filter !== null) openCard(state.filter);
  } catch (failure) {
    setStatus(`Error: ${failure.message}`);
  }
}

function tileAt(event) {
  const img = $("grid");
  const box = img.getBoundingClientRect();
  const x = ((event.clientX - box.left) * img.naturalWidth) / box.width;
  const y = ((event.clientY - box.top) * img.naturalHeight) / box.height;
  const top = img.naturalHeight - layout.size[0];
  const [tileRows, tileCols] = layout.tile;
  const row = Math.floor((y - top) / (tileRows + layout.padding));
  const col = Math.floor(x / (tileCols + layout.padding));
  if (y < top || col >= layout.grid[1] || row >= layout.grid[0]) return null;
  const index = row * layout.grid[1] + col;
  return index < layout.channels.length ? layout.channels[index] : null;
}

// -- the filter card -------------------------------------------------------------------------------------------

async function watchTask(prefix, bar, until) {
  bar.hidden = false;
  const fill = bar.firstElementChild;
  let done = false;
  until.finally(() => {
    done = true;
    bar.hidden = true;
  });
  while (!done) {
    try {
      const tasks = await api("/api/tasks");
      const task = tasks.filter((t) => t.key.startsWith(prefix)).pop();
      if (task && task.total) fill.style.width = `${(100 * task.done) / task.total}%`;
    } catch {
      // the bar only stops moving
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

// A model of free input size has no output shape of its own: the chosen layer's line gives this image's.
function showShape(layer, shape) {
  const entry = model.layers.find((l) => l.name === layer);
  const about = document.querySelector(`button.layer[data-layer="${CSS.escape(layer)}"] .about`);
  if (entry && about && entry.output.includes("?")) {
    about.textContent = `${entry.kind} ${entry.kernel} → ${shape.join("x")} (this image)`;
  }
}

// The chosen map alone, enlarged: its tile of the grid, cut out by the background's position and size.
function showMap(filter) {
  const box = $("card-map");
  const place = layout.channels.indexOf(filter);
  const img = $("grid");
  if (place < 0) {
    box.hidden = true;
    return;
  }
  const [tileRows, tileCols] = layout.tile;
  const row = Math.floor(place / layout.grid[1]);
  const col = place % layout.grid[1];
  const top = img.naturalHeight - layout.size[0] + row * (tileRows + layout.padding);
  const scale = box.clientWidth / tileCols;
  box.hidden = false;
  box.style.height = `${tileRows * scale}px`;
  box.style.backgroundImage = `url("${img.src}")`;
  box.style.backgroundSize = `${img.naturalWidth * scale}px ${img.naturalHeight * scale}px`;
  box.style.backgroundPosition = `-${col * (tileCols + layout.padding) * scale}px -${top * scale}px`;
}

// A frame over the chosen map's tile.
function markTile(filter) {
  const place = layout.channels.indexOf(filter);
  const img = $("grid");
  const mark = $("mark");
  if (place < 0 || !img.naturalWidth) {
    mark.hidden = true;
    return;
  }
  const scale = img.clientWidth / img.naturalWidth;
  const [tileRows, tileCols] = layout.tile;
  const row = Math.floor(place / layout.grid[1]);
  const col = place % layout.grid[1];
  const top = img.naturalHeight - layout.size[0] + row * (tileRows + layout.padding);
  mark.style.left = `${img.offsetLeft + col * (tileCols + layout.padding) * scale}px`;
  mark.style.top = `${img.offsetTop + top * scale}px`;
  mark.style.width = `${tileCols * scale}px`;
  mark.style.height = `${tileRows * scale}px`;
  mark.hidden = false;
}

async function openCard(filter) {
  const { image, layer } = state;
  state.filter = filter;
  writeState();
  const card = $("card");
  card.hidden = false;
  markTile(filter);
  showMap(filter);
  $("card-title").textContent = `${layer} · filter ${filter}`;
  const atlas = model.atlas[layer];
  $("card-atlas").hidden = !(atlas && atlas.units.includes(filter));
  if (atlas) $("card-atlas").href = `/atlas/${encodeURIComponent(atlas.folder)}/${filter}.html`;
  const low = layout.min[filter];
  const high = layout.max[filter];
  $("card-range").textContent = `on ${images.find((i) => i.id === image)?.name ?? image}: ${low.toPrecision(4)} to ${high.toPrecision(4)}`;
  const layerPath = enc(layer);
  const shown = (img, url) => loadPicture(img, url).catch((failure) => {
    img.removeAttribute("src");
    img.alt = failure.message;
    img.title = failure.message;
  });
  shown($("card-overlay"), `/api/overlay/${image}/${layerPath}/${filter}.png`);
  // a transformer block's maps are its tokens: it has no kernel to draw
  const tokens = model.layers.find((row) => row.name === layer)?.kernel === "tokens";
  $("card-kernel").closest("figure").hidden = tokens;
  if (!tokens) shown($("card-kernel"), `/api/kernels/${layerPath}/${filter}.png`);
  const maximize = shown($("card-maximize"), `/api/maximize/${layerPath}/${filter}.png`);
  watchTask(`maximize ${layer} ${filter}`, $("card-maximize-progress"), maximize);
  // top images and stats are over every image: a new upload makes them new views
  const top = shown($("card-top"), `/api/top/${layerPath}/${filter}.png?images=${images.length}`);
  watchTask(`top ${layer} `, $("card-top-progress"), top);
  $("card-stats").textContent = "dead or rare? scanning the images…";
  try {
    const rows = await api(`/api/stats/${layerPath}.json?images=${images.length}`);
    const row = rows.find((r) => r.filter === filter);
    if (state.filter !== filter) return;
    const verdict = row.dead ? "dead: never active on these images" : row.rare ? "rare: seldom active" : "alive";
    const share = (100 * row.active_fraction).toFixed(1);
    $("card-stats").textContent = `${verdict} (active at ${share}% of positions, on ${row.images_active} of ${row.images} images)`;
    $("card-stats").dataset.verdict = row.dead ? "dead" : row.rare ? "rare" : "alive";
  } catch (failure) {
    $("card-stats").textContent = `stats: ${failure.message}`;
  }
}

// -- Grad-CAM --------------------------------------------------------------------------------------------------

// Grad-CAM has its own route (the gradcam command's picture); every other method is the explain command's, run
// as a task with a progress bar (Score-CAM, RISE and the others make many model calls).
async function showGradcam() {
  const image = state.image;
  const method = state.method;
  const params = new URLSearchParams();
  if (method !== "gradcam") params.set("method", method);
  if (state.cls) params.set("class", state.cls);
  const query = params.size ? `?${params}` : "";
  const route = method === "gradcam" ? "gradcam" : "explain";
  const url = `/api/${route}/${image}.png${query}`;
  $("save").href = url;
  $("gradcam-error").hidden = true;
  const title = (model.methods.find((m) => m.name === method) || { title: method }).title;
  setStatus(`Explaining by ${title}…`);
  const asked = api(`/api/${route}/${image}.json${query}`);
  if (route === "explain") watchTask(`explain ${method} ${image}`, $("explain-progress"), asked);
  try {
    const record = await asked;
    const select = $("classes");
    select.replaceChildren();
    for (const entry of record.top) {
      const option = document.createElement("option");
      option.value = entry.name;
      option.textContent = `${entry.name} (${entry.score.toFixed(3)})`;
      option.selected = entry.name === record.name;
      select.append(option);
    }
    // as the commands name their files
    $("save").download = route === "gradcam" ? `gradcam_${safeName(record.name)}.png` : record.file;
    await loadPicture($("gradcam"), url);
    $("gradcam").dataset.method = method;
    const where = record.layer ? ` at ${record.layer}` : "";
    setStatus(`${title}${where}: ${record.name}`);
  } catch (failure) {
    setStatus("");
    $("gradcam-error").textContent = failure.message;
    $("gradcam-error").hidden = false;
  }
}

function renderMethods() {
  const select = $("method");
  select.replaceChildren();
  for (const entry of model.methods) {
    const option = document.createElement("option");
    option.value = entry.name;
    option.textContent = entry.title;
    option.selected = entry.name === state.method;
    select.append(option);
  }
}

// -- start -------------------------------------------------------------------------------------------------------

async function start() {
  readState();
  try {
    model = await api("/api/model");
  } catch (failure) {
    setStatus(`Error: ${failure.message}`);
    return;
  }
  $("model-name").textContent = `· ${model.model}`;
  $("model-info").textContent = `preprocessing ${model.preprocessing} · fit ${model.fit} · ${model.precision}`;
  renderLayers();
  renderMethods();
  $("tab-gradcam").hidden = !model.gradcam;
  if (!model.gradcam) state.view = "maps";
  await loadImages();
  if (state.image === null && images.length) state.image = images[0].id;
  if (!state.layer) state.layer = (model.layers.find((l) => l.maps) || {}).name || null;
  $("grid").addEventListener("click", (event) => {
    const filter = layout ? tileAt(event) : null;
    if (filter !== null) openCard(filter);
  });
  // the grid is resized by the window, and by the card opening beside it: the frame follows
  new ResizeObserver(() => {
    if (state.filter !== null && layout && !$("card").hidden) markTile(state.filter);
  }).observe($("grid"));
  $("card-close").addEventListener("click", () => {
    $("card").hidden = true;
    $("mark").hidden = true;
    state.filter = null;
    writeState();
  });
  for (const tab of document.querySelectorAll("button.tab")) {
    tab.addEventListener("click", () => {
      state.view = tab.dataset.view;
      show();
    });
  }
  $("class-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.cls = $("class-input").value.trim() || $("classes").value || null;
    $("class-input").value = "";
    show();
  });
  $("classes").addEventListener("change", () => {
    state.cls = $("classes").value;
    show();
  });
  $("method").addEventListener("change", () => {
    state.method = $("method").value;
    show();
  });
  $("upload").addEventListener("change", (event) => upload([...event.target.files]));
  document.addEventListener("dragover", (event) => {
    event.preventDefault();
    document.body.classList.add("dropping");
  });
  document.addEventListener("dragleave", () => document.body.classList.remove("dropping"));
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    document.body.classList.remove("dropping");
    upload([...event.dataTransfer.files]);
  });
  show();
}

start();
