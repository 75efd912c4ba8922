// Eventline's operator console: polls the admin endpoints once a second and redraws.
// Every value reaches the page through textContent, never as HTML.
"use strict";

const POLL_MS = 1000;
const HISTORY = 300; // samples kept for the charts: five minutes at one a second

const state = {
  key: sessionStorage.getItem("eventline-admin-key") || "",
  committed: new Map(), // partition -> {offset, batches, at, rate, batchRate}
  rebuilds: new Map(), // projection -> {done, at, rate}
  rateHistory: [],
  lagHistory: [],
};

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function badge(text, kind) {
  return el("span", text, `badge ${kind}`);
}

function seconds(value) {
  if (value === null || value === undefined) return "—";
  if (value < 60) return `${value.toFixed(1)} s`;
  if (value < 3600) return `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`;
  return `${(value / 3600).toFixed(1)} h`;
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.key}`, ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let detail = "";
    try { detail = (await response.json()).detail || ""; } catch (_) { /* not JSON */ }
    const error = new Error(`${response.status} ${detail}`.trim());
    error.status = response.status;
    throw error;
  }
  return response.json();
}

function replaceRows(tableId, rows) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren(...rows);
}

function health(view) {
  if (view.state === "halted") return ["halted", "bad"];
  if (view.stalled) return ["stalled", "bad"];
  if (view.lag === 0) return ["caught up", "ok"];
  if (view.lag === null) return ["lag unknown", "warn"];
  return ["catching up", "warn"];
}

function rebuildCell(view, now) {
  const rebuild = view.rebuild;
  if (!rebuild) return el("td", "—", "muted");
  if (rebuild.state !== "replaying" || rebuild.total === undefined) return el("td", rebuild.state);
  const before = state.rebuilds.get(view.name);
  let rate = before ? before.rate : null;
  if (before && now > before.at) rate = (rebuild.done - before.done) / ((now - before.at) / 1000);
  state.rebuilds.set(view.name, { done: rebuild.done, at: now, rate });
  const percent = rebuild.total ? Math.min(100, (100 * rebuild.done) / rebuild.total) : 100;
  let text = `replaying ${percent.toFixed(0)}%`;
  if (rate && rate > 0) text += `, ${Math.round(rate).toLocaleString()} events/s, ETA ${seconds((rebuild.total - rebuild.done) / rate)}`;
  return el("td", text);
}

function lagCell(view) {
  // The total, then each lagging partition (e3: events[3]), a stalled one marked with "!".
  const cell = el("td", view.lag === null ? "?" : view.lag.toLocaleString());
  const lagging = view.partitions.filter((p) => p.lag);
  if (lagging.length) {
    const parts = lagging.map((p) => `${p.topic[0]}${p.partition}:${p.lag}${p.stalled ? "!" : ""}`);
    cell.append(" ", el("span", parts.join(" "), "muted"));
  }
  return cell;
}

function drawProjections(views, now) {
  let totalLag = 0;
  const rows = views.map((view) => {
    const [label, kind] = health(view);
    totalLag += view.lag || 0;
    const row = el("tr");
    row.dataset.projection = view.name;
    row.dataset.health = label.replace(" ", "-");
    const stateCell = el("td");
    stateCell.append(badge(label, kind));
    if (view.halted_reason) stateCell.append(" ", el("span", view.halted_reason, "muted"));
    row.append(
      el("td", view.name),
      stateCell,
      lagCell(view),
      el("td", view.lag ? seconds(view.checkpoint_age_s) : "—"),
      el("td", view.failures),
      rebuildCell(view, now),
    );
    return row;
  });
  replaceRows("projections", rows);
  return totalLag;
}

async function retry(failureId, button) {
  button.disabled = true;
  const outcome = document.getElementById("retry-outcome");
  try {
    const answer = await api(`/projections/failures/${failureId}/retry`, { method: "POST" });
    outcome.textContent = `failure ${failureId}: ${answer.outcome}`;
  } catch (error) {
    outcome.textContent = `failure ${failureId}: ${error.message}`;
    button.disabled = false;
  }
}

function drawFailures(failures) {
  const rows = failures.map((failure) => {
    const row = el("tr");
    row.dataset.failure = failure.failure_id;
    const button = el("button", "Retry");
    button.type = "button";
    button.addEventListener("click", () => retry(failure.failure_id, button));
    const action = el("td");
    action.append(button);
    row.append(
      el("td", failure.failure_id),
      el("td", failure.projection),
      el("td", `${failure.event_type || "?"} ${failure.event_id || ""}`),
      el("td", `${failure.topic}[${failure.partition}]@${failure.offset}`),
      el("td", failure.error, "wrap"),
      action,
    );
    return row;
  });
  replaceRows("failures", rows.length ? rows : [emptyRow(6, "no open failures")]);
}

function emptyRow(span, text) {
  const cell = el("td", text, "muted");
  cell.colSpan = span;
  const row = el("tr");
  row.append(cell);
  return row;
}

function drawProcessors(view, now) {
  document.getElementById("group").textContent =
    `group ${view.group_state}; members: ${view.members.length ? view.members.join(", ") : "none"}`;
  let total = 0;
  const rows = view.partitions.map((p) => {
    const before = state.committed.get(p.partition);
    const offset = p.committed === null ? 0 : p.committed;
    const batches = p.batches === null ? 0 : p.batches;
    let rate = before ? before.rate : 0;
    let batchRate = before ? before.batchRate : 0;
    if (before && now > before.at) {
      const seconds = (now - before.at) / 1000;
      rate = Math.max(0, (offset - before.offset) / seconds);
      // A new owner counts its batches from zero: no rate across the change.
      batchRate = batches >= before.batches ? (batches - before.batches) / seconds : 0;
    }
    state.committed.set(p.partition, { offset, batches, at: now, rate, batchRate });
    total += rate;
    const row = el("tr");
    row.dataset.partition = p.partition;
    row.append(
      el("td", p.partition),
      el("td", p.owner || "unowned", p.owner ? "" : "muted"),
      el("td", p.lag === null ? "?" : p.lag),
      el("td", rate.toFixed(1)),
      el("td", batchRate.toFixed(1)),
      el("td", seconds(p.last_commit_age_s)),
    );
    return row;
  });
  replaceRows("processors", rows);
  return total;
}

function drawPending(messages) {
  const rows = messages.map((message) => {
    const row = el("tr", undefined, message.over_alert ? "alert" : "");
    row.dataset.message = message.message_id;
    row.append(
      el("td", message.message_id),
      el("td", message.sender),
      el("td", message.price),
      el("td", seconds(message.waiting_s)),
    );
    return row;
  });
  replaceRows("pending", rows.length ? rows : [emptyRow(4, "none")]);
}

function drawChart(id, values) {
  const svg = document.getElementById(id);
  const width = 300, height = 80, top = Math.max(1, ...values);
  const points = values.map((value, i) => {
    const x = values.length < 2 ? width : (i * width) / (HISTORY - 1) + (width * (HISTORY - values.length)) / (HISTORY - 1);
    return `${x.toFixed(1)},${(height - 4 - ((height - 12) * value) / top).toFixed(1)}`;
  });
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points.join(" "));
  const label = document.createElementNS("http://www.w3.org/2000/svg", "text");
  label.setAttribute("x", "4");
  label.setAttribute("y", "10");
  label.textContent = `max ${Math.round(top).toLocaleString()}, now ${Math.round(values.at(-1) || 0).toLocaleString()}`;
  svg.replaceChildren(line, label);
}

function remember(history, value) {
  history.push(value);
  if (history.length > HISTORY) history.shift();
}

let inFlight = false;

async function refresh() {
  if (inFlight) return; // a slow answer must not pile requests up behind it
  inFlight = true;
  try {
    await poll();
  } finally {
    inFlight = false;
  }
}

async function poll() {
  const status = document.getElementById("status");
  if (!state.key) {
    status.textContent = "type an admin key";
    return;
  }
  try {
    const [projections, failures, processors, pending] = await Promise.all([
      api("/projections"),
      api("/projections/failures"),
      api("/processors"),
      api("/saga/pending"),
    ]);
    const now = Date.now();
    const lag = drawProjections(projections, now);
    drawFailures(failures);
    const rate = drawProcessors(processors, now);
    drawPending(pending);
    remember(state.rateHistory, rate);
    remember(state.lagHistory, lag);
    drawChart("chart-rate", state.rateHistory);
    drawChart("chart-lag", state.lagHistory);
    status.textContent = `updated ${new Date(now).toLocaleTimeString()}`;
    status.className = "muted";
    document.body.dataset.updated = String(now);
  } catch (error) {
    status.textContent = error.status === 401 || error.status === 403 ? "the key was refused" : `error: ${error.message}`;
    status.className = "badge bad";
  }
}

async function showTimeline(messageId) {
  const status = document.getElementById("timeline-status");
  try {
    const timeline = await api(`/messages/${encodeURIComponent(messageId)}/timeline`);
    const rows = timeline.steps.map((step) => {
      const row = el("tr");
      row.dataset.step = step.step.replace(" ", "-");
      row.append(
        el("td", step.step),
        el("td", new Date(step.at).toLocaleTimeString(undefined, { fractionalSecondDigits: 3 })),
        el("td", step.waited_ms === null ? "—" : `${step.waited_ms.toFixed(1)} ms`),
        el("td", step.service),
        el("td", step.id, "muted"),
        el("td", step.caused_by || "—", "muted"),
      );
      return row;
    });
    replaceRows("timeline", rows);
    status.textContent = `correlation ${timeline.correlation_id}`;
  } catch (error) {
    replaceRows("timeline", []);
    status.textContent = error.status === 404 ? "no such message (yet)" : `error: ${error.message}`;
  }
}

document.getElementById("timeline-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const messageId = document.getElementById("timeline-id").value.trim();
  if (messageId) showTimeline(messageId);
});

document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.key = document.getElementById("key").value.trim();
  sessionStorage.setItem("eventline-admin-key", state.key);
  refresh();
});

refresh();
setInterval(refresh, POLL_MS);
