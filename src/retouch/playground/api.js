// Talking to retouch from the browser: the key kept in localStorage, errors as the
// server words them ({"error": {message, type, param, code}}).

const KEY_STORAGE = "retouch.apiKey";

/** A value kept in this browser's localStorage ("" when storage is disabled). */
export function recall(name) {
  try {
    return localStorage.getItem(name) || "";
  } catch {
    return "";
  }
}

export function remember(name, value) {
  try {
    if (value) localStorage.setItem(name, value);
    else localStorage.removeItem(name);
  } catch {
    // storage disabled: the value lives in the page only
  }
}

export const storedKey = () => recall(KEY_STORAGE);

/** An answer that was not 2xx, carrying the server's own message. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = null, param = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.param = param;
  }

  describe() {
    const where = this.status ? `Error ${this.status}${this.code ? ` (${this.code})` : ""}: ` : "";
    return where + this.message;
  }
}

function authHeaders(key) {
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function errorFrom(response) {
  const text = await response.text();
  let envelope = null;
  try {
    envelope = JSON.parse(text).error;
  } catch {
    // not JSON: a proxy in front of retouch answered; show what it said
  }
  if (envelope && typeof envelope.message === "string") {
    return new ApiError(envelope.message, { status: response.status, code: envelope.code, param: envelope.param });
  }
  const said = text.trim().slice(0, 300) || response.statusText || "no message";
  return new ApiError(said, { status: response.status });
}

/** fetch() that turns failures into ApiError; resolves to {data, headers}. */
export async function callApi(path, { key = storedKey(), method = "GET", body, headers = {}, signal } = {}) {
  let response;
  try {
    response = await fetch(path, { method, body, signal, headers: { ...authHeaders(key), ...headers } });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(`Could not reach the server: ${error.message}`);
  }
  if (!response.ok) throw await errorFrom(response);
  return { data: await response.json(), headers: response.headers };
}

export async function listModels(key) {
  const { data } = await callApi("/v1/models", { key });
  return data.data;
}

/** "free", "$0.04" or "—" for a price in USD per image (null: unknown). */
export function formatPrice(usd) {
  if (usd === null || usd === undefined || usd === "" || Number.isNaN(Number(usd))) return "—";
  const value = Number(usd);
  if (value === 0) return "free";
  return `$${value.toFixed(6).replace(/0+$/, "").replace(/\.$/, "")}`;
}

/** Wire the API key field: fill it from storage, keep storage in step, tell listeners. */
export function bindKeyField(input, onChange) {
  input.value = storedKey();
  let last = input.value.trim();
  let timer = null;
  const notify = () => {
    clearTimeout(timer);
    const key = input.value.trim();
    if (key !== last) {
      last = key;
      onChange(key);
    }
  };
  input.addEventListener("input", () => {
    remember(KEY_STORAGE, input.value.trim());
    clearTimeout(timer);
    timer = setTimeout(notify, 350);
  });
  input.addEventListener("change", notify);
}
