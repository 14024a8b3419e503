// The dashboard's pages: the instance list (#/) and one instance (#/instances/<id>).

import { ApiError, getInstance, listInstances, sendAction } from "./api.js";
import { buildTimeline, formatDuration, parseTime, renderTimeline } from "./timeline.js";

const REFRESH_MS = 2000;
const STATUSES = ["Pending", "Running", "Suspended", "Completed", "Failed", "Terminated", "ContinuedAsNew", "Canceled"];
const RUNNING = new Set(["Pending", "Running", "Suspended", "ContinuedAsNew"]);
// With a name filter the list reads further pages (the API cannot filter by name) up to this many.
const MAX_PAGES_PER_VIEW = 20;

// -- small DOM helpers -------------------------------------------------------------------------

function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (value === true) element.setAttribute(key, "");
    else element.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

const pad = (n, width = 2) => String(n).padStart(width, "0");

function localTime(ms, withMillis = false) {
  if (!Number.isFinite(ms)) return "";
  const d = new Date(ms);
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return `${date} ${time}${withMillis ? `.${pad(d.getMilliseconds(), 3)}` : ""}`;
}

function timeCell(text, withMillis = false) {
  const ms = parseTime(text);
  return h("time", { datetime: text, title: text }, localTime(ms, withMillis));
}

function statusBadge(status) {
  return h("span", { class: `status status-${status}` }, status);
}

function shortJson(value, limit = 80) {
  if (value === null || value === undefined) return "";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}

/** A JSON value, pretty; a string holding JSON (as SDK clients often send input) shown decoded too. */
function jsonBlock(value) {
  if (value === undefined || value === null) return h("pre", { class: "json empty" }, "null");
  if (typeof value === "string") {
    try {
      const inner = JSON.parse(value);
      if (inner !== null && typeof inner === "object") {
        return h(
          "div",
          {},
          h("pre", { class: "json" }, JSON.stringify(inner, null, 2)),
          h("p", { class: "note" }, "A JSON string, shown decoded."),
        );
      }
    } catch {
      // Not JSON: show the string as it is.
    }
  }
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

const instanceHref = (instanceId, parent) =>
  `#/instances/${encodeURIComponent(instanceId)}${parent ? `?parent=${encodeURIComponent(parent)}` : ""}`;

function errorText(error) {
  return error instanceof ApiError ? error.message : `Request failed: ${error.message || error}`;
}

// -- routing and refresh ---------------------------------------------------------------------

let current = null;
let refreshing = false;

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split("?");
  return { path, params: new URLSearchParams(query) };
}

function route() {
  const { path, params } = parseHash();
  const view = document.getElementById("view");
  if (current && current.dispose) current.dispose();
  const match = path.match(/^\/instances\/(.+)$/);
  current = match ? new InstanceView(decodeURIComponent(match[1]), params) : new ListView(params);
  view.replaceChildren(current.element);
  current.refresh();
}

async function tick() {
  if (refreshing || !current || document.hidden || !current.autoRefresh()) return;
  refreshing = true;
  try {
    await current.refresh();
  } finally {
    refreshing = false;
  }
}

// -- the instance list -------------------------------------------------------------------------

class ListView {
  constructor(params) {
    this.filters = {
      statuses: (params.get("status") || "").split(",").filter((s) => STATUSES.includes(s)),
      name: params.get("name") || "",
      from: params.get("from") || "",
      to: params.get("to") || "",
      prefix: params.get("prefix") || "",
      top: Number(params.get("top")) || 50,
    };
    this.tokens = [null]; // the continuation token of each page seen, for going back
    this.page = 0;
    this.next = null;
    this.generation = 0; // answers to requests made before a filter change are dropped
    this.element = this.build();
  }

  build() {
    const f = this.filters;
    const onChange = () => this.filtersChanged();
    const statusBoxes = STATUSES.map((status) =>
      h(
        "label",
        { class: "check" },
        h("input", {
          type: "checkbox",
          name: "status",
          value: status,
          checked: f.statuses.includes(status),
          onchange: onChange,
        }),
        status,
      ),
    );
    const text = (name, label, value, extra = {}) =>
      h(
        "label",
        { class: "field" },
        h("span", {}, label),
        h("input", { name, value, oninput: () => this.debounce(), onchange: onChange, ...extra }),
      );
    this.form = h(
      "form",
      { class: "filters", id: "filters", onsubmit: (e) => e.preventDefault() },
      h("fieldset", { class: "statuses" }, h("legend", {}, "Runtime status"), statusBoxes),
      text("prefix", "Instance id prefix", f.prefix, { placeholder: "e.g. order-", spellcheck: "false" }),
      text("name", "Orchestrator name", f.name, { placeholder: "exact name", spellcheck: "false" }),
      text("from", "Created from", f.from, { type: "datetime-local", step: "1" }),
      text("to", "Created to", f.to, { type: "datetime-local", step: "1" }),
      h(
        "label",
        { class: "field" },
        h("span", {}, "Page size"),
        h(
          "select",
          { name: "top", onchange: onChange },
          [10, 25, 50, 100, 200].map((n) => h("option", { value: n, selected: n === f.top }, n)),
        ),
      ),
      h("button", { type: "button", class: "secondary", onclick: () => this.clearFilters() }, "Clear"),
    );
    this.auto = h("input", { type: "checkbox", id: "auto-refresh", checked: true });
    this.info = h("span", { id: "list-info", class: "muted" });
    this.prev = h("button", { type: "button", id: "page-prev", onclick: () => this.go(-1) }, "← Previous");
    this.nextButton = h("button", { type: "button", id: "page-next", onclick: () => this.go(1) }, "Next →");
    this.error = h("p", { class: "error", hidden: true });
    this.body = h("tbody", { id: "instances-body" });
    return h(
      "section",
      { class: "list" },
      h("h1", {}, "Instances"),
      this.form,
      h(
        "div",
        { class: "toolbar" },
        h("label", { class: "check" }, this.auto, `Refresh every ${REFRESH_MS / 1000} s`),
        this.info,
        h("span", { class: "spacer" }),
        this.prev,
        this.nextButton,
      ),
      this.error,
      h(
        "table",
        { class: "instances", id: "instances" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Instance id", "Orchestrator", "Status", "Created", "Last updated", "Custom status"].map((t) =>
              h("th", {}, t),
            ),
          ),
        ),
        this.body,
      ),
    );
  }

  autoRefresh() {
    return this.auto.checked;
  }

  debounce() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.filtersChanged(), 300);
  }

  clearFilters() {
    this.form.reset();
    for (const input of this.form.querySelectorAll("input")) {
      if (input.type === "checkbox") input.checked = false;
      else input.value = "";
    }
    this.filtersChanged();
  }

  readForm() {
    const data = new FormData(this.form);
    return {
      statuses: data.getAll("status").map(String),
      name: String(data.get("name") || "").trim(),
      from: String(data.get("from") || ""),
      to: String(data.get("to") || ""),
      prefix: String(data.get("prefix") || ""),
      top: Number(data.get("top")) || 50,
    };
  }

  filtersChanged() {
    clearTimeout(this.timer);
    this.filters = this.readForm();
    this.tokens = [null];
    this.page = 0;
    this.generation += 1;
    const f = this.filters;
    const query = new URLSearchParams();
    if (f.statuses.length) query.set("status", f.statuses.join(","));
    for (const key of ["name", "from", "to", "prefix"]) if (f[key]) query.set(key, f[key]);
    if (f.top !== 50) query.set("top", String(f.top));
    // replaceState: filters belong in the address, but are not worth a history entry each.
    history.replaceState(null, "", `#/${query.toString() ? `?${query}` : ""}`);
    this.refresh();
  }

  go(delta) {
    if (delta > 0 && this.next) {
      this.tokens[this.page + 1] = this.next;
      this.page += 1;
    } else if (delta < 0 && this.page > 0) {
      this.page -= 1;
    } else {
      return;
    }
    this.generation += 1;
    this.refresh();
  }

  apiFilters() {
    const f = this.filters;
    // datetime-local values are local times; the API wants instants.
    const instant = (value) => (value ? new Date(value).toISOString() : "");
    return {
      statuses: f.statuses,
      createdFrom: instant(f.from),
      createdTo: instant(f.to),
      prefix: f.prefix,
      top: f.top,
    };
  }

  async load() {
    const filters = this.apiFilters();
    let token = this.tokens[this.page];
    const matched = [];
    // A page may come back short (even empty) while more remain; with a name filter, read on.
    for (let reads = 0; reads < MAX_PAGES_PER_VIEW; reads += 1) {
      const { instances, next } = await listInstances(filters, token);
      matched.push(...instances.filter((i) => !this.filters.name || i.name === this.filters.name));
      token = next;
      if (!token || matched.length >= filters.top || !this.filters.name) break;
    }
    return { instances: matched, next: token };
  }

  async refresh() {
    const generation = this.generation;
    try {
      const { instances, next } = await this.load();
      if (generation !== this.generation) return;
      this.next = next;
      this.render(instances);
      this.error.hidden = true;
    } catch (error) {
      if (generation !== this.generation) return;
      this.error.textContent = errorText(error);
      this.error.hidden = false;
    }
  }

  render(instances) {
    instances.sort(
      (a, b) => parseTime(b.createdTime) - parseTime(a.createdTime) || a.instanceId.localeCompare(b.instanceId),
    );
    const rows = instances.map((i) =>
      h(
        "tr",
        { "data-instance-id": i.instanceId, "data-status": i.runtimeStatus },
        h("td", { class: "id" }, h("a", { href: instanceHref(i.instanceId) }, i.instanceId)),
        h("td", {}, i.name),
        h("td", {}, statusBadge(i.runtimeStatus)),
        h("td", {}, timeCell(i.createdTime)),
        h("td", {}, timeCell(i.lastUpdatedTime)),
        h("td", { class: "custom", title: shortJson(i.customStatus, 2000) }, shortJson(i.customStatus)),
      ),
    );
    if (!rows.length) {
      rows.push(h("tr", { class: "none" }, h("td", { colspan: 6 }, "No instances match.")));
    }
    this.body.replaceChildren(...rows);
    this.prev.disabled = this.page === 0;
    this.nextButton.disabled = !this.next;
    this.info.textContent = `Page ${this.page + 1} · ${instances.length} instance${
      instances.length === 1 ? "" : "s"
    } · updated ${localTime(Date.now())}`;
  }
}

// -- parent and sub-orchestration links ----------------------------------------------------------
//
// The status API hides them once they are settled, as the real host does: a completed
// sub-orchestration folds into SubOrchestrationInstanceCompleted without the child's id, and the
// child's ExecutionStarted comes without ParentInstance. Ids still in the history (children that
// are running) are exact; the rest are matched by orchestrator name and time through the list API.

const FOLDED_CHILD = new Set(["SubOrchestrationInstanceCompleted", "SubOrchestrationInstanceFailed"]);
const SECOND = 1000;
// Each refresh parses new event objects: remember matches by what identifies the event.
const eventKey = (e) => `${e.EventType}|${e.FunctionName}|${e.ScheduledTime}|${e.Timestamp}`;

async function listAll(filters, maxPages = 5) {
  const all = [];
  let token = null;
  for (let i = 0; i < maxPages; i += 1) {
    const { instances, next } = await listInstances({ top: 200, ...filters }, token);
    all.push(...instances);
    if (!next) break;
    token = next;
  }
  return all;
}

/** When the instance's execution ended (ms), from its status history; NaN while it runs. */
function executionEnd(status) {
  const last = (status?.historyEvents || []).find((e) => e.EventType === "ExecutionCompleted");
  return last ? parseTime(last.Timestamp) : NaN;
}

/**
 * Children of finished sub-orchestration calls: same orchestrator name, created while the call
 * ran. When several instances qualify (parents running the same child at once), the one whose
 * execution ended when the parent's completion event says wins: the child stamps both alike.
 */
async function matchChildren(status, events) {
  const folded = events.filter((e) => FOLDED_CHILD.has(e.EventType));
  if (!folded.length) return new Map();
  const starts = folded.map((e) => parseTime(e.ScheduledTime));
  const ends = folded.map((e) => parseTime(e.Timestamp));
  const instances = await listAll({
    createdFrom: new Date(Math.min(...starts) - SECOND).toISOString(),
    createdTo: new Date(Math.max(...ends) + SECOND).toISOString(),
  });
  const endings = new Map();
  const endOf = async (instanceId) => {
    if (!endings.has(instanceId)) endings.set(instanceId, executionEnd(await getInstance(instanceId)));
    return endings.get(instanceId);
  };
  const taken = new Set();
  const byEvent = new Map();
  for (const event of folded) {
    const scheduled = parseTime(event.ScheduledTime);
    const completed = parseTime(event.Timestamp);
    // createdTime and lastUpdatedTime have whole seconds: allow for the truncation.
    let candidates = instances.filter(
      (i) =>
        i.instanceId !== status.instanceId &&
        !taken.has(i.instanceId) &&
        !RUNNING.has(i.runtimeStatus) &&
        i.name === event.FunctionName &&
        parseTime(i.createdTime) >= scheduled - SECOND &&
        parseTime(i.createdTime) <= completed &&
        parseTime(i.lastUpdatedTime) <= completed + SECOND,
    );
    if (candidates.length > 1) {
      const exact = [];
      for (const candidate of candidates) {
        if ((await endOf(candidate.instanceId)) === completed) exact.push(candidate);
      }
      if (exact.length) candidates = exact;
    }
    if (candidates.length === 1) taken.add(candidates[0].instanceId);
    byEvent.set(eventKey(event), { name: event.FunctionName, ids: candidates.map((i) => i.instanceId) });
  }
  return byEvent;
}

/** The instance that started this one, searched among the latest instances created before it. */
async function findParent(status) {
  const created = parseTime(status.createdTime);
  const ended = executionEnd(status);
  const candidates = (await listAll({ createdTo: new Date(created + SECOND).toISOString() }, 3))
    .filter((i) => i.instanceId !== status.instanceId)
    .sort((a, b) => parseTime(b.createdTime) - parseTime(a.createdTime))
    .slice(0, 30);
  for (const candidate of candidates) {
    const parent = await getInstance(candidate.instanceId);
    for (const event of parent?.historyEvents || []) {
      // A child that still runs is named in its parent's history.
      if (event.EventType === "SubOrchestrationInstanceCreated" && event.InstanceId === status.instanceId) {
        return { instanceId: candidate.instanceId, exact: true };
      }
      if (
        FOLDED_CHILD.has(event.EventType) &&
        event.FunctionName === status.name &&
        Math.abs(parseTime(event.ScheduledTime) - created) <= 2 * SECOND &&
        parseTime(event.Timestamp) === ended
      ) {
        return { instanceId: candidate.instanceId, exact: false };
      }
    }
  }
  return null;
}

// -- one instance ------------------------------------------------------------------------------

const ACTIONS = [
  { id: "raiseEvent", label: "Raise event", help: "Send an external event to a running instance." },
  { id: "terminate", label: "Terminate", help: "Stop the instance; it ends as Terminated." },
  { id: "suspend", label: "Suspend", help: "Pause the instance; events are kept until it resumes." },
  { id: "resume", label: "Resume", help: "Continue a suspended instance." },
  { id: "rewind", label: "Rewind", help: "Run a failed instance again from its failed steps." },
  { id: "restart", label: "Restart", help: "Start the orchestrator again with the same input." },
  { id: "purge", label: "Purge", help: "Delete the instance's state and history for good." },
];

class InstanceView {
  constructor(instanceId, params) {
    this.instanceId = instanceId;
    this.openedFrom = params.get("parent");
    this.parent = this.openedFrom ? { instanceId: this.openedFrom, exact: true, from: true } : undefined;
    this.childMatches = new Map();
    this.childKey = "";
    this.status = null;
    this.element = this.build();
    this.onResize = () => this.status && this.renderTimeline();
    window.addEventListener("resize", this.onResize);
  }

  dispose() {
    window.removeEventListener("resize", this.onResize);
  }

  autoRefresh() {
    return this.auto.checked;
  }

  build() {
    this.title = h("h1", { class: "instance-id" }, this.instanceId);
    this.summary = h("dl", { class: "summary", id: "summary" });
    this.auto = h("input", { type: "checkbox", id: "auto-refresh", checked: true });
    this.error = h("p", { class: "error", hidden: true });
    this.panels = {
      input: h("div", { id: "input" }),
      output: h("div", { id: "output" }),
      custom: h("div", { id: "custom-status" }),
    };
    this.relations = h("div", { id: "relations", class: "relations" });
    this.timeline = h("div", { id: "timeline", class: "timeline-box" });
    this.legend = h(
      "p",
      { class: "legend" },
      ["activity", "suborchestration", "timer", "failed", "open"].map((kind) =>
        h("span", { class: `key ${kind}` }, kind === "suborchestration" ? "sub-orchestration" : kind),
      ),
      h("span", { class: "key marker-key" }, "event / suspend / resume"),
    );
    this.historyBody = h("tbody", { id: "history-body" });
    return h(
      "section",
      { class: "instance" },
      h("p", { class: "crumbs" }, h("a", { href: "#/" }, "← Instances")),
      this.title,
      this.summary,
      h("div", { class: "toolbar" }, h("label", { class: "check" }, this.auto, `Refresh every ${REFRESH_MS / 1000} s`)),
      this.error,
      this.buildActions(),
      h(
        "div",
        { class: "panels" },
        h("section", {}, h("h2", {}, "Input"), this.panels.input),
        h("section", {}, h("h2", {}, "Output"), this.panels.output),
        h("section", {}, h("h2", {}, "Custom status"), this.panels.custom),
      ),
      h("section", {}, h("h2", {}, "Parent and sub-orchestrations"), this.relations),
      h("section", {}, h("h2", {}, "Timeline"), this.legend, this.timeline),
      h(
        "section",
        {},
        h("h2", {}, "History"),
        h(
          "table",
          { class: "history", id: "history" },
          h(
            "thead",
            {},
            h("tr", {}, ["#", "Time", "+", "Event", "Name", "Details"].map((t) => h("th", {}, t))),
          ),
          this.historyBody,
        ),
      ),
    );
  }

  // -- actions ---------------------------------------------------------------------------------

  buildActions() {
    this.actionForm = h("form", { class: "action-form", id: "action-form", hidden: true });
    this.actionResult = h("div", { id: "action-result", class: "action-result", hidden: true });
    const buttons = ACTIONS.map((action) =>
      h(
        "button",
        {
          type: "button",
          class: action.id === "purge" || action.id === "terminate" ? "danger" : "",
          "data-action": action.id,
          title: action.help,
          onclick: () => this.openAction(action),
        },
        action.label,
      ),
    );
    return h(
      "section",
      { class: "actions" },
      h("h2", {}, "Actions"),
      h("div", { class: "buttons" }, buttons),
      this.actionForm,
      this.actionResult,
    );
  }

  openAction(action) {
    const field = (label, input) => h("label", { class: "field" }, h("span", {}, label), input);
    const fields = [];
    if (action.id === "raiseEvent") {
      fields.push(field("Event name", h("input", { name: "eventName", required: true, spellcheck: "false" })));
      fields.push(
        field("Data (JSON)", h("textarea", { name: "data", rows: 3, spellcheck: "false", placeholder: "null" })),
      );
    } else if (["terminate", "suspend", "resume", "rewind"].includes(action.id)) {
      fields.push(field("Reason", h("input", { name: "reason", placeholder: "optional" })));
    } else if (action.id === "restart") {
      fields.push(
        h(
          "label",
          { class: "check" },
          h("input", { type: "checkbox", name: "newInstanceId", checked: true }),
          "with a new instance id",
        ),
      );
    }
    this.actionForm.replaceChildren(
      h("p", { class: "help" }, h("strong", {}, `${action.label}: `), action.help),
      ...fields,
      h(
        "div",
        { class: "form-buttons" },
        h(
          "button",
          { type: "submit", id: "action-send", class: action.id === "purge" || action.id === "terminate" ? "danger" : "primary" },
          action.id === "purge" ? "Purge for good" : `Send ${action.label.toLowerCase()}`,
        ),
        h("button", { type: "button", class: "secondary", onclick: () => (this.actionForm.hidden = true) }, "Cancel"),
      ),
    );
    this.actionForm.onsubmit = (e) => {
      e.preventDefault();
      this.send(action);
    };
    this.actionForm.dataset.action = action.id;
    this.actionForm.hidden = false;
    const first = this.actionForm.querySelector("input, textarea");
    if (first) first.focus();
  }

  async send(action) {
    const data = new FormData(this.actionForm);
    const options = {
      eventName: String(data.get("eventName") || ""),
      data: String(data.get("data") || "").trim(),
      reason: String(data.get("reason") || ""),
      newInstanceId: data.get("newInstanceId") !== null,
    };
    if (action.id === "raiseEvent" && options.data) {
      try {
        JSON.parse(options.data);
      } catch (error) {
        this.showResult({ ok: false, text: `The event data is not valid JSON: ${error.message}` });
        return;
      }
    }
    try {
      const result = await sendAction(action.id, this.instanceId, options);
      this.showResult(result);
      if (result.ok) this.actionForm.hidden = true;
    } catch (error) {
      this.showResult({ ok: false, text: errorText(error) });
    }
    await this.refresh();
  }

  showResult(result) {
    const children = [];
    if (result.text) {
      children.push(h("p", {}, result.text));
    } else {
      children.push(
        h(
          "p",
          {},
          h("code", {}, `${result.method} ${decodeURI(result.url)}`),
          " → ",
          h("strong", { class: "http-status" }, `${result.status} ${result.statusText}`),
        ),
      );
      if (result.response !== null && result.response !== undefined) children.push(jsonBlock(result.response));
      const newId = result.response && typeof result.response === "object" ? result.response.id : null;
      if (newId && newId !== this.instanceId) {
        children.push(h("p", {}, "New instance: ", h("a", { href: instanceHref(newId) }, newId)));
      }
    }
    this.actionResult.replaceChildren(...children);
    this.actionResult.className = `action-result ${result.ok ? "ok" : "failed"}`;
    this.actionResult.dataset.status = String(result.status ?? "");
    this.actionResult.hidden = false;
  }

  // -- refresh -------------------------------------------------------------------------------

  async refresh() {
    let status;
    try {
      status = await getInstance(this.instanceId);
      this.error.hidden = true;
    } catch (error) {
      this.error.textContent = errorText(error);
      this.error.hidden = false;
      return;
    }
    if (status === null) {
      this.status = null;
      this.summary.replaceChildren(h("p", { class: "muted", id: "not-found" }, "No such instance (never started, or purged)."));
      this.timeline.replaceChildren();
      this.historyBody.replaceChildren();
      return;
    }
    this.status = status;
    document.title = `${status.name} ${status.instanceId} · Durable Functions dashboard`;
    this.renderSummary();
    this.panels.input.replaceChildren(jsonBlock(status.input));
    this.panels.output.replaceChildren(jsonBlock(status.output));
    this.panels.custom.replaceChildren(jsonBlock(status.customStatus));
    this.renderTimeline();
    this.renderHistory();
    await this.updateRelations();
  }

  renderSummary() {
    const s = this.status;
    const item = (term, ...value) => [h("dt", {}, term), h("dd", {}, ...value)];
    // The history has the precise times; createdTime and lastUpdatedTime only whole seconds.
    const events = s.historyEvents || [];
    const first = events.find((e) => e.EventType === "ExecutionStarted");
    const created = parseTime(first ? first.Timestamp : s.createdTime);
    const finished = executionEnd(s);
    const ended = RUNNING.has(s.runtimeStatus)
      ? Date.now()
      : Number.isFinite(finished)
        ? finished
        : parseTime(s.lastUpdatedTime);
    this.summary.replaceChildren(
      ...item("Orchestrator", h("strong", {}, s.name)),
      ...item("Status", statusBadge(s.runtimeStatus)),
      ...item("Created", timeCell(s.createdTime)),
      ...item("Last updated", timeCell(s.lastUpdatedTime)),
      ...item(RUNNING.has(s.runtimeStatus) ? "Running for" : "Took", formatDuration(ended - created)),
    );
    this.summary.dataset.status = s.runtimeStatus;
  }

  renderTimeline() {
    const events = this.status.historyEvents || [];
    // Durable time may run ahead of the wall clock (tests skip timers): never end before the history.
    const latest = Math.max(...events.map((e) => parseTime(e.Timestamp)).filter(Number.isFinite), 0);
    this.model = buildTimeline(events, Math.max(Date.now(), latest));
    const style = getComputedStyle(this.timeline);
    const padding = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight) || 0;
    const width = this.timeline.clientWidth ? this.timeline.clientWidth - padding : 900;
    const chart = renderTimeline(this.model, {
      width,
      link: (bar) => {
        const child = bar.instanceId || this.uniqueChild(bar.event);
        return child ? instanceHref(child, this.instanceId) : null;
      },
    });
    this.timeline.replaceChildren(chart);
  }

  uniqueChild(event) {
    const match = this.childMatches.get(eventKey(event));
    return match && match.ids.length === 1 ? match.ids[0] : null;
  }

  renderHistory() {
    const events = this.status.historyEvents || [];
    const start = parseTime(events[0]?.Timestamp);
    const rows = events.map((event, i) => {
      const at = parseTime(event.Timestamp);
      const details = Object.entries(event).filter(
        ([key]) => !["EventType", "Timestamp", "FunctionName", "Name"].includes(key),
      );
      const summary = details
        .filter(([, value]) => value !== null && value !== undefined)
        .map(([key, value]) => `${key}: ${shortJson(value, 60)}`)
        .join(" · ");
      const full = JSON.stringify(Object.fromEntries(details), null, 2);
      return h(
        "tr",
        { class: `event ${event.EventType}`, "data-event-type": event.EventType },
        h("td", { class: "num" }, i + 1),
        h("td", {}, timeCell(event.Timestamp, true)),
        h("td", { class: "num" }, Number.isFinite(start) ? `+${formatDuration(at - start)}` : ""),
        h("td", {}, event.EventType),
        h("td", {}, event.FunctionName || event.Name || ""),
        h(
          "td",
          { class: "details" },
          summary.length > 90 || full.includes("\\n")
            ? h("details", {}, h("summary", {}, shortJson(summary, 90)), h("pre", { class: "json" }, full))
            : summary,
        ),
      );
    });
    this.historyBody.replaceChildren(...rows);
  }

  async updateRelations() {
    const s = this.status;
    const events = s.historyEvents || [];
    const exact = events
      .filter((e) => e.EventType === "SubOrchestrationInstanceCreated" && e.InstanceId)
      .map((e) => ({ instanceId: e.InstanceId, name: e.Name, exact: true }));
    // Match finished children once per change of the history, not on every refresh.
    const folded = events.filter((e) => FOLDED_CHILD.has(e.EventType));
    const key = folded.map((e) => e.Timestamp).join("|");
    if (key !== this.childKey) {
      this.childKey = key;
      try {
        this.childMatches = await matchChildren(s, events);
      } catch {
        this.childMatches = new Map();
      }
      // Redraw the latest status: a refresh may have drawn it while the matching ran.
      if (this.status) this.renderTimeline();
    }
    const matched = [];
    for (const { name, ids } of this.childMatches.values()) {
      for (const id of ids) matched.push({ instanceId: id, name, exact: false });
    }
    if (this.parent === undefined) {
      this.parent = null;
      this.relations.replaceChildren(h("p", { class: "muted" }, "Looking for the parent and sub-orchestrations…"));
      try {
        this.parent = await findParent(s);
      } catch {
        this.parent = null;
      }
    }
    this.renderRelations(exact, matched);
  }

  renderRelations(exact, matched) {
    const parent = this.parent
      ? [
          h("a", { href: instanceHref(this.parent.instanceId), id: "parent-link" }, this.parent.instanceId),
          this.parent.from ? " (opened from it)" : this.parent.exact ? "" : " (matched by name and time)",
        ]
      : [h("span", { class: "muted" }, "none found: a top-level instance")];
    const seen = new Set();
    const children = [...exact, ...matched].filter((c) => !seen.has(c.instanceId) && seen.add(c.instanceId));
    const list = children.length
      ? h(
          "ul",
          { id: "children" },
          children.map((c) =>
            h(
              "li",
              {},
              h("a", { href: instanceHref(c.instanceId, this.instanceId) }, c.instanceId),
              ` ${c.name}`,
              c.exact ? "" : h("span", { class: "muted" }, " (matched by name and time)"),
            ),
          ),
        )
      : h("span", { class: "muted" }, "none");
    this.relations.replaceChildren(
      h("dl", { class: "summary" }, h("dt", {}, "Parent"), h("dd", {}, ...parent), h("dt", {}, "Sub-orchestrations"), h("dd", {}, list)),
    );
  }
}

window.addEventListener("hashchange", route);
setInterval(tick, REFRESH_MS);
document.getElementById("hub").textContent = location.host;
route();
