// The playground: wires the inputs, the mask, the model picker, the request and the
// results together. Every call goes to this server's own /v1 API.

import { ApiError, bindKeyField, callApi, formatPrice, listModels, recall, remember } from "./api.js";
import { Gallery } from "./gallery.js";
import { ImageInputs } from "./inputs.js";
import { MaskPainter } from "./mask.js";
import { describeRequest, requestBody } from "./request.js";
import { SNIPPETS } from "./snippets.js";

const $ = (id) => document.getElementById(id);
const MODEL_STORAGE = "retouch.model";
const state = { models: [], busy: null, firstId: null, language: "curl", maskUrl: null, codeRun: 0 };

const announce = (text) => { $("status").textContent = text; };
const describe = (error) => (error instanceof ApiError ? error.describe() : error.message);

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

const inputs = new ImageInputs($("thumbs"), { onChange: inputsChanged, announce });
const mask = new MaskPainter({
  stage: $("mask-stage"), image: $("mask-image"), canvas: $("mask-canvas"), size: $("brush-size"),
  erase: $("mask-erase"), clear: $("mask-clear"), onChange: formChanged,
});
const gallery = new Gallery($("gallery"), {
  viewer: $("viewer"), empty: $("gallery-empty"), announce,
  onUseAsInput: (file) => {
    inputs.addFiles([file], { atStart: true });
    announce(`${file.name} is now the image to edit.`);
  },
});

function chosenModel() {
  return state.models.find((model) => model.id === $("model").value) || null;
}

// ---- models ---------------------------------------------------------------------------

async function loadModels(key) {
  const select = $("model");
  const wanted = new URLSearchParams(location.search).get("model") || select.value || recall(MODEL_STORAGE);
  try {
    state.models = await listModels(key);
  } catch (error) {
    state.models = [];
    select.replaceChildren(new Option("server default (the model list did not load)", ""));
    showError(`Could not list the models. ${describe(error)}`);
    formChanged();
    return;
  }
  showError("");
  select.replaceChildren(...state.models.map((model) => {
    const option = new Option(model.available ? model.id : `${model.id} (unavailable)`, model.id);
    option.disabled = !model.available;
    return option;
  }));
  const pick = state.models.find((m) => m.available && (m.id === wanted || m.aliases.includes(wanted)))
    || state.models.find((m) => m.available);
  if (pick) select.value = pick.id;
  formChanged();
}

function showModelInfo(model) {
  const info = $("model-info");
  info.replaceChildren();
  if (!model) return;
  const caps = model.capabilities;
  const range = caps.min_input_images === caps.max_input_images
    ? `${caps.max_input_images} image${caps.max_input_images === 1 ? "" : "s"}`
    : `${caps.min_input_images}–${caps.max_input_images} images`;
  const facts = [
    caps.supports_edits ? range : "no input images",
    caps.supports_mask ? "mask ✓" : "no mask",
    caps.supports_generation ? "generates from text ✓" : "needs an image",
    `n ≤ ${caps.max_n}`, caps.output_formats.join("/"), `${formatPrice(model.price_per_image)} per image`,
  ];
  const list = document.createElement("ul");
  list.className = "chips";
  list.append(...facts.map((fact) => Object.assign(document.createElement("li"), { textContent: fact })));
  const about = Object.assign(document.createElement("p"), { textContent: model.description });
  info.append(list, about);
  if (!model.available) {
    info.append(Object.assign(document.createElement("p"), {
      className: "unavailable", textContent: `Unavailable: ${model.unavailable_reason}. Fix: ${model.fix}`,
    }));
  }
}

// ---- form state -----------------------------------------------------------------------

function blockers(model) {
  if (!model) return [];
  const caps = model.capabilities;
  const count = inputs.items.length;
  const found = [];
  if (!model.available) found.push(`${model.id} is unavailable: ${model.unavailable_reason}.`);
  if (!count && !caps.supports_generation) found.push(`${model.id} needs an input image: add one.`);
  if (count && !caps.supports_edits) found.push(`${model.id} only generates: remove the images.`);
  if (count > caps.max_input_images) {
    found.push(`${model.id} takes at most ${caps.max_input_images} image(s): remove ${count - caps.max_input_images}.`);
  }
  if (count && count < caps.min_input_images) found.push(`${model.id} needs at least ${caps.min_input_images} images.`);
  if (Number($("n").value) > caps.max_n) found.push(`${model.id} makes at most ${caps.max_n} images per request: lower n.`);
  return found;
}

function fitOptions(model) {
  const caps = model?.capabilities;
  $("n").max = String(caps ? caps.max_n : 10);
  const format = $("output-format");
  for (const option of format.options) option.disabled = Boolean(caps && !caps.output_formats.includes(option.value));
  if (format.selectedOptions[0]?.disabled) format.value = caps.output_formats[0];
  const full = Boolean(caps && inputs.items.length >= caps.max_input_images);
  $("pick-files").disabled = full;
  $("add-url").disabled = full;
}

function fitMask(model) {
  const first = inputs.first;
  const maskable = !model || model.capabilities.supports_mask;
  $("mask-stage").hidden = !first;
  mask.setEnabled(Boolean(first && maskable && mask.canvas.width));
  $("mask-tools").disabled = !mask.enabled;
  let note = "Paint over the area to change; the mask is sent only when something is painted.";
  if (!first) note = "Add an image to paint a mask on it.";
  else if (!maskable) {
    const takers = state.models.filter((m) => m.available && m.capabilities.supports_mask).map((m) => m.id);
    note = `${model.id} does not take a mask${takers.length ? `; these do: ${takers.join(", ")}` : ""}.`;
  } else if (mask.loading) note = "Loading the first image…";
  else if (!mask.canvas.width) note = "The first image cannot be shown here, so no mask can be painted on it.";
  if ($("mask-note").textContent !== note) $("mask-note").textContent = note;
}

function formChanged() {
  const model = chosenModel();
  showModelInfo(model);
  fitOptions(model);
  fitMask(model);
  const found = blockers(model);
  $("blockers").textContent = found.join(" ");
  $("submit").disabled = Boolean(state.busy) || found.length > 0;
  $("submit").textContent = inputs.items.length ? "Edit" : "Generate";
  if (!$("code-panel").hidden) renderCode();
}

function inputsChanged() {
  const first = inputs.first;
  if ((first?.id ?? null) === state.firstId) return formChanged();
  const hadMask = mask.painted;
  state.firstId = first?.id ?? null;
  if (!first) {
    mask.hide();
    return formChanged();
  }
  if (hadMask) announce("Mask cleared: the first image changed.");
  mask.show(first.src).catch(() => mask.hide()).finally(formChanged);
  formChanged();
}

async function currentRequest() {
  const model = chosenModel();
  const masked = mask.enabled && (!model || model.capabilities.supports_mask) && mask.hasPaint();
  return describeRequest({
    model: $("model").value, prompt: $("prompt").value, n: Number($("n").value) || 1,
    size: $("size").value, outputFormat: $("output-format").value, inputs: inputs.items,
    mask: masked ? await mask.toBlob() : null,
  });
}

// ---- submit ---------------------------------------------------------------------------

function setBusy(controller) {
  const hadFocus = document.activeElement;
  state.busy = controller;
  $("cancel").hidden = !controller;
  formChanged();
  if (controller && hadFocus === $("submit")) $("cancel").focus();
  if (!controller && hadFocus === $("cancel")) $("submit").focus();
}

async function submit(event) {
  event.preventDefault();
  if (state.busy || $("submit").disabled) return;
  showError("");
  const request = await currentRequest();
  const controller = new AbortController();
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  const tick = setInterval(() => { $("elapsed").textContent = `${seconds().toFixed(1)} s`; }, 100);
  setBusy(controller);
  announce(request.endpoint === "edits" ? `Editing with ${request.model || "the default model"}…` : "Generating…");
  try {
    const { data, headers } = await callApi(`/v1/images/${request.endpoint}`, {
      key: $("api-key").value.trim(), method: "POST", signal: controller.signal, ...requestBody(request),
    });
    const count = gallery.addResponse(data, {
      model: headers.get("x-retouch-model") || request.model, cost: headers.get("x-retouch-cost-usd"),
      prompt: request.prompt, seconds: seconds(),
    });
    announce(`Done: ${count} image${count === 1 ? "" : "s"} in ${seconds().toFixed(1)} s.`);
  } catch (error) {
    if (error.name === "AbortError") {
      announce(`Cancelled after ${seconds().toFixed(1)} s.`);
    } else {
      announce("The request failed.");
      showError(describe(error));
    }
  } finally {
    clearInterval(tick);
    $("elapsed").textContent = "";
    setBusy(null);
  }
}

// ---- copy as code ---------------------------------------------------------------------

async function renderCode() {
  const run = ++state.codeRun;
  const request = await currentRequest();
  if (run !== state.codeRun) return; // a later change is being rendered
  $("code-text").textContent = SNIPPETS[state.language](request, location.origin);
  if (state.maskUrl) URL.revokeObjectURL(state.maskUrl);
  state.maskUrl = request.mask ? URL.createObjectURL(request.mask.blob) : null;
  $("mask-download").hidden = !state.maskUrl;
  if (state.maskUrl) $("mask-download").href = state.maskUrl;
}

function selectTab(tab) {
  for (const other of document.querySelectorAll("[role=tab]")) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
  }
  $("code-view").setAttribute("aria-labelledby", tab.id);
  state.language = tab.dataset.lang;
  renderCode();
}

function tabKeys(event) {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  const at = tabs.indexOf(event.target);
  const next = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 }[event.key];
  if (next === undefined) return;
  event.preventDefault();
  const tab = tabs[(next + tabs.length) % tabs.length];
  tab.focus();
  selectTab(tab);
}

async function copyCode() {
  const text = $("code-text").textContent;
  const label = document.querySelector("[role=tab][aria-selected=true]").textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard API (an insecure origin): copy the selected text the old way.
    getSelection().selectAllChildren($("code-text"));
    document.execCommand("copy");
  }
  announce(`Copied the ${label} code.`);
}

function toggleCode() {
  const panel = $("code-panel");
  panel.hidden = !panel.hidden;
  $("show-code").setAttribute("aria-expanded", String(!panel.hidden));
  if (!panel.hidden) renderCode();
}

// ---- adding images --------------------------------------------------------------------

function addUrl(text) {
  try {
    inputs.addUrl(text);
    $("url-input").value = "";
  } catch (error) {
    showError(error.message);
  }
}

function wire() {
  bindKeyField($("api-key"), loadModels);
  $("pick-files").addEventListener("click", () => $("file-input").click());
  $("file-input").addEventListener("change", (event) => {
    inputs.addFiles(event.target.files);
    event.target.value = ""; // the same file may be chosen again
  });
  $("add-url").addEventListener("click", () => addUrl($("url-input").value));
  $("url-input").addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault(); // Enter here adds the URL, it does not submit
    addUrl($("url-input").value);
  });
  document.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files || [])];
    const text = (event.clipboardData?.getData("text") || "").trim();
    const inField = event.target instanceof Element && event.target.closest("input, textarea");
    if (files.length) {
      event.preventDefault();
      inputs.addFiles(files);
    } else if (!inField && /^(https?:\/\/|data:image\/)/i.test(text)) {
      event.preventDefault();
      addUrl(text);
    }
  });
  document.addEventListener("dragover", (event) => {
    const types = event.dataTransfer.types;
    if (types.includes("Files") || types.includes("text/uri-list")) {
      event.preventDefault();
      $("drop-zone").classList.add("over");
    }
  });
  document.addEventListener("dragleave", (event) => {
    if (!event.relatedTarget) $("drop-zone").classList.remove("over");
  });
  document.addEventListener("drop", (event) => {
    $("drop-zone").classList.remove("over");
    const transfer = event.dataTransfer;
    if (transfer.files.length) {
      event.preventDefault();
      inputs.addFiles(transfer.files);
    } else if (transfer.types.includes("text/uri-list")) {
      event.preventDefault();
      addUrl(transfer.getData("text/uri-list").split(/\r?\n/).find((line) => line && !line.startsWith("#")) || "");
    }
  });
  $("model").addEventListener("change", () => {
    remember(MODEL_STORAGE, $("model").value);
    formChanged();
  });
  for (const id of ["prompt", "n", "size", "output-format"]) $(id).addEventListener("input", formChanged);
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("edit-form").requestSubmit();
  });
  $("edit-form").addEventListener("submit", submit);
  $("cancel").addEventListener("click", () => state.busy?.abort());
  $("show-code").addEventListener("click", toggleCode);
  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", tabKeys);
  }
  $("copy-code").addEventListener("click", copyCode);
}

wire();
formChanged();
loadModels($("api-key").value.trim());
