/**
 * Requests to mediaflow's /v1 API with the bearer token. The token is kept
 * in sessionStorage: this tab only, gone when it closes.
 */
const KEY = 'mediaflow.token';

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

/** The server refused the token (or there was none): the page asks for it. */
export class Unauthorized extends Error {}

/** Any other answer that is not a success, with the server's own code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const refused = new Set();
/** Calls `listener` whenever a request is answered 401; returns the unsubscribe. */
export function onUnauthorized(listener) {
  refused.add(listener);
  return () => refused.delete(listener);
}

export async function request(path, { method = 'GET', signal } = {}) {
  const headers = {};
  const t = token.get();
  if (t) headers.authorization = `Bearer ${t}`;
  const res = await fetch(path, { method, headers, signal, cache: 'no-store' });
  if (res.status === 401) {
    for (const listener of refused) listener();
    throw new Unauthorized('the token was refused');
  }
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    throw new ApiError(res.status, body.error ?? `HTTP ${res.status}`, body.message ?? res.statusText);
  }
  return res;
}

export const getJson = async (path, options) => (await request(path, options)).json();
export const post = (path) => getJson(path, { method: 'POST' });

/**
 * An output as a blob: URL. An <img src> cannot send the token, so the
 * bytes are fetched with it and shown from memory (the page's CSP allows
 * images from blob: for this).
 */
export async function blobUrl(path, signal) {
  const res = await request(path, { signal });
  return URL.createObjectURL(await res.blob());
}

/** A query string from the values that are set. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}
