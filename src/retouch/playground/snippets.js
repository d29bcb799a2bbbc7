// "Copy as code": the request the form makes, as curl, as Python with the official
// `openai` client and as JavaScript with the `openai` npm client. Each saves the results
// to result.png (result-2.png, …) in the working directory.

import { DELIVERY, resultName, scalarFields } from "./request.js";

const KEY_NOTE = "export RETOUCH_API_KEY=<your key>  (any value when the server has no keys)";
const literal = (value) => (typeof value === "number" ? String(value) : JSON.stringify(value));

function shellQuote(text) {
  const value = String(text);
  return /^[\w.\/:=@%+,-]+$/.test(value) ? value : `'${value.replaceAll("'", "'\\''")}'`;
}

// curl -F reads ; and , in a file name as options unless the name is in double quotes.
function curlFile(name) {
  return /[;,"\\]/.test(name) ? `"${name.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"` : name;
}

export function curlSnippet(request, base) {
  const lines = [`curl -sS ${base}/v1/images/${request.endpoint}`, '-H "Authorization: Bearer $RETOUCH_API_KEY"'];
  const fields = scalarFields(request);
  if (request.endpoint === "generations") {
    lines.push('-H "Content-Type: application/json"', `-d ${shellQuote(JSON.stringify(Object.fromEntries(fields)))}`);
  } else {
    for (const [name, value] of fields) {
      // --form-string: a prompt starting with @ or < is text, not a file to read.
      lines.push(name === "prompt" ? `--form-string ${shellQuote(`${name}=${value}`)}` : `-F ${shellQuote(`${name}=${value}`)}`);
    }
    for (const file of request.files) lines.push(`-F ${shellQuote(`image[]=@${curlFile(file.name)}`)}`);
    if (request.mask) lines.push(`-F ${shellQuote(`mask=@${request.mask.name}`)}`);
    for (const url of request.urls) lines.push(`--form-string ${shellQuote(`image_urls[]=${url}`)}`);
  }
  lines.push(`| jq -r '.data[0].${DELIVERY}' | base64 --decode > ${resultName(request.outputFormat, 0)}`);
  return `# ${KEY_NOTE}\n${lines.join(" \\\n  ")}\n`;
}

export function pythonSnippet(request, base) {
  const args = [];
  const fields = Object.fromEntries(scalarFields(request));
  if (fields.model) args.push(`model=${literal(fields.model)}`);
  if (request.endpoint === "edits") {
    args.push(`image=[${request.files.map((f) => `open(${literal(f.name)}, "rb")`).join(", ")}]`);
    if (request.mask) args.push(`mask=open(${literal(request.mask.name)}, "rb")`);
  }
  for (const name of ["prompt", "n", "size", "output_format", "response_format"]) {
    if (name in fields) args.push(`${name}=${literal(fields[name])}`);
  }
  if (request.urls.length) args.push(`extra_body={"image_urls": [${request.urls.map(literal).join(", ")}]}`);
  const call = request.endpoint === "edits" ? "edit" : "generate";
  const ext = resultName(request.outputFormat, 0).split(".").pop();
  return `# pip install openai
# ${KEY_NOTE}
import base64
import os

from openai import OpenAI

client = OpenAI(base_url=${literal(`${base}/v1`)}, api_key=os.environ["RETOUCH_API_KEY"])
result = client.images.${call}(
${args.map((arg) => `    ${arg},`).join("\n")}
)
for index, image in enumerate(result.data):
    name = "result.${ext}" if index == 0 else f"result-{index + 1}.${ext}"
    with open(name, "wb") as out:
        out.write(base64.b64decode(image.${DELIVERY}))
    print("saved", name)
`;
}

function jsFile(part) {
  return `await toFile(fs.createReadStream(${literal(part.name)}), ${literal(part.name)}, { type: ${literal(part.type || "image/png")} })`;
}

export function javascriptSnippet(request, base) {
  const props = [];
  const fields = Object.fromEntries(scalarFields(request));
  if (fields.model) props.push(`model: ${literal(fields.model)}`);
  if (request.endpoint === "edits") {
    props.push(`image: [\n${request.files.map((f) => `    ${jsFile(f)},`).join("\n")}\n  ]`);
    if (request.mask) props.push(`mask: ${jsFile(request.mask)}`);
  }
  for (const name of ["prompt", "n", "size", "output_format", "response_format"]) {
    if (name in fields) props.push(`${name}: ${literal(fields[name])}`);
  }
  if (request.urls.length) props.push(`// retouch's own field, sent as image_urls[]\n  image_urls: [${request.urls.map(literal).join(", ")}]`);
  const call = request.endpoint === "edits" ? "edit" : "generate";
  const ext = resultName(request.outputFormat, 0).split(".").pop();
  const imports = request.endpoint === "edits" ? 'import OpenAI, { toFile } from "openai";' : 'import OpenAI from "openai";';
  return `// npm install openai   ·   save as edit.mjs, run: node edit.mjs
// ${KEY_NOTE}
import fs from "node:fs";
${imports}

const client = new OpenAI({ baseURL: ${literal(`${base}/v1`)}, apiKey: process.env.RETOUCH_API_KEY });
const result = await client.images.${call}({
${props.map((prop) => `  ${prop},`).join("\n")}
});
result.data.forEach((image, index) => {
  const name = index === 0 ? "result.${ext}" : \`result-\${index + 1}.${ext}\`;
  fs.writeFileSync(name, Buffer.from(image.${DELIVERY}, "base64"));
  console.log("saved", name);
});
`;
}

export const SNIPPETS = { curl: curlSnippet, python: pythonSnippet, javascript: javascriptSnippet };
