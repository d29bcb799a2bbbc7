// Drives a running retouch server with the official `openai` npm client.
// Usage: node compat.mjs <base_url> <api_key> <png_path>; prints one JSON report.
import fs from "node:fs";
import OpenAI, { toFile } from "openai";

const [baseURL, apiKey, pngPath] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey, maxRetries: 0 });
const bytes = fs.readFileSync(pngPath);
const report = {};

async function upload(name) {
  return toFile(bytes, name, { type: "image/png" });
}

async function caught(call) {
  try {
    await call();
    return { ok: true };
  } catch (error) {
    return { name: error.constructor.name, status: error.status, param: error.param ?? error.error?.param };
  }
}

const single = await client.images.edit({
  model: "retouch/basic", image: await upload("a.png"), prompt: "flip horizontally",
  response_format: "b64_json",
});
report.single = { b64: single.data[0].b64_json, revised: single.data[0].revised_prompt };

const several = await client.images.edit({
  model: "retouch/basic", image: [await upload("a.png"), await upload("b.png")],
  prompt: "grayscale", n: 2,
});
report.several = { urls: several.data.map((d) => d.url) };

const generated = await client.images.generate({
  model: "retouch/basic", prompt: "a 16x16 solid blue image", response_format: "b64_json",
});
report.generated = { b64: generated.data[0].b64_json };

report.models = (await client.models.list()).data.map((m) => m.id);
report.notFound = await caught(async () => client.images.edit({
  model: "missing/model", image: await upload("a.png"), prompt: "grayscale",
}));
report.badRequest = await caught(async () => client.images.edit({
  model: "retouch/basic", image: await upload("a.png"), prompt: "grayscale", n: 11,
}));
const badKey = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: "sk-wrong", maxRetries: 0 });
report.badKey = await caught(async () => badKey.images.edit({
  model: "retouch/basic", image: await upload("a.png"), prompt: "grayscale",
}));
console.log(JSON.stringify(report));
