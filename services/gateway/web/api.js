// The public API v1 as the page uses it: credentials kept for this browser tab (sessionStorage),
// an access token refreshed once on a 401, and errors carrying the problem+json `detail`.

const STORE = "finprint.credentials";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problemMessage(status, problem));
    this.status = status;
    this.problem = problem;
  }
}

function problemMessage(status, problem) {
  const detail = problem.detail || problem.title || `The server answered ${status}.`;
  const fields = (problem.errors || [])
    .map((e) => [e.field, e.message].filter(Boolean).join(": "))
    .filter(Boolean);
  return fields.length ? `${detail} (${fields.join("; ")})` : detail;
}

export function credentials() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE)) || null;
  } catch {
    return null;
  }
}

function keep(value) {
  if (value) sessionStorage.setItem(STORE, JSON.stringify(value));
  else sessionStorage.removeItem(STORE);
  document.dispatchEvent(new CustomEvent("finprint:credentials"));
}

const SIGNED_OUT_BECAUSE = "finprint.signed-out-because";

// ``reason`` is shown once on the sign-in form (e.g. a session that ended, a revoked key).
export function signOut(reason) {
  if (reason) sessionStorage.setItem(SIGNED_OUT_BECAUSE, reason);
  keep(null);
}

export function takeSignOutReason() {
  const reason = sessionStorage.getItem(SIGNED_OUT_BECAUSE);
  sessionStorage.removeItem(SIGNED_OUT_BECAUSE);
  return reason;
}

export function useApiKey(apiKey) {
  keep({ apiKey });
}

export async function signIn(email, password) {
  const form = new URLSearchParams({ username: email, password, grant_type: "password" });
  const tokens = await send("POST", "/v1/auth/token", { body: form, anonymous: true });
  keep({ email, accessToken: tokens.access_token, refreshToken: tokens.refresh_token });
}

let refreshing = null;

// Requests that fail together share one refresh.
function refreshOnce(current) {
  refreshing = refreshing || refreshTokens(current).finally(() => {
    refreshing = null;
  });
  return refreshing;
}

async function refreshTokens(current) {
  const tokens = await send("POST", "/v1/auth/refresh", {
    json: { refresh_token: current.refreshToken },
    anonymous: true,
  });
  keep({ ...current, accessToken: tokens.access_token, refreshToken: tokens.refresh_token });
}

function authHeaders() {
  const who = credentials();
  if (!who) return {};
  if (who.apiKey) return { "X-API-Key": who.apiKey };
  return { Authorization: `Bearer ${who.accessToken}` };
}

async function readProblem(response) {
  try {
    return await response.json();
  } catch {
    return { detail: `The server answered ${response.status} ${response.statusText}.` };
  }
}

async function send(method, path, { json, body, headers = {}, anonymous = false, raw = false } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  const attempt = () => {
    if (!anonymous) Object.assign(init.headers, authHeaders());
    return fetch(path, init);
  };
  let response;
  try {
    response = await attempt();
    const who = credentials();
    if (response.status === 401 && !anonymous && who) {
      if (!who.refreshToken) {
        const problem = await readProblem(response);
        signOut(problem.detail || "The API key was refused.");
        throw new ApiError(401, problem);
      }
      try {
        await refreshOnce(who);
      } catch {
        const reason = "Your session has ended; please sign in again.";
        signOut(reason);
        throw new ApiError(401, { detail: reason });
      }
      response = await attempt();
    }
  } catch (error) {
    if (error instanceof ApiError) throw error;
    throw new ApiError(0, { detail: "The server could not be reached; check your connection and try again." });
  }
  if (!response.ok) {
    const problem = await readProblem(response);
    const retry = response.headers.get("Retry-After");
    if (retry) problem.detail = `${problem.detail || "Busy."} Try again in ${retry} s.`;
    throw new ApiError(response.status, problem);
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

export const api = {
  get: (path, params) => send("GET", withQuery(path, params)),
  post: (path, json, headers) => send("POST", path, { json, headers }),
  patch: (path, json) => send("PATCH", path, { json }),
  put: (path, body, headers) => send("PUT", path, { body, headers }),
  upload: (path, formData, headers) => send("POST", path, { body: formData, headers }),
  download: (path) => send("GET", path, { raw: true, headers: { Accept: "*/*" } }),
};

export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") query.set(key, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

// A fresh key per submission: a retried upload is stored once (works outside secure contexts too).
export function idempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Presigned image links expire; a tab reuses one for a few minutes.
const mediaUrls = new Map();
const MEDIA_URL_REUSE_MS = 5 * 60 * 1000;

// The same photo asked for twice at once (a thumbnail and its link) shares one request.
export function mediaUrl(mediaId) {
  const cached = mediaUrls.get(mediaId);
  if (cached && cached.until > Date.now()) return cached.url;
  const url = api.get(`/v1/media/${encodeURIComponent(mediaId)}/url`).then((answer) => answer.url);
  mediaUrls.set(mediaId, { url, until: Date.now() + MEDIA_URL_REUSE_MS });
  url.catch(() => mediaUrls.delete(mediaId));
  return url;
}

const individuals = new Map();

// Individuals by catalogue code, remembered for the page's life (codes are stable names).
export async function individual(code) {
  if (!individuals.has(code)) {
    individuals.set(code, api.get(`/v1/individuals/${encodeURIComponent(code)}`).catch((error) => {
      individuals.delete(code);
      throw error;
    }));
  }
  return individuals.get(code);
}

export function forgetIndividual(code) {
  individuals.delete(code);
}
