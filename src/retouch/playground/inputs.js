// The input images, in the order the server reads them: uploaded files first, then URLs
// (retouch fetches those itself). The first image is the one edited.

const INTERNAL_DRAG = "application/x-retouch-input";
let nextId = 1;

export class ImageInputs {
  constructor(list, { onChange, announce }) {
    this.list = list;
    this.items = [];
    this.onChange = onChange;
    this.announce = announce;
    list.addEventListener("click", (event) => this.#clicked(event));
    list.addEventListener("dragstart", (event) => this.#dragStarted(event));
    list.addEventListener("dragover", (event) => {
      if (event.dataTransfer.types.includes(INTERNAL_DRAG)) event.preventDefault();
    });
    list.addEventListener("drop", (event) => this.#dropped(event));
  }

  get first() {
    return this.items[0] || null;
  }

  /** Add image files (picked, dropped, pasted, or a result); returns how many were added. */
  addFiles(files, { atStart = false } = {}) {
    const all = [...files];
    const images = all.filter((file) => file.type.startsWith("image/"));
    if (images.length < all.length) this.announce(`Skipped ${all.length - images.length} file(s) that are not images.`);
    const made = images.map((file) => ({
      id: nextId++, kind: "file", file, type: file.type,
      name: this.#uniqueName(file.name || "image.png"), src: URL.createObjectURL(file),
    }));
    const at = atStart ? 0 : this.#firstUrlIndex();
    this.items.splice(at, 0, ...made);
    if (made.length) this.#changed(`Added ${made.map((i) => i.name).join(", ")}.`);
    return made.length;
  }

  /** Add an http(s) or data:image URL; throws with a message when it is neither. */
  addUrl(text) {
    const url = text.trim();
    if (!/^(https?:\/\/\S+|data:image\/[\w.+-]+(;[^,]*)?,\S+)$/i.test(url)) {
      throw new Error("Enter an http:// or https:// address of an image (or a data:image/… URL).");
    }
    const name = url.startsWith("data:") ? "data: URL" : url;
    this.items.push({ id: nextId++, kind: "url", url, name, src: url });
    this.#changed(`Added the URL ${name.length > 60 ? `${name.slice(0, 57)}…` : name}.`);
  }

  move(index, delta) {
    const target = index + delta;
    if (!this.#canSwap(index, target)) return false;
    const [item] = this.items.splice(index, 1);
    this.items.splice(target, 0, item);
    this.#changed(`${item.name} is now image ${target + 1} of ${this.items.length}.`);
    return true;
  }

  remove(index) {
    const [item] = this.items.splice(index, 1);
    if (item.kind === "file") URL.revokeObjectURL(item.src);
    this.#changed(`Removed ${item.name}.`);
  }

  render() {
    this.list.replaceChildren(...this.items.map((item) => item.element || this.#build(item)));
    this.items.forEach((item, index) => {
      const el = item.element;
      el.querySelector(".order").textContent = String(index + 1);
      el.querySelector(".role").textContent = index === 0 ? "edited" : "reference";
      el.querySelector("[data-act=up]").disabled = !this.#canSwap(index, index - 1);
      el.querySelector("[data-act=down]").disabled = !this.#canSwap(index, index + 1);
    });
  }

  #changed(message) {
    this.render();
    this.announce(message);
    this.onChange();
  }

  #build(item) {
    const li = document.createElement("li");
    li.className = "thumb";
    li.draggable = true;
    li.dataset.id = String(item.id);
    const figure = document.createElement("figure");
    const img = document.createElement("img");
    img.alt = item.name;
    img.src = item.src;
    img.decoding = "async";
    const caption = document.createElement("figcaption");
    caption.innerHTML = '<span class="order"></span> <span class="name"></span> <span class="dims"></span> <span class="role"></span>';
    caption.querySelector(".name").textContent = item.name;
    caption.querySelector(".name").title = item.name;
    img.addEventListener("load", () => {
      caption.querySelector(".dims").textContent = `${img.naturalWidth}×${img.naturalHeight}`;
    });
    img.addEventListener("error", () => {
      caption.querySelector(".dims").textContent = item.kind === "url" ? "fetched by the server" : "unreadable";
      img.classList.add("broken");
    });
    figure.append(img, caption);
    const actions = document.createElement("div");
    actions.className = "thumb-actions";
    for (const [act, symbol, verb] of [["up", "←", "Move earlier"], ["down", "→", "Move later"], ["remove", "✕", "Remove"]]) {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.act = act;
      button.textContent = symbol;
      button.title = verb;
      button.setAttribute("aria-label", `${verb}: ${item.name}`);
      actions.append(button);
    }
    li.append(figure, actions);
    item.element = li;
    return li;
  }

  #clicked(event) {
    const button = event.target.closest("button[data-act]");
    if (!button) return;
    const index = this.#indexOf(button);
    const act = button.dataset.act;
    if (act === "remove") {
      const neighbour = this.items[index + 1] || this.items[index - 1];
      this.remove(index);
      (neighbour ? neighbour.element.querySelector("[data-act=remove]") : this.list).focus?.();
      return;
    }
    const item = this.items[index];
    if (this.move(index, act === "up" ? -1 : 1)) {
      const same = item.element.querySelector(`[data-act=${act}]`);
      (same.disabled ? item.element.querySelector(`[data-act=${act === "up" ? "down" : "up"}]`) : same).focus();
    }
  }

  #dragStarted(event) {
    const li = event.target.closest("li.thumb");
    if (!li) return;
    event.dataTransfer.setData(INTERNAL_DRAG, li.dataset.id);
    event.dataTransfer.effectAllowed = "move";
  }

  #dropped(event) {
    const id = event.dataTransfer.getData(INTERNAL_DRAG);
    const target = event.target.closest("li.thumb");
    if (!id || !target) return;
    event.preventDefault();
    event.stopPropagation();
    let from = this.items.findIndex((item) => String(item.id) === id);
    const to = this.#indexOf(target);
    const step = Math.sign(to - from);
    while (from !== to && this.#canSwap(from, from + step)) {
      const [item] = this.items.splice(from, 1);
      this.items.splice(from + step, 0, item);
      from += step;
    }
    this.#changed(`${this.items[from].name} is now image ${from + 1} of ${this.items.length}.`);
  }

  #indexOf(node) {
    const id = node.closest("li.thumb").dataset.id;
    return this.items.findIndex((item) => String(item.id) === id);
  }

  // Uploads always precede URLs on the wire, so the list never shows otherwise.
  #canSwap(index, target) {
    const a = this.items[index];
    const b = this.items[target];
    return Boolean(a && b && a.kind === b.kind);
  }

  #firstUrlIndex() {
    const found = this.items.findIndex((item) => item.kind === "url");
    return found === -1 ? this.items.length : found;
  }

  #uniqueName(name) {
    const taken = new Set(this.items.map((item) => item.name));
    if (!taken.has(name)) return name;
    const dot = name.lastIndexOf(".");
    const [stem, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ""];
    let count = 2;
    while (taken.has(`${stem}-${count}${ext}`)) count += 1;
    return `${stem}-${count}${ext}`;
  }
}
