// The timeline of one instance from its status history (showHistory=true): one bar per activity,
// sub-orchestration and timer, from when it was scheduled to when it completed.

const SVG = "http://www.w3.org/2000/svg";

/** Milliseconds since the epoch of a history timestamp (.NET writes seven fractional digits). */
export function parseTime(text) {
  if (!text) return NaN;
  const trimmed = String(text).replace(/(\.\d{3})\d+/, "$1");
  return Date.parse(/[zZ]|[+-]\d\d:\d\d$/.test(trimmed) ? trimmed : `${trimmed}Z`);
}

const FINISHING = new Set(["ExecutionCompleted", "ExecutionTerminated"]);
const MARKERS = {
  EventRaised: "event",
  ExecutionSuspended: "suspended",
  ExecutionResumed: "resumed",
  ExecutionTerminated: "terminated",
  ContinueAsNew: "continued",
  GenericEvent: "rewound",
};

/**
 * Bars, markers and the execution's span. `now` (ms) ends what is still open: an activity,
 * sub-orchestration or timer without its completion runs to now, or to the end of the execution
 * when that has finished (e.g. a timer that lost a race and was never fired).
 */
export function buildTimeline(events, now) {
  const started = events.find((e) => e.EventType === "ExecutionStarted");
  const finished = events.find((e) => FINISHING.has(e.EventType));
  const executionStart = started ? parseTime(started.Timestamp) : NaN;
  const executionEnd = finished ? parseTime(finished.Timestamp) : NaN;
  const openEnd = Number.isFinite(executionEnd) ? executionEnd : now;
  const bars = [];
  const markers = [];
  const timers = [];
  // TimerFired keeps FireAt but not TimerId: pair each with the first open timer for that moment.
  const firedAt = new Map();
  for (const event of events) {
    if (event.EventType !== "TimerFired") continue;
    const list = firedAt.get(event.FireAt) || [];
    list.push(event);
    firedAt.set(event.FireAt, list);
  }

  events.forEach((event, index) => {
    const at = parseTime(event.Timestamp);
    const bar = (fields) => bars.push({ index, event, ...fields });
    switch (event.EventType) {
      case "TaskScheduled":
        bar({ kind: "activity", name: event.Name, start: at, end: openEnd, state: "open" });
        break;
      case "TaskCompleted":
      case "TaskFailed":
        bar({
          kind: "activity",
          name: event.FunctionName,
          start: parseTime(event.ScheduledTime ?? event.Timestamp),
          end: at,
          state: event.EventType === "TaskFailed" ? "failed" : "completed",
        });
        break;
      case "SubOrchestrationInstanceCreated":
        bar({
          kind: "suborchestration",
          name: event.Name,
          start: at,
          end: openEnd,
          state: "open",
          instanceId: event.InstanceId,
        });
        break;
      case "SubOrchestrationInstanceCompleted":
      case "SubOrchestrationInstanceFailed":
        bar({
          kind: "suborchestration",
          name: event.FunctionName,
          start: parseTime(event.ScheduledTime ?? event.Timestamp),
          end: at,
          state: event.EventType === "SubOrchestrationInstanceFailed" ? "failed" : "completed",
        });
        break;
      case "TimerCreated": {
        const fired = (firedAt.get(event.FireAt) || []).shift();
        const timer = {
          kind: "timer",
          name: "timer",
          start: at,
          end: fired ? parseTime(fired.Timestamp) : openEnd,
          state: fired ? "completed" : "open",
          fireAt: parseTime(event.FireAt),
        };
        bar(timer);
        timers.push(timer);
        break;
      }
      default:
        if (MARKERS[event.EventType]) {
          markers.push({ index, event, at, kind: MARKERS[event.EventType], name: event.Name || "" });
        }
    }
  });

  bars.sort((a, b) => a.start - b.start || a.index - b.index);
  const moments = [executionStart, openEnd, ...bars.flatMap((b) => [b.start, b.end])].filter(Number.isFinite);
  return {
    bars,
    markers,
    execution: { start: executionStart, end: openEnd, finished: Number.isFinite(executionEnd) },
    from: moments.length ? Math.min(...moments) : now,
    to: moments.length ? Math.max(...moments) : now,
  };
}

export function formatDuration(ms) {
  if (!Number.isFinite(ms)) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(ms / 3_600_000)} h ${Math.round((ms % 3_600_000) / 60_000)} min`;
}

const STEPS = [
  10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000,
  900_000, 1_800_000, 3_600_000, 7_200_000, 21_600_000, 43_200_000, 86_400_000,
];

function tickStep(span, maxTicks) {
  return STEPS.find((step) => span / step <= maxTicks) || Math.ceil(span / maxTicks);
}

function tickLabel(ms, step) {
  if (step < 1000) return `+${(ms / 1000).toFixed(step < 100 ? 2 : 1)}s`;
  if (step < 60_000) return `+${Math.round(ms / 1000)}s`;
  if (step < 3_600_000) return `+${Math.round(ms / 60_000)}m`;
  return `+${Math.round(ms / 3_600_000)}h`;
}

function svg(tag, attributes = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) element.setAttribute(key, String(value));
  }
  if (text !== undefined) element.textContent = text;
  return element;
}

function describe(bar) {
  const what = { activity: "activity", suborchestration: "sub-orchestration", timer: "timer" }[bar.kind];
  const lines = [`${bar.name} (${what}, ${bar.state})`];
  lines.push(`scheduled ${new Date(bar.start).toISOString()}`);
  lines.push(bar.state === "open" ? "not completed yet" : `completed ${new Date(bar.end).toISOString()}`);
  lines.push(`duration ${formatDuration(bar.end - bar.start)}${bar.state === "open" ? " so far" : ""}`);
  if (bar.fireAt) lines.push(`fires at ${new Date(bar.fireAt).toISOString()}`);
  if (bar.instanceId) lines.push(`instance ${bar.instanceId}`);
  return lines.join("\n");
}

/**
 * The timeline as an SVG element. `options.width` is the drawing width in pixels;
 * `options.link(bar)` returns a URL for bars that lead somewhere (sub-orchestrations).
 */
export function renderTimeline(model, options = {}) {
  const width = Math.max(480, options.width || 900);
  const labelWidth = Math.min(220, Math.round(width * 0.24));
  const row = 22;
  const top = 34;
  const plotLeft = labelWidth + 8;
  const plotWidth = width - plotLeft - 12;
  const height = top + Math.max(1, model.bars.length) * row + 14;
  const span = Math.max(model.to - model.from, 1);
  const x = (ms) => plotLeft + ((ms - model.from) / span) * plotWidth;

  const root = svg("svg", {
    class: "timeline",
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `Timeline: ${model.bars.length} bars`,
    "data-bars": model.bars.length,
  });

  // Time axis with a grid line per tick.
  const step = tickStep(span, Math.max(2, Math.floor(plotWidth / 90)));
  const axis = svg("g", { class: "axis" });
  for (let t = 0; t <= span + 1; t += step) {
    const px = x(model.from + t);
    axis.append(svg("line", { x1: px, x2: px, y1: top - 6, y2: height - 8, class: "grid" }));
    axis.append(svg("text", { x: px, y: 12, class: "tick", "text-anchor": "middle" }, tickLabel(t, step)));
  }
  root.append(axis);

  // The execution itself: a thin band under the axis labels.
  if (Number.isFinite(model.execution.start)) {
    const band = svg("rect", {
      class: `execution${model.execution.finished ? "" : " open"}`,
      x: x(model.execution.start),
      y: 18,
      width: Math.max(2, x(model.execution.end) - x(model.execution.start)),
      height: 6,
      rx: 3,
    });
    band.append(svg("title", {}, `execution: ${formatDuration(model.execution.end - model.execution.start)}`));
    root.append(band);
  }

  model.bars.forEach((bar, i) => {
    const y = top + i * row;
    const group = svg("g", {
      class: `bar ${bar.kind} ${bar.state}`,
      "data-kind": bar.kind,
      "data-state": bar.state,
      "data-name": bar.name,
    });
    if (i % 2 === 0) {
      group.append(svg("rect", { class: "stripe", x: 0, y, width, height: row }));
    }
    group.append(svg("text", { class: "label", x: labelWidth, y: y + 15, "text-anchor": "end" }, bar.name));
    const left = x(bar.start);
    const barWidth = Math.max(3, x(bar.end) - left);
    group.append(svg("rect", { class: "fill", x: left, y: y + 4, width: barWidth, height: row - 8, rx: 3 }));
    if (bar.fireAt && bar.state === "open" && bar.fireAt <= model.to) {
      const fx = x(bar.fireAt);
      group.append(svg("line", { class: "fire-at", x1: fx, x2: fx, y1: y + 2, y2: y + row - 2 }));
    }
    const duration = formatDuration(bar.end - bar.start);
    const inside = barWidth > duration.length * 6.5 + 8;
    group.append(
      svg(
        "text",
        {
          class: inside ? "duration inside" : "duration",
          x: inside ? left + 5 : left + barWidth + 4,
          y: y + 15,
        },
        duration,
      ),
    );
    group.append(svg("title", {}, describe(bar)));
    const href = options.link ? options.link(bar) : null;
    if (href) {
      const anchor = svg("a", { href, class: "bar-link" });
      anchor.append(group);
      root.append(anchor);
    } else {
      root.append(group);
    }
  });

  for (const marker of model.markers) {
    const mx = x(marker.at);
    const group = svg("g", { class: `marker ${marker.kind}` });
    group.append(svg("line", { x1: mx, x2: mx, y1: top - 4, y2: height - 8 }));
    group.append(svg("path", { d: `M ${mx} ${top - 12} l 5 5 l -5 5 l -5 -5 z` }));
    const label = marker.kind === "event" ? `event ${marker.name}` : marker.kind;
    group.append(svg("title", {}, `${label} at ${new Date(marker.at).toISOString()}`));
    root.append(group);
  }

  if (!model.bars.length) {
    root.append(svg("text", { class: "empty", x: plotLeft, y: top + 15 }, "No activities, sub-orchestrations or timers yet."));
  }
  return root;
}
