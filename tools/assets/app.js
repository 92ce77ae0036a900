// Booster dashboard. Plain JavaScript, no build step.
//
// Safety rule for this file: every piece of data from the server is put into
// the page as text (el() and textContent), never as HTML: no innerHTML
// nor any other HTML-string sink here; keep it so.
"use strict";

const STATES = ["running", "queued", "paused", "scheduled", "failed", "completed", "aborted"];
const TERMINAL = ["completed", "failed", "aborted"];
const JOBS_SHOWN = 500; // newest jobs on the jobs page; filters reach the rest
const main = document.getElementById("main");
const live = document.getElementById("live");

// ---------- small helpers ----------

// el("td", {class: "num"}, "text", childNode, ...): builds an element; string
// children become text nodes, so nothing a user typed can become markup.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "value") node.value = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const fmtInt = (n) => (n === null || n === undefined ? "-" : Number(n).toLocaleString("en-US"));
const fmtPct = (p) => (Math.round((p || 0) * 10) / 10).toFixed(1) + "%";
function fmtTime(ms) {
  if (!ms) return "-";
  return new Date(ms).toLocaleString();
}
function fmtDuration(s) {
  if (s === null || s === undefined) return "-";
  s = Math.round(s);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}
const stateBadge = (s) => el("span", { class: "state " + s }, s);

function progressBar(job, big) {
  const pct = Math.max(0, Math.min(100, job.percent || 0));
  const fill = el("span", { class: "fill" });
  fill.style.width = pct + "%";
  return el("div", {
    class: big ? "bar big" : "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100,
    "aria-valuenow": pct.toFixed(1), "data-job": job.id,
  }, fill, el("span", { class: "label" }, fmtPct(pct)));
}
function setBar(bar, pct) {
  pct = Math.max(0, Math.min(100, pct || 0));
  bar.setAttribute("aria-valuenow", pct.toFixed(1));
  bar.querySelector(".fill").style.width = pct + "%";
  bar.querySelector(".label").textContent = fmtPct(pct);
}

// ---------- talking to the server ----------

function token() { return sessionStorage.getItem("booster-token"); }
function authHeaders() {
  const t = token();
  return t ? { Authorization: "Bearer " + t } : {};
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const opts = { method, headers: authHeaders() };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  let data = null;
  try { data = await resp.json(); } catch (_) { data = null; }
  if (resp.status === 401) { showTokenForm(data && data.error); throw new ApiError(401, "token needed"); }
  if (!resp.ok) throw new ApiError(resp.status, (data && data.error) || resp.statusText);
  return data;
}

function showTokenForm(reason) {
  const input = el("input", { type: "password", id: "token-input", autocomplete: "off", size: 40 });
  const form = el("form", { class: "card token", onsubmit: (e) => {
    e.preventDefault();
    sessionStorage.setItem("booster-token", input.value.trim());
    startEvents();
    route();
  } },
  el("h1", {}, "Token needed"),
  el("p", { class: "muted" }, reason || "This server asks for its access token."),
  el("label", {}, "Token ", input), " ", el("button", { type: "submit" }, "Continue"));
  main.replaceChildren(form);
  input.focus();
}

// Server-sent events, read through fetch so the token can travel in a header
// (EventSource cannot send one).
const listeners = new Set();
let eventsAbort = null;
async function startEvents() {
  if (eventsAbort) eventsAbort.abort();
  const ctrl = new AbortController();
  eventsAbort = ctrl;
  while (!ctrl.signal.aborted) {
    try {
      const resp = await fetch("/api/events", { headers: authHeaders(), signal: ctrl.signal });
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      live.textContent = "live"; live.className = "live on";
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          dispatchEvent(buf.slice(0, cut));
          buf = buf.slice(cut + 2);
        }
      }
    } catch (e) {
      if (ctrl.signal.aborted) return;
    }
    live.textContent = "reconnecting"; live.className = "live off";
    await new Promise((r) => setTimeout(r, 2000));
  }
}
function dispatchEvent(block) {
  let type = "message";
  let data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) type = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  if (!data) return;
  let parsed;
  try { parsed = JSON.parse(data); } catch (_) { return; }
  for (const fn of listeners) fn(type, parsed);
}

// Coalesces bursts of events into one refresh at most every `ms`.
function throttle(fn, ms) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; fn(); }, ms);
  };
}

// ---------- pages ----------

let pageCleanup = () => {};
// Bumped on every navigation: an answer that arrives for a page no longer
// shown must not draw over the current one.
let pageGeneration = 0;
function pageGuard() {
  const mine = pageGeneration;
  return () => mine === pageGeneration;
}
function route() {
  pageCleanup();
  pageCleanup = () => {};
  pageGeneration += 1;
  listeners.clear();
  const hash = location.hash || "#/";
  document.getElementById("nav-jobs").className = hash.startsWith("#/workers") ? "" : "current";
  document.getElementById("nav-workers").className = hash.startsWith("#/workers") ? "current" : "";
  const m = hash.match(/^#\/job\/(\d+)$/);
  if (m) return jobPage(Number(m[1]));
  if (hash.startsWith("#/workers")) return workersPage();
  return jobsPage();
}

function showError(e) {
  if (e instanceof ApiError && e.status === 401) return;
  main.replaceChildren(el("div", { class: "card" }, el("h1", {}, "Cannot load"), el("p", { class: "msg err" }, e.message)));
}

const filters = { state: "", kind: "", q: "" };

async function jobsPage() {
  const stateSel = el("select", { id: "filter-state", onchange: () => { filters.state = stateSel.value; refresh(); } },
    el("option", { value: "" }, "all states"), STATES.map((s) => el("option", { value: s }, s)));
  stateSel.value = filters.state;
  const kindIn = el("input", { id: "filter-kind", placeholder: "any kind", value: filters.kind,
    oninput: () => { filters.kind = kindIn.value; refreshSoon(); } });
  const textIn = el("input", { id: "filter-q", placeholder: "text in description or kind", size: 30, value: filters.q,
    oninput: () => { filters.q = textIn.value; refreshSoon(); } });
  const list = el("div", { id: "job-list" });
  main.replaceChildren(el("h1", {}, "Jobs"),
    el("div", { class: "filters" }, el("label", {}, "State", stateSel), el("label", {}, "Kind", kindIn), el("label", {}, "Search", textIn)),
    list);

  const bars = new Map(); // job id -> {bar, state, row}
  const current = pageGuard();
  async function refresh() {
    const qs = new URLSearchParams({ limit: String(JOBS_SHOWN) });
    for (const [k, v] of Object.entries(filters)) if (v) qs.set(k, v);
    let data;
    try { data = await api("GET", "/api/jobs?" + qs.toString()); } catch (e) { return current() && showError(e); }
    if (!current()) return;
    bars.clear();
    const sections = [];
    for (const state of STATES) {
      const jobs = data.jobs.filter((j) => j.state === state);
      if (!jobs.length) continue;
      jobs.sort((a, b) => a.priority - b.priority || a.id - b.id);
      sections.push(el("h2", {}, state[0].toUpperCase() + state.slice(1) + " (" + jobs.length + ")"),
        jobTable(jobs, bars));
    }
    if (!sections.length) sections.push(el("p", { class: "empty" }, "No jobs match."));
    if (data.total > data.jobs.length) {
      sections.unshift(el("p", { class: "muted" }, "Showing the newest " + fmtInt(data.jobs.length) + " of " +
        fmtInt(data.total) + " jobs; filter by state, kind or text to find others."));
    }
    list.replaceChildren(...sections);
  }
  const refreshSoon = throttle(refresh, 400);
  listeners.add((type, ev) => {
    if (type !== "job") return refreshSoon();
    const known = bars.get(ev.job);
    if (!known || known.state !== ev.state) return refreshSoon();
    setBar(known.bar, ev.percent);
    known.done.textContent = fmtInt(ev.slices_done) + " / " + fmtInt(ev.slices_total);
  });
  const timer = setInterval(refresh, 10000); // rates and ETAs move without events
  pageCleanup = () => clearInterval(timer);
  await refresh();
}

function jobTable(jobs, bars) {
  const rows = jobs.map((j) => {
    const bar = progressBar(j, false);
    const done = el("td", { class: "num" }, fmtInt(j.slices_done) + " / " + fmtInt(j.slices_total));
    bars.set(j.id, { bar, state: j.state, done });
    return el("tr", { id: "job-row-" + j.id },
      el("td", { class: "num" }, el("a", { href: "#/job/" + j.id }, String(j.id))),
      el("td", {}, j.kind),
      el("td", { class: "desc", title: j.description }, j.description),
      el("td", { class: "num" }, String(j.priority)),
      el("td", {}, bar),
      done,
      el("td", { class: "num" }, fmtInt(j.records_in)),
      el("td", { class: "num" }, j.state === "running" ? fmtInt(Math.round(j.records_per_s)) : "-"),
      el("td", {}, fmtTime(j.created_at_ms)));
  });
  return el("table", {},
    el("thead", {}, el("tr", {}, el("th", { class: "num" }, "ID"), el("th", {}, "Kind"), el("th", {}, "Description"),
      el("th", { class: "num" }, "Priority"), el("th", {}, "Progress"), el("th", { class: "num" }, "Slices done"),
      el("th", { class: "num" }, "Records"), el("th", { class: "num" }, "Records/s"), el("th", {}, "Created"))),
    el("tbody", {}, rows));
}

async function jobPage(id) {
  let job;
  const msg = el("div", { class: "msg", id: "job-msg" });
  function say(text, ok) { msg.textContent = text; msg.className = "msg " + (ok ? "ok" : "err"); }

  async function act(path, method, body, confirmText, done) {
    if (confirmText && !window.confirm(confirmText)) return;
    try {
      const data = await api(method, path, body);
      if (done) done(data);
      await refresh();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) say(e.message, false);
    }
  }

  function render() {
    const j = job;
    const prio = el("input", { type: "number", id: "priority-input", min: 1, max: 100, value: j.priority,
      onkeydown: (e) => { if (e.key === "Enter") savePrio(); } });
    const savePrio = () => act("/api/jobs/" + id, "PATCH", { priority: Number(prio.value) }, null,
      (d) => say("Priority is now " + d.priority + ".", true));
    const workers = el("input", { type: "number", id: "max-workers-input", min: 1, placeholder: "no limit",
      value: j.max_workers === null ? "" : j.max_workers,
      onkeydown: (e) => { if (e.key === "Enter") saveWorkers(); } });
    const saveWorkers = () => act("/api/jobs/" + id, "PATCH",
      { max_workers: workers.value === "" ? null : Number(workers.value) }, null,
      (d) => say("Worker limit is now " + (d.max_workers === null ? "no limit" : d.max_workers) + ".", true));

    const terminal = TERMINAL.includes(j.state);
    const button = (label, action, enabled, confirmText, cls) => el("button", {
      id: "action-" + action, class: cls, disabled: !enabled,
      onclick: () => act("/api/jobs/" + id + "/" + action, "POST", undefined, confirmText),
    }, label);
    const destroy = el("button", { id: "action-destroy", class: "danger", onclick: () => {
      if (!window.confirm("Destroy job " + id + " and all its records? This cannot be undone.")) return;
      api("DELETE", "/api/jobs/" + id).then(() => { location.hash = "#/"; }, (e) => say(e.message, false));
    } }, "Destroy");

    const counts = el("div", { class: "grid" },
      stat("Slices done", fmtInt(j.slices_done) + " / " + fmtInt(j.slices_total)),
      stat("Slices running", fmtInt(j.slices_running)),
      stat("Slices queued", fmtInt(j.slices_queued)),
      stat("Slices failed", fmtInt(j.slices_failed)),
      stat("Records in", fmtInt(j.records_in)),
      stat("Records out", fmtInt(j.records_out)),
      ...Object.entries(j.records_out_by_category || {}).map(([name, n]) =>
        stat("Records out: " + name, fmtInt(n))),
      stat("Record errors", fmtInt(j.records_errors)),
      stat("Records failed", fmtInt(j.records_failed)),
      stat("Throughput", fmtInt(Math.round(j.records_per_s)) + " records/s"),
      stat("ETA", j.state === "running" ? fmtDuration(j.eta_s) : "-"),
      stat("Created", fmtTime(j.created_at_ms), "time"),
      stat("Started", fmtTime(j.started_at_ms), "time"),
      stat("Finished", fmtTime(j.completed_at_ms), "time"),
      stat("Upload", j.upload_complete ? "complete" : "waiting for input"),
      stat("Attempts", fmtInt(j.attempts)));

    main.replaceChildren(
      el("p", {}, el("a", { href: "#/" }, "← all jobs")),
      el("h1", {}, "Job " + j.id + " ", stateBadge(j.state), " ", el("span", { class: "muted" }, j.kind)),
      el("div", { class: "card" },
        el("div", { class: "description", id: "job-description" }, j.description || "(no description)"),
        j.failure_reason ? el("p", { class: "msg err" }, "Failed: " + j.failure_reason) : null,
        j.waiting_reason ? el("p", { class: "msg", id: "job-waiting" }, "Waiting: " + j.waiting_reason) : null,
        ...(j.damage || []).map((d) => el("p", { class: "msg err" }, "Damaged: " + d)),
        el("div", { class: "bar-wrap" }, progressBar(j, true))),
      el("div", { class: "card" },
        el("div", { class: "controls" },
          el("div", { class: "edit" }, el("label", { for: "priority-input" }, "Priority (1 first, 100 last)"), prio,
            el("button", { id: "priority-save", onclick: savePrio }, "Save")),
          el("div", { class: "edit" }, el("label", { for: "max-workers-input" }, "Max workers"), workers,
            el("button", { id: "max-workers-save", onclick: saveWorkers }, "Save")),
          el("div", { class: "edit" },
            button("Pause", "pause", ["queued", "running", "scheduled"].includes(j.state), "Pause job " + id + "?"),
            button("Resume", "resume", j.state === "paused", null),
            button("Retry", "retry", j.state === "failed", "Retry the failed work of job " + id + "?"),
            button("Abort", "abort", !terminal, "Abort job " + id + "? Its unfinished slices will not run.", "danger"),
            destroy)),
        msg),
      el("div", { class: "card" }, counts),
      el("h2", {}, "Leases (" + j.leases.length + ")"),
      j.leases.length ? el("table", { id: "leases" },
        el("thead", {}, el("tr", {}, el("th", { class: "num" }, "Worker"), el("th", { class: "num" }, "Slice"),
          el("th", { class: "num" }, "Epoch"), el("th", {}, "Since"), el("th", {}, "Deadline"))),
        el("tbody", {}, j.leases.map((l) => el("tr", {},
          el("td", { class: "num" }, String(l.worker)), el("td", { class: "num" }, l.slice === null ? "-" : String(l.slice)),
          el("td", { class: "num" }, String(l.epoch)), el("td", {}, fmtTime(l.since_ms)), el("td", {}, fmtTime(l.deadline_ms))))))
        : el("p", { class: "empty" }, "No slice of this job is leased right now."),
      el("h2", {}, "Errors (" + fmtInt(j.records_errors + j.slices_failed) + ")"),
      ...(j.errors.length ? j.errors.map(errorGroup) : [el("p", { class: "empty" }, "No errors.")]));
  }

  const current = pageGuard();
  async function refresh() {
    let fresh;
    try { fresh = await api("GET", "/api/jobs/" + id); } catch (e) { return current() && showError(e); }
    if (!current()) return;
    job = fresh;
    // Keep what the person is typing: re-render only when no editor has focus.
    const active = document.activeElement;
    if (active && (active.id === "priority-input" || active.id === "max-workers-input") && document.getElementById(active.id)) {
      const bar = main.querySelector(".bar");
      if (bar) setBar(bar, job.percent);
      return;
    }
    const keep = msg.textContent;
    render();
    msg.textContent = keep;
  }
  const refreshSoon = throttle(refresh, 700);
  listeners.add((type, ev) => {
    if (type === "job" && ev.job !== id) return;
    if (type === "job") {
      const bar = main.querySelector(".bar");
      if (bar) setBar(bar, ev.percent);
    }
    refreshSoon();
  });
  const timer = setInterval(refresh, 5000); // leases and rates change between events
  pageCleanup = () => clearInterval(timer);
  await refresh();
}

function stat(label, value, cls) {
  return el("div", {}, el("span", {}, label), el("b", { class: cls }, value));
}

function errorGroup(g) {
  return el("div", { class: "card error-group" },
    el("div", {}, el("b", {}, fmtInt(g.count) + " × "), el("span", { class: "record" }, g.message)),
    g.samples.length ? el("table", {},
      el("thead", {}, el("tr", {}, el("th", { class: "num" }, "Record #"), el("th", { class: "num" }, "Line"),
        el("th", { class: "num" }, "Slice"), el("th", {}, "Record"))),
      el("tbody", {}, g.samples.map((s) => el("tr", {},
        el("td", { class: "num" }, fmtInt(s.record_number)), el("td", { class: "num" }, s.line === null ? "-" : fmtInt(s.line)),
        el("td", { class: "num" }, String(s.slice)), el("td", { class: "record" }, s.record))))) : null);
}

async function workersPage() {
  const current = pageGuard();
  async function refresh() {
    let data;
    try { data = await api("GET", "/api/workers"); } catch (e) { return current() && showError(e); }
    if (!current()) return;
    const busy = data.workers.filter((w) => w.lease).length;
    main.replaceChildren(el("h1", {}, "Workers"),
      el("p", { class: "muted" }, busy + " of " + data.workers.length + " busy"),
      el("table", { id: "workers" },
        el("thead", {}, el("tr", {}, el("th", { class: "num" }, "Worker"), el("th", {}, "Job"), el("th", { class: "num" }, "Slice"),
          el("th", {}, "Leased since"), el("th", {}, "Deadline"), el("th", { class: "num" }, "Slices done"), el("th", { class: "num" }, "Restarts"))),
        el("tbody", {}, data.workers.map((w) => el("tr", {},
          el("td", { class: "num" }, String(w.worker)),
          el("td", {}, w.lease ? el("a", { href: "#/job/" + w.lease.job }, "job " + w.lease.job) : el("span", { class: "muted" }, "idle")),
          el("td", { class: "num" }, w.lease && w.lease.slice !== null ? String(w.lease.slice) : "-"),
          el("td", {}, w.lease ? fmtTime(w.lease.since_ms) : "-"),
          el("td", {}, w.lease ? fmtTime(w.lease.deadline_ms) : "-"),
          el("td", { class: "num" }, fmtInt(w.slices_done)),
          el("td", { class: "num" }, fmtInt(w.restarts)))))));
  }
  const timer = setInterval(refresh, 2000); // leases change without job events
  pageCleanup = () => clearInterval(timer);
  await refresh();
}

window.addEventListener("hashchange", route);
startEvents();
route();
