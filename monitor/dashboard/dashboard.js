// The dashboard: polls the monitor's JSON API every REFRESH_MS and renders each panel.
// Every text from the API goes through textContent or an attribute: nothing is parsed as HTML.
// An endpoint that answers 404 or fails puts its panels in the "unavailable" state
// (data-state="unavailable" on the <section>) without stopping the others.
// A fault anywhere (/api/monitor/health) shows as a banner above the panels, naming the
// service, the component and the reason.
// A monitor with TASKSTREAM_MONITOR_TOKENS answers 401: the page then asks for a token,
// keeps it in sessionStorage (this tab only, gone when it closes) and sends it as
// "Authorization: Bearer ..." with every API call. The token never goes in the URL.

import { lineChart, stackedBarChart } from "/dashboard/charts.js";

const REFRESH_MS = 2000;
const HISTORY_SIZE = 50;
const TOTALS = [
  "scheduled", "running", "succeeded", "failed", "timed_out", "cancelled", "dead_lettered", "skipped",
];
const FAILURES = ["failed", "timed_out", "cancelled", "dead_lettered"];

const state = { task: new URLSearchParams(window.location.search).get("task") || "" };
const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "taskstream.monitor.token";

function authorization() {
  const token = window.sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function askForToken() {
  $("token-form").hidden = false;
}

// ---- formatting -------------------------------------------------------------------

function words(status) {
  return String(status ?? "unknown").replaceAll("_", " ");
}

function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  const time = date.toLocaleTimeString([], { hour12: false });
  return date.toDateString() === new Date().toDateString()
    ? time
    : `${date.toLocaleDateString()} ${time}`;
}

function formatSeconds(seconds) {
  if (seconds == null) return "—";
  if (seconds > 0 && seconds < 0.001) return "< 1 ms";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  return `${Math.floor(seconds / 60)} m ${Math.round(seconds % 60)} s`;
}

function formatBytes(bytes) {
  if (bytes == null) return "—";
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

function formatCount(value) {
  return value == null ? "—" : Number(value).toLocaleString();
}

function errorText(record) {
  if (!record.error_type && !record.error_message) return "";
  return [record.error_type, record.error_message].filter(Boolean).join(": ");
}

// ---- DOM helpers ------------------------------------------------------------------

function el(tag, { cls, text, title, data } = {}, children = []) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = String(text);
  if (title) node.title = title;
  for (const [key, value] of Object.entries(data || {})) node.dataset[key] = value ?? "";
  node.append(...children);
  return node;
}

function statusBadge(status) {
  return el("span", { cls: `status status-${status || "unknown"}`, text: words(status) });
}

function td(content, cls) {
  return content instanceof Node ? el("td", { cls }, [content]) : el("td", { cls, text: content });
}

function placeholderRow(tbody, message) {
  const columns = tbody.closest("table").querySelectorAll("thead th").length;
  const cell = el("td", { cls: "empty", text: message });
  cell.colSpan = columns;
  tbody.replaceChildren(el("tr", { cls: "placeholder" }, [cell]));
}

function setPanel(id, panelState, reason = "") {
  const panel = $(id);
  panel.dataset.state = panelState;
  const note = panel.querySelector(".unavailable");
  note.hidden = panelState !== "unavailable";
  note.textContent = panelState === "unavailable" ? `Not available: ${reason}` : "";
  panel.querySelector(".body").hidden = panelState === "unavailable";
}

// ---- fetching ---------------------------------------------------------------------

async function fetchJson(url) {
  let response;
  try {
    response = await fetch(url, {
      cache: "no-store",
      credentials: "omit",
      headers: { Accept: "application/json", ...authorization() },
    });
  } catch {
    return { ok: false, reason: "the monitor did not answer" };
  }
  if (response.status === 401) {
    askForToken();
    return { ok: false, reason: "a valid bearer token is needed (401): enter it above" };
  }
  if (response.status === 404) return { ok: false, reason: "this monitor does not serve it (404)" };
  if (!response.ok) return { ok: false, reason: `HTTP ${response.status}` };
  try {
    return { ok: true, data: await response.json() };
  } catch {
    return { ok: false, reason: "the answer is not JSON" };
  }
}

// Fetch url, render into panels; a render error is shown like a failed fetch.
async function load(url, panels, render) {
  const result = await fetchJson(url);
  if (result.ok) {
    try {
      render(result.data);
      for (const panel of panels) setPanel(panel, "ok");
      return true;
    } catch (error) {
      result.reason = `unexpected answer (${error.message})`;
    }
  }
  for (const panel of panels) setPanel(panel, "unavailable", result.reason);
  return result.reason !== "the monitor did not answer";
}

// ---- panels -----------------------------------------------------------------------

function renderMetrics(data) {
  const totals = data.totals || {};
  const cards = TOTALS.map((key) =>
    el("div", { cls: `total total-${key}`, data: { key } }, [
      el("span", { cls: "value", text: formatCount(totals[key] ?? 0) }),
      el("span", { cls: "label", text: words(key) }),
    ]),
  );
  const lag = data.lag ? data.lag.task_events_records : null;
  cards.push(
    el("div", { cls: "total total-lag", data: { key: "lag" } }, [
      el("span", { cls: "value", text: formatCount(lag) }),
      el("span", { cls: "label", text: "task-events lag (records)" }),
    ]),
  );
  $("totals").replaceChildren(...cards);
  $("metrics-generated").textContent = `as of ${formatTime(data.generated_at)}`;

  const windows = data.windows || [];
  const labels = windows.map((w) => new Date(w.start));
  const column = (key) => windows.map((w) => w[key] ?? 0);
  const duration = (key) => windows.map((w) => (w.duration_seconds ? w.duration_seconds[key] : null));
  lineChart($("chart-throughput"), {
    title: "finished and succeeded executions per window",
    labels,
    series: [
      { name: "finished", values: column("finished") },
      { name: "succeeded", values: column("succeeded") },
    ],
    format: formatCount,
  });
  stackedBarChart($("chart-failures"), {
    title: "failed, timed out, cancelled and dead-lettered executions per window",
    labels,
    series: FAILURES.map((key) => ({ name: words(key), values: column(key) })),
    format: formatCount,
  });
  lineChart($("chart-durations"), {
    title: "execution durations per window",
    labels,
    series: ["p50", "p95", "max"].map((key) => ({ name: key, values: duration(key) })),
    format: formatSeconds,
  });
}

function taskButton(taskId) {
  const button = el("button", { cls: "task-link", text: taskId, data: { taskId }, title: "show this task's history" });
  button.type = "button";
  button.addEventListener("click", () => selectTask(taskId));
  return button;
}

function renderExecutions(data) {
  const tbody = $("executions").tBodies[0];
  const items = data.items || [];
  if (items.length === 0) return placeholderRow(tbody, "no executions yet");
  tbody.replaceChildren(
    ...items.map((r) => {
      const error = errorText(r);
      return el("tr", { cls: "execution-row", data: { executionId: r.execution_id, status: r.status, taskId: r.task_id } }, [
        td(statusBadge(r.status)),
        td(taskButton(r.task_id)),
        td(r.handler ?? "—"),
        td(formatTime(r.scheduled_for)),
        td(formatTime(r.started_at)),
        td(formatTime(r.finished_at)),
        td(formatSeconds(r.duration_seconds), "num"),
        el("td", { cls: "error", text: error, title: error }),
      ]);
    }),
  );
}

function renderWorkers(data) {
  const tbody = $("workers").tBodies[0];
  const items = data.items || [];
  const live = items.filter((w) => w.live).length;
  $("workers-summary").textContent = `${live} live of ${items.length}`;
  if (items.length === 0) return placeholderRow(tbody, "no executors have sent a heartbeat");
  tbody.replaceChildren(
    ...items.map((w) =>
      el("tr", { cls: `worker-row ${w.live ? "live" : "gone"}`, data: { executorId: w.executor_id, live: String(Boolean(w.live)) } }, [
        td(el("span", { cls: "worker-id", text: w.executor_id, title: w.live ? "live" : "not live" })),
        td(w.host ?? "—"),
        td((w.queues || []).join(", ")),
        el("td", { cls: "handlers", text: (w.handlers || []).join(", "), title: (w.handlers || []).join(", ") }),
        td(`${w.in_flight ?? "—"} / ${w.capacity ?? "—"}`, "num"),
        td(w.cpu_percent == null ? "—" : `${Number(w.cpu_percent).toFixed(0)} %`, "num"),
        td(formatBytes(w.memory_rss_bytes), "num"),
        td(w.last_seen_seconds == null ? formatTime(w.sent_at) : `${formatSeconds(w.last_seen_seconds)} ago`),
      ]),
    ),
  );
}

// An alert as the monitor's alert book serves it (rule_id, severity, status, subject_type,
// subject, summary, started_at, sent_at, resolved_at); a task subject links to its history.
function alertItem(alert) {
  const name = alert.rule_id ?? alert.key ?? "alert";
  const at = alert.resolved_at ?? alert.sent_at ?? alert.started_at;
  const subject = alert.subject_type === "task" && alert.subject
    ? taskButton(alert.subject)
    : el("span", { cls: "alert-subject", text: alert.subject ?? "" });
  return el("li", { cls: `alert severity-${alert.severity || "none"}`, data: { rule: name, status: alert.status ?? "" } }, [
    el("span", { cls: "alert-name", text: name }),
    el("span", { cls: "alert-severity", text: [alert.severity, alert.status].filter(Boolean).join(" · ") }),
    el("span", { cls: "alert-message", text: alert.summary ?? "", title: alert.summary ?? "" }),
    el("span", { cls: "alert-time", text: at ? formatTime(at) : "" }),
    subject,
  ]);
}

function renderAlerts(data) {
  for (const [id, items, none] of [
    ["alerts-active", data.active || [], "nothing is firing"],
    ["alerts-recent", data.recent || [], "no recent alerts"],
  ]) {
    $(id).replaceChildren(...(items.length ? items.map(alertItem) : [el("li", { cls: "empty", text: none })]));
  }
}

function renderHistory(data) {
  const tbody = $("history").tBodies[0];
  const items = data.items || [];
  $("history-summary").textContent =
    `${data.total ?? items.length} execution(s) of ${data.task_id}, newest first` +
    (items.length < (data.total ?? 0) ? `; showing ${items.length}` : "");
  if (items.length === 0) return placeholderRow(tbody, "no executions recorded for this task yet");
  tbody.replaceChildren(
    ...items.map((r) => {
      const error = errorText(r);
      const result = error || (r.output == null ? "" : JSON.stringify(r.output));
      return el("tr", { cls: "history-row", data: { executionId: r.execution_id, status: r.status, attempt: String(r.attempt ?? "") } }, [
        td(statusBadge(r.status)),
        td(r.attempt ?? "—", "num"),
        td(formatTime(r.scheduled_for)),
        td(formatTime(r.started_at)),
        td(formatTime(r.finished_at)),
        td(formatSeconds(r.duration_seconds), "num"),
        td(r.worker_id ?? "—"),
        el("td", { cls: "execution-id", text: r.execution_id, title: r.execution_id }),
        el("td", { cls: error ? "error" : "output", text: result, title: result }),
      ]);
    }),
  );
}

async function loadHistory() {
  const task = state.task;
  if (!task) {
    $("history-summary").textContent = "";
    placeholderRow($("history").tBodies[0], "choose a task: type its id above, or click one in Recent executions");
    setPanel("panel-history", "ok");
    $("panel-history").dataset.state = "idle";
    return true;
  }
  const url = `/api/monitor/tasks/${encodeURIComponent(task)}/executions?size=${HISTORY_SIZE}`;
  // A task chosen while this request ran wins: drop an answer for the previous one.
  return load(url, ["panel-history"], (data) => {
    if (task === state.task) renderHistory(data);
  });
}

function selectTask(taskId) {
  state.task = taskId.trim();
  $("task-input").value = state.task;
  const url = new URL(window.location.href);
  if (state.task) url.searchParams.set("task", state.task);
  else url.searchParams.delete("task");
  window.history.replaceState(null, "", url);
  loadHistory();
  $("panel-history").scrollIntoView({ behavior: "smooth", block: "start" });
}

// ---- health and quarantine ---------------------------------------------------------

// The monitor's /api/monitor/health: every service (the monitor, the core, the executors)
// with its components; "problems" (failed, unavailable, unreachable) make the red banner,
// "waiting" (starting, recovering) an amber one.
function problemText(p) {
  const where = p.component ? `${p.service} · ${p.component}` : p.service;
  return `${where}: ${words(p.state)}${p.reason ? ` (${p.reason})` : ""}`;
}

function showBanner(bannerState, title, findings) {
  const banner = $("health-banner");
  banner.dataset.state = bannerState;
  banner.hidden = bannerState === "ok";
  $("health-banner-title").textContent = title;
  $("health-problems").replaceChildren(
    ...findings.map((p) =>
      el("li", { cls: "health-problem", text: problemText(p), data: { service: p.service, component: p.component ?? "", state: p.state ?? "" } }),
    ),
  );
}

function renderHealth(data) {
  const problems = data.problems || [];
  const waiting = data.waiting || [];
  if (problems.length) {
    const names = [...new Set(problems.map((p) => p.service))].join(", ");
    showBanner("failing", `Fault in ${names}`, problems);
  } else if (waiting.length) {
    showBanner("waiting", "Not ready yet", waiting);
  } else {
    showBanner("ok", "", []);
  }
  const services = data.services || [];
  const rows = [];
  for (const service of services) {
    const components = Object.entries(service.components || {});
    const serviceCell = () =>
      td(el("span", { cls: "service-name", text: service.service, title: service.url ?? "this monitor" }));
    if (components.length === 0) {
      rows.push(
        el("tr", { cls: "service-row", data: { service: service.service, component: "", state: service.state } }, [
          serviceCell(), td("—"), td(statusBadge(service.state)), el("td", { cls: "error", text: service.reason ?? "", title: service.reason ?? "" }),
        ]),
      );
    }
    for (const [name, status] of components) {
      const reason = status.reason ?? "";
      rows.push(
        el("tr", { cls: "service-row", data: { service: service.service, component: name, state: status.state } }, [
          serviceCell(), td(name), td(statusBadge(status.state)), el("td", { cls: "error", text: reason, title: reason }),
        ]),
      );
    }
  }
  const healthy = services.filter((s) => s.state === "ok").length;
  $("services-summary").textContent = `${healthy} of ${services.length} ok · as of ${formatTime(data.generated_at)}`;
  const tbody = $("services").tBodies[0];
  if (rows.length === 0) return placeholderRow(tbody, "no services known");
  tbody.replaceChildren(...rows);
}

async function loadHealth() {
  const answered = await load("/api/monitor/health", ["panel-services"], renderHealth);
  if ($("panel-services").dataset.state === "unavailable") {
    const reason = $("panel-services").querySelector(".unavailable").textContent;
    showBanner("failing", "The monitor's health report is not available", [
      { service: "monitor", component: null, state: "unreachable", reason },
    ]);
  }
  return answered;
}

function quarantinedItem(q) {
  return el("li", { cls: "quarantined-task", data: { taskId: q.task_id, component: q.component ?? "" } }, [
    el("div", { cls: "quarantined-head" }, [
      taskButton(q.task_id),
      el("span", { cls: "quarantined-name", text: q.name ?? "" }),
      el("span", { cls: "quarantined-since", text: q.since ? `since ${formatTime(q.since)}` : "" }),
    ]),
    el("div", { cls: "quarantined-reason error", text: `${q.component ?? "?"}: ${q.reason ?? ""}`, title: q.reason ?? "" }),
    el("div", { cls: "quarantined-hint hint", text: q.hint ?? "" }),
  ]);
}

function renderQuarantined(data) {
  const items = data.items || [];
  const total = data.total ?? items.length;
  $("quarantined-summary").textContent = total
    ? `${total} set aside; they do not run until lifted` + (items.length < total ? ` (showing ${items.length})` : "")
    : "";
  $("quarantined").replaceChildren(
    ...(items.length ? items.map(quarantinedItem) : [el("li", { cls: "empty", text: "no task is quarantined" })]),
  );
}

// ---- the refresh loop -------------------------------------------------------------

async function refresh() {
  const answered = await Promise.all([
    load("/api/monitor/metrics?minutes=60", ["panel-totals", "panel-throughput", "panel-failures", "panel-durations"], renderMetrics),
    load("/api/monitor/executions?limit=50", ["panel-executions"], renderExecutions),
    load("/api/workers", ["panel-workers"], renderWorkers),
    load("/api/alerts", ["panel-alerts"], renderAlerts),
    loadHealth(),
    load("/api/monitor/quarantined?limit=100", ["panel-quarantined"], renderQuarantined),
    loadHistory(),
  ]);
  const status = $("refresh-status");
  const reachable = answered.some(Boolean);
  status.dataset.state = reachable ? "live" : "error";
  status.textContent = reachable
    ? `live · updated ${formatTime(new Date().toISOString())} · every ${REFRESH_MS / 1000} s`
    : `the monitor does not answer · retrying every ${REFRESH_MS / 1000} s`;
}

async function loop() {
  try {
    await refresh();
  } finally {
    window.setTimeout(loop, REFRESH_MS);
  }
}

$("task-input").value = state.task;
$("task-form").addEventListener("submit", (event) => {
  event.preventDefault();
  selectTask($("task-input").value);
});
$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token-input").value.trim();
  $("token-input").value = "";
  if (token) window.sessionStorage.setItem(TOKEN_KEY, token);
  else window.sessionStorage.removeItem(TOKEN_KEY);
  $("token-form").hidden = true;
  refresh();
});
loop();
