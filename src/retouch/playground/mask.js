// Painting a mask over the first image. The canvas has the image's own pixel size; what
// is painted becomes transparent in the exported PNG (OpenAI's masks: transparent = edit
// here), everything else stays opaque.

export class MaskPainter {
  constructor({ stage, image, canvas, size, erase, clear, onChange }) {
    Object.assign(this, { stage, image, canvas, size, erase, onChange });
    this.context = canvas.getContext("2d");
    this.enabled = false;
    this.painted = false;
    this.loading = false;
    this.last = null;
    clear.addEventListener("click", () => this.clear());
    canvas.addEventListener("pointerdown", (event) => this.#down(event));
    canvas.addEventListener("pointermove", (event) => this.#move(event));
    for (const name of ["pointerup", "pointercancel"]) canvas.addEventListener(name, () => this.#up());
  }

  /** Show ``src`` (the first image) with an empty mask; resolves once its size is known. */
  show(src) {
    this.loading = true;
    return new Promise((resolve, reject) => {
      this.image.onload = () => {
        this.loading = false;
        this.canvas.width = this.image.naturalWidth;
        this.canvas.height = this.image.naturalHeight;
        const ratio = this.image.naturalWidth / this.image.naturalHeight;
        this.stage.style.aspectRatio = String(ratio);
        this.stage.style.width = `min(100%, 28rem, ${(60 * ratio).toFixed(2)}vh)`; // tall images fit the screen
        this.clear({ quiet: true });
        resolve();
      };
      this.image.onerror = () => {
        this.loading = false;
        reject(new Error("the browser cannot load this image"));
      };
      this.image.src = src;
    });
  }

  hide() {
    this.loading = false;
    this.image.onload = this.image.onerror = null;
    this.image.removeAttribute("src");
    this.canvas.width = 0;
    this.canvas.height = 0;
    this.painted = false;
  }

  setEnabled(enabled) {
    this.enabled = enabled;
    this.stage.classList.toggle("disabled", !enabled);
  }

  clear({ quiet = false } = {}) {
    this.context.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.painted = false;
    if (!quiet) this.onChange();
  }

  /** Whether any painted pixel is left (erasing can remove them all). */
  hasPaint() {
    if (!this.painted || !this.canvas.width) return false;
    const { data } = this.context.getImageData(0, 0, this.canvas.width, this.canvas.height);
    for (let i = 3; i < data.length; i += 4) if (data[i]) return true;
    return false;
  }

  /** The mask as a PNG the size of the first image: opaque, transparent where painted. */
  toBlob() {
    const out = document.createElement("canvas");
    out.width = this.canvas.width;
    out.height = this.canvas.height;
    const context = out.getContext("2d");
    context.fillStyle = "#000";
    context.fillRect(0, 0, out.width, out.height);
    context.globalCompositeOperation = "destination-out";
    context.drawImage(this.canvas, 0, 0);
    return new Promise((resolve) => out.toBlob(resolve, "image/png"));
  }

  #point(event) {
    const box = this.canvas.getBoundingClientRect();
    const scale = this.canvas.width / box.width;
    return { x: (event.clientX - box.left) * scale, y: (event.clientY - box.top) * scale, scale };
  }

  #down(event) {
    if (!this.enabled || !this.canvas.width || event.button > 0) return;
    event.preventDefault();
    this.canvas.setPointerCapture(event.pointerId);
    this.last = this.#point(event);
    this.#stroke(this.last, this.last);
  }

  #move(event) {
    if (!this.last) return;
    const point = this.#point(event);
    this.#stroke(this.last, point);
    this.last = point;
  }

  #up() {
    if (!this.last) return;
    this.last = null;
    this.onChange(); // once a stroke ends: the mask to send changed
  }

  #stroke(from, to) {
    const context = this.context;
    context.globalCompositeOperation = this.erase.checked ? "destination-out" : "source-over";
    context.strokeStyle = "#ff2d6f";
    context.lineCap = "round";
    context.lineJoin = "round";
    context.lineWidth = Number(this.size.value) * to.scale; // the slider is in screen pixels
    context.beginPath();
    context.moveTo(from.x, from.y);
    context.lineTo(to.x + 0.01, to.y);
    context.stroke();
    if (!this.erase.checked) this.painted = true;
  }
}
