// The models directory: every model of GET /v1/models as a card, with what it can do,
// what it costs, and how to make it available when it is not.

import { ApiError, bindKeyField, formatPrice, listModels } from "./api.js";

const $ = (id) => document.getElementById(id);
let models = [];

function element(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function facts(model) {
  const caps = model.capabilities;
  const yes = (flag) => (flag ? "yes" : "no");
  const inputs = caps.min_input_images === caps.max_input_images
    ? String(caps.max_input_images) : `${caps.min_input_images}–${caps.max_input_images}`;
  return [
    ["Provider", model.provider.split("+").join(", ")],
    ["Price per image", formatPrice(model.price_per_image)],
    ["Input images", caps.supports_edits ? inputs : "none (generation only)"],
    ["Mask", yes(caps.supports_mask)],
    ["Edits", yes(caps.supports_edits)],
    ["Generation", yes(caps.supports_generation)],
    ["Images per request", `up to ${caps.max_n}`],
    ["Formats", caps.output_formats.join(", ")],
    ["Deterministic", yes(caps.deterministic)],
    ["Licence", model.license || "—"],
  ];
}

function card(model) {
  const badge = element("span", {
    className: `badge ${model.available ? "ok" : "off"}`, textContent: model.available ? "available" : "unavailable",
  });
  const children = [
    element("h2", {}, [element("code", { textContent: model.id }), " ", badge]),
    element("p", { className: "aliases" }, model.aliases.length
      ? ["Aliases: ", ...model.aliases.flatMap((alias, i) => [i ? ", " : "", element("code", { textContent: alias })])]
      : ["No aliases"]),
  ];
  if (model.description) children.push(element("p", { className: "about", textContent: model.description }));
  if (!model.available) {
    children.push(element("p", { className: "unavailable" }, [
      element("strong", { textContent: "Why: " }), model.unavailable_reason || "not given", element("br"),
      element("strong", { textContent: "Fix: " }), model.fix || "not given",
    ]));
  }
  children.push(element("dl", {}, facts(model).flatMap(([term, value]) => [
    element("dt", { textContent: term }), element("dd", { textContent: value }),
  ])));
  if (model.available) {
    children.push(element("a", { href: `/?model=${encodeURIComponent(model.id)}`, textContent: `Try ${model.id} in the playground` }));
  }
  return element("li", { className: "card", id: `model-${model.id.replace(/[^\w-]/g, "-")}` }, children);
}

function render() {
  const words = $("filter").value.trim().toLowerCase();
  const onlyAvailable = $("only-available").checked;
  const shown = models.filter((model) => (!onlyAvailable || model.available)
    && (!words || [model.id, model.provider, model.description, ...model.aliases].join(" ").toLowerCase().includes(words)));
  $("models").replaceChildren(...shown.map(card));
  const available = models.filter((model) => model.available).length;
  const filtered = shown.length === models.length ? "" : ` Showing ${shown.length}.`;
  $("summary").textContent = `${models.length} models, ${available} available.${filtered}`;
}

async function load(key) {
  try {
    models = await listModels(key);
    $("error").hidden = true;
  } catch (error) {
    models = [];
    $("error").textContent = `Could not list the models. ${error instanceof ApiError ? error.describe() : error.message}`;
    $("error").hidden = false;
  }
  render();
}

bindKeyField($("api-key"), load);
$("filter").addEventListener("input", render);
$("only-available").addEventListener("change", render);
load($("api-key").value.trim());
