// Results, newest first: each can be viewed full size, downloaded, or used as the input
// of the next edit. Caption: how the prompt was read, which model served it, the cost.

import { formatPrice } from "./api.js";

let counter = 0;

function blobFromBase64(b64, type) {
  const raw = atob(b64);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += 1) bytes[i] = raw.charCodeAt(i);
  return new Blob([bytes], { type });
}

export class Gallery {
  constructor(list, { viewer, empty, onUseAsInput, announce }) {
    Object.assign(this, { list, viewer, empty, onUseAsInput, announce });
    this.results = new Map();
    list.addEventListener("click", (event) => this.#clicked(event));
    viewer.querySelector("[data-act=close]").addEventListener("click", () => viewer.close());
    viewer.addEventListener("click", (event) => {
      if (event.target === viewer) viewer.close(); // a click on the backdrop
    });
  }

  /** Add the images of one answer; ``response`` is the API's JSON body. */
  addResponse(response, { model, cost, prompt, seconds }) {
    const format = response.output_format || "png";
    const type = `image/${format}`;
    const made = response.data.map((item) => {
      const blob = item.b64_json ? blobFromBase64(item.b64_json, type) : null;
      const src = blob ? URL.createObjectURL(blob) : item.url;
      return this.#add({ src, blob, format, revised: item.revised_prompt || "", model, cost, prompt, seconds });
    });
    this.empty.hidden = true;
    // On a phone the results are below the form: bring the new ones into view.
    made.at(-1)?.scrollIntoView({ block: "nearest" });
    return made.length;
  }

  #add(result) {
    counter += 1;
    result.id = counter;
    result.fileName = `retouch-${counter}.${result.format === "jpeg" ? "jpg" : result.format}`;
    const li = document.createElement("li");
    li.className = "result";
    li.dataset.id = String(counter);
    li.innerHTML = `<figure>
        <button type="button" class="view" data-act="view"><img alt=""></button>
        <figcaption><p class="revised"></p><p class="meta"></p></figcaption>
      </figure>
      <div class="result-actions">
        <a class="button" data-act="download">Download</a>
        <button type="button" data-act="use">Use as input</button>
      </div>`;
    const img = li.querySelector("img");
    img.src = result.src;
    img.alt = `Result ${counter}: ${result.prompt}`;
    li.querySelector(".view").setAttribute("aria-label", `View result ${counter} full size`);
    const download = li.querySelector("[data-act=download]");
    download.href = result.src;
    download.download = result.fileName;
    download.setAttribute("aria-label", `Download result ${counter}`);
    li.querySelector("[data-act=use]").setAttribute("aria-label", `Use result ${counter} as the image to edit`);
    li.querySelector(".revised").textContent = result.revised ? `Read as: ${result.revised}` : "";
    const meta = li.querySelector(".meta");
    const describe = (dims) => {
      meta.textContent = [result.model || "model not reported", `cost ${formatPrice(result.cost)}`,
        dims, result.format, `${result.seconds.toFixed(1)} s`].filter(Boolean).join(" · ");
    };
    describe("");
    img.addEventListener("load", () => describe(`${img.naturalWidth}×${img.naturalHeight}`));
    this.results.set(String(counter), result);
    this.list.prepend(li);
    return li;
  }

  async #clicked(event) {
    const control = event.target.closest("[data-act]");
    if (!control || control.dataset.act === "download") return; // the link downloads by itself
    const result = this.results.get(control.closest("li.result").dataset.id);
    if (control.dataset.act === "view") this.#view(result);
    if (control.dataset.act === "use") {
      // A URL answer is on this server: fetching it is allowed by the page's policy.
      const blob = result.blob || await (await fetch(result.src)).blob();
      this.onUseAsInput(new File([blob], result.fileName, { type: blob.type || `image/${result.format}` }));
    }
  }

  #view(result) {
    const img = this.viewer.querySelector("img");
    img.src = result.src;
    img.alt = `Result ${result.id} at full size: ${result.prompt}`;
    this.viewer.querySelector(".viewer-caption").textContent = result.revised || result.prompt;
    this.viewer.showModal();
  }
}
