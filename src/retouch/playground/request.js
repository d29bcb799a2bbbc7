// One description of the request the form makes. The page sends it and the
// "Copy as code" snippets print it, so what is copied is what was sent.

/**
 * @typedef {{name: string, blob: Blob, type: string}} FilePart
 * @typedef {{endpoint: "edits"|"generations", model: string, prompt: string, n: number,
 *   size: string, outputFormat: string, files: FilePart[], mask: FilePart|null,
 *   urls: string[]}} ImageRequest
 */

export const DELIVERY = "b64_json"; // results arrive inline: nothing to fetch afterwards

/** The request for these form values; ``size`` is left out when "auto" or empty. */
export function describeRequest({ model, prompt, n, size, outputFormat, inputs, mask }) {
  const files = inputs.filter((i) => i.kind === "file").map((i) => ({ name: i.name, blob: i.file, type: i.type }));
  const urls = inputs.filter((i) => i.kind === "url").map((i) => i.url);
  const wantedSize = size.trim().toLowerCase() === "auto" ? "" : size.trim();
  return {
    endpoint: inputs.length ? "edits" : "generations",
    model, prompt, n, size: wantedSize, outputFormat, files, urls,
    mask: inputs.length && mask ? { name: "mask.png", blob: mask, type: "image/png" } : null,
  };
}

/** The scalar fields in wire order, leaving out what the user did not set. */
export function scalarFields(request) {
  const fields = [];
  if (request.model) fields.push(["model", request.model]);
  fields.push(["prompt", request.prompt], ["n", request.n]);
  if (request.size) fields.push(["size", request.size]);
  fields.push(["output_format", request.outputFormat], ["response_format", DELIVERY]);
  return fields;
}

/** fetch() options for the request: multipart for edits, JSON for generations. */
export function requestBody(request) {
  if (request.endpoint === "generations") {
    return { body: JSON.stringify(Object.fromEntries(scalarFields(request))), headers: { "Content-Type": "application/json" } };
  }
  const form = new FormData();
  for (const [name, value] of scalarFields(request)) form.append(name, String(value));
  for (const file of request.files) form.append("image[]", file.blob, file.name);
  if (request.mask) form.append("mask", request.mask.blob, request.mask.name);
  for (const url of request.urls) form.append("image_urls[]", url);
  return { body: form, headers: {} };
}

export function resultName(outputFormat, index) {
  const ext = outputFormat === "jpeg" ? "jpg" : outputFormat;
  return index === 0 ? `result.${ext}` : `result-${index + 1}.${ext}`;
}
