// The Durable HTTP management API of the host serving this page (same origin), and nothing else.

export const API_BASE = "/runtime/webhooks/durabletask";
const CONTINUATION = "x-ms-continuation-token";

// The provider's token for "no more pages" is base64 of the JSON text null.
function isLastPage(token) {
  if (!token) return true;
  try {
    return atob(token).trim() === "null";
  } catch {
    return true;
  }
}

function instancePath(instanceId) {
  // encodeURIComponent also encodes "+", which the host would otherwise decode as a space.
  return `${API_BASE}/instances/${encodeURIComponent(instanceId)}`;
}

async function readBody(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export class ApiError extends Error {
  constructor(method, url, status, body) {
    super(`${method} ${url} answered ${status}${body ? `: ${JSON.stringify(body)}` : ""}`);
    this.status = status;
    this.body = body;
  }
}

/**
 * One page of instances. `filters`: statuses (array of names), createdFrom / createdTo (ISO
 * strings), prefix, top. The API filters by everything but the orchestrator name.
 */
export async function listInstances(filters, token) {
  const query = new URLSearchParams();
  for (const status of filters.statuses || []) query.append("runtimeStatus", status);
  if (filters.createdFrom) query.set("createdTimeFrom", filters.createdFrom);
  if (filters.createdTo) query.set("createdTimeTo", filters.createdTo);
  if (filters.prefix) query.set("instanceIdPrefix", filters.prefix);
  query.set("top", String(filters.top || 50));
  query.set("showInput", "false");
  const url = `${API_BASE}/instances?${query}`;
  const headers = token ? { [CONTINUATION]: token } : {};
  const response = await fetch(url, { headers, cache: "no-store" });
  const body = await readBody(response);
  if (!response.ok) throw new ApiError("GET", url, response.status, body);
  const next = response.headers.get(CONTINUATION);
  return { instances: Array.isArray(body) ? body : [], next: isLastPage(next) ? null : next };
}

/** The status with history and outputs, or null when the instance does not exist (404). */
export async function getInstance(instanceId) {
  const url = `${instancePath(instanceId)}?showHistory=true&showHistoryOutput=true&showInput=true`;
  const response = await fetch(url, { cache: "no-store" });
  if (response.status === 404) return null;
  const body = await readBody(response);
  // 202 while running, 200 when finished; both carry the status object.
  if (response.status !== 200 && response.status !== 202) {
    throw new ApiError("GET", url, response.status, body);
  }
  return body;
}

function withReason(url, reason) {
  return reason ? `${url}?reason=${encodeURIComponent(reason)}` : url;
}

/** The request an action sends: method, URL and, for raise event, a JSON body. */
export function actionRequest(action, instanceId, options = {}) {
  const base = instancePath(instanceId);
  switch (action) {
    case "raiseEvent":
      return {
        method: "POST",
        url: `${base}/raiseEvent/${encodeURIComponent(options.eventName || "")}`,
        body: options.data === undefined || options.data === "" ? "null" : options.data,
      };
    case "terminate":
    case "suspend":
    case "resume":
    case "rewind":
      return { method: "POST", url: withReason(`${base}/${action}`, options.reason) };
    case "restart":
      return {
        method: "POST",
        url: `${base}/restart?restartWithNewInstanceId=${options.newInstanceId ? "true" : "false"}`,
      };
    case "purge":
      return { method: "DELETE", url: base };
    default:
      throw new Error(`unknown action ${action}`);
  }
}

/** Send an action; the answer is reported whatever its status, as the user asked for it. */
export async function sendAction(action, instanceId, options = {}) {
  const request = actionRequest(action, instanceId, options);
  const init = { method: request.method, cache: "no-store" };
  if (request.body !== undefined) {
    init.body = request.body;
    init.headers = { "Content-Type": "application/json" };
  }
  const response = await fetch(request.url, init);
  return {
    ...request,
    status: response.status,
    statusText: response.statusText,
    ok: response.ok,
    response: await readBody(response),
  };
}
