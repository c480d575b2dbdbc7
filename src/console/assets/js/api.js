// Every read and change goes through the admin REST API with the signed-in token, so what
// the console may see and do is exactly what the API allows that token.

const TOKEN_KEY = "tollgate.console.token";

export class ApiError extends Error {
  constructor(status, code, message, param) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
  }
}

let unauthorized = () => {};

/** Called with the API's error when a token is refused (expired, bad signature, ...). */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value.trim());
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** The token's claims, for display only: the gateway verifies them on every call. */
export function claims() {
  const parts = (token() || "").split(".");
  if (parts.length !== 3) return null;
  try {
    const json = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
    return JSON.parse(json);
  } catch {
    return null;
  }
}

/** `?a=1&b=2` from an object, leaving out empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") search.set(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

async function call(path, { method = "GET", body, params } = {}) {
  const headers = { Authorization: `Bearer ${token() || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/admin/v1${path}${query(params)}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
  });
  if (!response.ok) {
    const payload = await response.json().catch(() => null);
    const error = payload && payload.error ? payload.error : {};
    const failure = new ApiError(
      response.status,
      error.code || "",
      error.message || `the gateway answered ${response.status}`,
      error.param || null,
    );
    if (response.status === 401) unauthorized(failure);
    throw failure;
  }
  return response;
}

export async function api(path, options) {
  const response = await call(path, options);
  return response.json();
}

/** Downloads the API's CSV of a report or listing as a file. */
export async function downloadCsv(path, params, filename) {
  const response = await call(path, { params: { ...params, format: "csv" } });
  saveFile(filename, await response.text(), "text/csv");
}

export function saveFile(filename, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
