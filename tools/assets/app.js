// Booster dashboard. Plain JavaScript, no build step.
//
// Safety rule for this file: every piece of data from the server is put into
// the page as text (el() and textContent), never as HTML: no innerHTML
// nor any other HTML-string sink here; keep it so.
"use strict";

const STATES = ["running", "queued", "waiting", "paused", "scheduled", "failed", "completed", "aborted"];
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
  for (const c of children.flat(Infinity)) {
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

// The bar: the share of the job done, split into what succeeded (blue) and
// what failed (red: rejected, failed and failed-slice records). A failed
// job's bar is red for all that will not be done. data-failed carries the
// failed-record count.
function progressBar(job, big) {
  const bar = el("div", {
    class: big ? "bar big" : "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100,
    "data-job": job.id,
  }, el("span", { class: "fill" }), el("span", { class: "fill bad" }), el("span", { class: "label" }));
  setBar(bar, job.percent, job);
  return bar;
}
// `job` (optional): the job's latest counts and state; events only carry
// the percentage, so the failed share is kept from the last full answer.
function setBar(bar, pct, job) {
  pct = Math.max(0, Math.min(100, pct || 0));
  if (job) {
    bar.dataset.failed = String(job.records_failed || 0);
    bar.dataset.records = String(job.records_in || 0);
    bar.classList.toggle("failed", job.state === "failed");
  }
  const failed = Number(bar.dataset.failed || 0);
  const records = Number(bar.dataset.records || 0);
  const jobFailed = bar.classList.contains("failed");
  const failedShare = records > 0 ? Math.min(1, failed / records) : 0;
  const ok = pct * (1 - failedShare);
  bar.setAttribute("aria-valuenow", pct.toFixed(1));
  bar.querySelector(".fill").style.width = ok + "%";
  const bad = bar.querySelector(".fill.bad");
  bad.style.left = ok + "%";
  bad.style.width = (jobFailed ? 100 - ok : pct - ok) + "%";
  bar.querySelector(".label").textContent = fmtPct(pct) +
    (failed > 0 ? " · " + fmtInt(failed) + " failed" : jobFailed ? " · job failed" : "");
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
  const section = hash.startsWith("#/workers") ? "workers" : hash.startsWith("#/history") ? "history"
    : hash.startsWith("#/cron") ? "cron" : hash.startsWith("#/kinds") ? "kinds"
    : hash.startsWith("#/dirmon") ? "dirmon" : "jobs";
  for (const name of ["jobs", "workers", "cron", "kinds", "dirmon", "history"]) {
    document.getElementById("nav-" + name).className = section === name ? "current" : "";
  }
  const m = hash.match(/^#\/job\/(\d+)$/);
  if (m) return jobPage(Number(m[1]));
  if (section === "workers") return workersPage();
  if (section === "cron") return cronPage();
  if (section === "kinds") return kindsPage();
  if (section === "dirmon") return dirmonPage();
  if (section === "history") return historyPage();
  return jobsPage();
}

function showError(e) {
  if (e instanceof ApiError && e.status === 401) return;
  main.replaceChildren(el("div", { class: "card" }, el("h1", {}, "Cannot load"), el("p", { class: "msg err" }, e.message)));
}

const filters = { state: "", kind: "", q: "" };
const JOBS_PAGE = 50; // jobs per page of the jobs list
// The `before` of each page shown so far: [null] is the newest page.
let pageStarts = [null];

async function jobsPage() {
  const resetPages = () => { pageStarts = [null]; };
  const stateSel = el("select", { id: "filter-state", onchange: () => { filters.state = stateSel.value; resetPages(); refresh(); } },
    el("option", { value: "" }, "all states"), STATES.map((s) => el("option", { value: s }, s)));
  stateSel.value = filters.state;
  const kindIn = el("input", { id: "filter-kind", placeholder: "any kind", value: filters.kind,
    oninput: () => { filters.kind = kindIn.value; resetPages(); refreshSoon(); } });
  const textIn = el("input", { id: "filter-q", placeholder: "text in description or kind", size: 30, value: filters.q,
    oninput: () => { filters.q = textIn.value; resetPages(); refreshSoon(); } });
  const list = el("div", { id: "job-list" });
  const pager = el("div", { class: "pager", id: "jobs-pager" });
  main.replaceChildren(el("h1", {}, "Jobs"),
    el("div", { class: "filters" }, el("label", {}, "State", stateSel), el("label", {}, "Kind", kindIn), el("label", {}, "Search", textIn)),
    bulkActions(() => refresh()),
    list, pager);

  const bars = new Map(); // job id -> {bar, state, done, job}
  const current = pageGuard();
  async function refresh() {
    const before = pageStarts[pageStarts.length - 1];
    const qs = new URLSearchParams({ limit: String(JOBS_PAGE) });
    if (before !== null) qs.set("before", String(before));
    for (const [k, v] of Object.entries(filters)) if (v) qs.set(k, v);
    let data;
    try { data = await api("GET", "/api/jobs?" + qs.toString()); } catch (e) { return current() && showError(e); }
    if (!current()) return;
    bars.clear();
    const jobs = data.jobs.slice().sort((a, b) => b.id - a.id); // newest first
    list.replaceChildren(jobs.length ? jobTable(jobs, bars) : el("p", { class: "empty" }, data.next_before === null || data.next_before === undefined ? "No jobs match." : "No match in the jobs read so far: Older → reads on."));
    const page = pageStarts.length;
    pager.replaceChildren(
      el("button", { id: "jobs-newer", disabled: page === 1, onclick: () => { pageStarts.pop(); refresh(); } }, "← Newer"),
      el("span", { class: "muted", id: "jobs-page" }, "Page " + page + (data.total === null ? " · " + fmtInt(data.jobs.length) + " on this page (a kind or text filter is not counted)" : " · " + fmtInt(data.total) + " jobs match")),
      el("button", { id: "jobs-older", disabled: data.next_before === null || data.next_before === undefined,
        onclick: () => { pageStarts.push(data.next_before); refresh(); } }, "Older →"));
  }
  const refreshSoon = throttle(refresh, 400);
  listeners.add((type, ev) => {
    if (type !== "job") return refreshSoon();
    const known = bars.get(ev.job);
    // A new job shows on the newest page only; a change of state redraws.
    if (!known) return pageStarts.length === 1 ? refreshSoon() : undefined;
    if (known.state !== ev.state) return refreshSoon();
    setBar(known.bar, ev.percent);
    known.done.textContent = fmtInt(ev.slices_done) + " / " + fmtInt(ev.slices_total);
  });
  const timer = setInterval(refresh, 10000); // rates and ETAs move without events
  pageCleanup = () => clearInterval(timer);
  await refresh();
}

// "Retry all failed" and "Pause kind" / "Resume kind": admin actions on
// many jobs; the server says which jobs it acted on and which it refused.
function bulkActions(after) {
  const msg = el("span", { class: "msg", id: "bulk-msg" });
  const kind = el("input", { id: "bulk-kind", placeholder: "kind", size: 14 });
  const say = (text, ok) => { msg.textContent = text; msg.className = "msg " + (ok ? "ok" : "err"); };
  // The first few refusals in words; the count says how many in all.
  const refusedText = (r) => !r.length ? "" : "; refused " + r.length + ": " +
    r.slice(0, 5).map((x) => "job " + x.id + " (" + x.error + ")").join(", ") + (r.length > 5 ? ", …" : "");
  async function run(path, confirmText, describe) {
    if (!window.confirm(confirmText)) return;
    try {
      const data = await api("POST", path);
      say(describe(data) + refusedText(data.refused) + (data.more ? "; more remain: run it again" : "."), data.refused.length === 0);
      after();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) say(e.message, false);
    }
  }
  const needKind = () => { if (kind.value.trim()) return kind.value.trim(); say("Name the kind first.", false); return null; };
  return el("div", { class: "bulk" },
    el("button", { id: "bulk-retry", onclick: () => run("/api/bulk/retry-failed", "Retry every failed job?",
      (d) => d.retried.length ? "Retried " + d.retried.length + " failed job" + (d.retried.length === 1 ? "" : "s") : "No failed job to retry") },
    "Retry all failed"),
    el("span", { class: "sep" }),
    kind,
    el("button", { id: "bulk-pause-kind", onclick: () => { const k = needKind(); if (k) run("/api/kinds/" + encodeURIComponent(k) + "/pause",
      "Pause every job of kind " + k + "?", (d) => "Paused " + d.paused.length + " job" + (d.paused.length === 1 ? "" : "s") + " of kind " + k); } },
    "Pause kind"),
    el("button", { id: "bulk-resume-kind", onclick: () => { const k = needKind(); if (k) run("/api/kinds/" + encodeURIComponent(k) + "/resume",
      "Resume every paused job of kind " + k + "?", (d) => "Resumed " + d.resumed.length + " job" + (d.resumed.length === 1 ? "" : "s") + " of kind " + k); } },
    "Resume kind"),
    msg);
}

function jobTable(jobs, bars) {
  const rows = jobs.map((j) => {
    const bar = progressBar(j, false);
    const done = el("td", { class: "num" }, fmtInt(j.slices_done) + " / " + fmtInt(j.slices_total));
    bars.set(j.id, { bar, state: j.state, done });
    return el("tr", { id: "job-row-" + j.id, class: j.state === "failed" ? "row-failed" : null },
      el("td", { class: "num" }, el("a", { href: "#/job/" + j.id }, String(j.id))),
      el("td", {}, stateBadge(j.state)),
      el("td", {}, j.kind),
      el("td", { class: "desc", title: j.description }, j.description),
      el("td", { class: "num" }, String(j.priority)),
      el("td", {}, bar),
      done,
      el("td", { class: "num" }, fmtInt(j.records_in)),
      el("td", { class: j.records_failed > 0 ? "num failed-count bad" : "num failed-count" }, fmtInt(j.records_failed)),
      el("td", { class: "num" }, j.state === "running" ? fmtInt(Math.round(j.records_per_s)) : "-"),
      el("td", {}, fmtTime(j.created_at_ms)));
  });
  return el("table", { id: "jobs" },
    el("thead", {}, el("tr", {}, el("th", { class: "num" }, "ID"), el("th", {}, "State"), el("th", {}, "Kind"), el("th", {}, "Description"),
      el("th", { class: "num" }, "Priority"), el("th", {}, "Progress"), el("th", { class: "num" }, "Slices done"),
      el("th", { class: "num" }, "Records"), el("th", { class: "num" }, "Failed"), el("th", { class: "num" }, "Records/s"), el("th", {}, "Created"))),
    el("tbody", {}, rows));
}

async function workersPage() {
  const current = pageGuard();
  async function refresh() {
    let data;
    try { data = await api("GET", "/api/workers"); } catch (e) { return current() && showError(e); }
    if (!current()) return;
    const busy = data.workers.filter((w) => w.lease).length;
    const processes = data.processes || [];
    main.replaceChildren(el("h1", {}, "Workers"),
      el("h2", {}, "Processes"),
      el("table", { id: "processes" },
        el("thead", {}, el("tr", {}, el("th", {}, "Host"), el("th", { class: "num" }, "PID"), el("th", {}, "Version"),
          el("th", {}, "Kinds"), el("th", { class: "num" }, "Threads"), el("th", { class: "num" }, "Leases"),
          el("th", {}, "Last heartbeat"), el("th", { class: "num" }, "Records/s"))),
        el("tbody", {}, processes.map((p) => el("tr", {},
          el("td", { class: "host" }, p.worker === null ? p.host + " (node)" : p.host),
          el("td", { class: "num pid" }, String(p.pid)),
          el("td", { class: "version" }, p.version),
          el("td", { class: "kinds" }, p.kinds.join(", ")),
          el("td", { class: "num threads" }, fmtInt(p.threads)),
          el("td", { class: "num leases" }, fmtInt(p.leases)),
          el("td", {}, fmtTime(p.last_heartbeat_ms)),
          el("td", { class: "num" }, fmtInt(Math.round(p.records_per_s))))))),
      el("h2", {}, "Threads"),
      el("p", { class: "muted" }, busy + " of " + data.workers.length + " busy"),
      el("table", { id: "workers" },
        el("thead", {}, el("tr", {}, el("th", { class: "num" }, "Worker"), el("th", {}, "Host"), el("th", { class: "num" }, "PID"),
          el("th", {}, "Version"), el("th", {}, "Job"), el("th", { class: "num" }, "Slice"),
          el("th", {}, "Leased since"), el("th", {}, "Deadline"), el("th", { class: "num" }, "Slices done"), el("th", { class: "num" }, "Restarts"))),
        el("tbody", {}, data.workers.map((w) => el("tr", {},
          el("td", { class: "num" }, String(w.worker)),
          el("td", { class: "host" }, w.host || "-"),
          el("td", { class: "num pid" }, w.pid ? String(w.pid) : "-"),
          el("td", { class: "version" }, w.version || "-"),
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

// Cron entries: one row each (`GET /api/crons`); `booster cron` changes them.
// Pause, resume and remove buttons of a cron or dirmon entry (`POST
// /api/{crons|dirmons}/{id}/{action}`, admin); `msg` says what failed,
// `refresh` redraws the page after a change.
function entryActions(route, e, what, msg, refresh) {
  const act = (action, ask) => el("button", { class: "entry-" + action, onclick: async () => {
    if (ask && !confirm(ask)) return;
    try {
      await api("POST", "/api/" + route + "/" + e.id + "/" + action);
      msg.className = "msg"; msg.textContent = "";
      refresh();
    } catch (err) { msg.className = "msg err"; msg.textContent = what + " " + e.id + ": " + err.message; }
  } }, action[0].toUpperCase() + action.slice(1));
  return [e.paused ? act("resume") : act("pause"), " ",
    act("remove", "Remove " + what + " " + e.id + "? It makes no more jobs; jobs it made stay.")];
}

async function cronPage() {
  const current = pageGuard();
  async function refresh() {
    let data;
    try { data = await api("GET", "/api/crons"); } catch (e) { return current() && showError(e); }
    if (!current()) return;
    const tick = (ms) => (ms === null || ms === undefined ? "-" : fmtTime(ms));
    const msg = el("p", { class: "msg", id: "entry-msg" });
    main.replaceChildren(el("h1", {}, "Cron"), msg,
      data.crons.length === 0
        ? el("p", { class: "muted" }, "No cron entries. booster submit --kind KIND --args JSON --cron 'EXPR' adds one.")
        : el("table", { id: "crons" },
          el("thead", {}, el("tr", {}, el("th", { class: "num" }, "Id"), el("th", {}, "Expression"), el("th", {}, "Zone"),
            el("th", {}, "Kind"), el("th", {}, "State"), el("th", {}, "Last tick"), el("th", {}, "Next tick"), el("th", {}, "Running"),
            el("th", {}, "Change"))),
          el("tbody", {}, data.crons.map((c) => el("tr", { "data-id": c.id },
            el("td", { class: "num" }, String(c.id)),
            el("td", { class: "expr" }, c.expr),
            el("td", {}, c.tz || "UTC"),
            el("td", {}, c.kind),
            el("td", {}, c.paused ? "paused" : "active"),
            el("td", {}, tick(c.last_tick_ms)),
            el("td", {}, tick(c.next_tick_ms)),
            el("td", {}, c.running ? el("a", { href: "#/job/" + c.running }, "job " + c.running) : el("span", { class: "muted" }, "-")),
            el("td", {}, entryActions("crons", c, "cron", msg, refresh)))))));
  }
  const timer = setInterval(refresh, 5000); // ticks pass without job events
  pageCleanup = () => clearInterval(timer);
  await refresh();
}

// Kinds: what is stored and what applies (`GET /api/kinds`); an admin
// sets a kind's running-job limit, its retry policy and its processing
// window here, as `booster kind limit|retry|window` do (`PUT
// /api/kinds/{kind}` with the kind's settings, one part changed).
async function kindsPage() {
  const current = pageGuard();
  let data;
  try { data = await api("GET", "/api/kinds"); } catch (e) { return current() && showError(e); }
  if (!current()) return;
  const limitText = (n) => (n === null || n === undefined ? "no limit" : n === 0 ? "0 (paused)" : String(n));
  const windowText = (w) => (w ? w.start + "-" + w.end + " " + (w.tz || "UTC") : "any time");
  const whole = (t) => /^[0-9]+$/.test(t);
  const rows = data.kinds.map((k) => {
    const msg = el("span", { class: "msg" });
    // One form per setting: `check` gives the change, or a message why not.
    const form = (cls, label, inputs, check) => el("form", { class: "inline " + cls, onsubmit: async (e) => {
      e.preventDefault();
      const change = check();
      if (typeof change === "string") { msg.className = "msg err"; msg.textContent = change; return; }
      const settings = Object.assign({}, k.stored || k.effective, change);
      try {
        await api("PUT", "/api/kinds/" + encodeURIComponent(k.kind), settings);
        msg.className = "msg ok"; msg.textContent = "stored";
        kindsPage();
      } catch (err) { msg.className = "msg err"; msg.textContent = err.message; }
    } }, ...inputs, " ", el("button", { type: "submit" }, label));
    const limit = el("input", { type: "text", size: 6, class: "limit", placeholder: "none", value: k.effective.max_running ?? "" });
    const retries = el("input", { type: "text", size: 4, class: "retries", title: "retries", value: k.effective.retry.max_retries });
    const backoff = el("input", { type: "text", size: 7, class: "backoff", title: "first backoff (ms), doubled each retry", value: k.effective.retry.backoff_base_ms });
    const jitter = el("input", { type: "text", size: 3, class: "jitter", title: "each wait longer by a random 0 to this % of it", value: k.effective.retry.jitter_percent || 0 });
    const w = k.effective.window;
    const span = el("input", { type: "text", size: 10, class: "window", placeholder: "22:00-06:00", value: w ? w.start + "-" + w.end : "" });
    const tz = el("input", { type: "text", size: 12, class: "tz", placeholder: "UTC", value: w && w.tz !== "UTC" ? w.tz : "" });
    const forms = el("div", { class: "kind-forms" },
      form("set-limit", "Set limit", [limit], () => {
        const t = limit.value.trim();
        if (t !== "" && !whole(t)) return "a number of jobs, or empty for no limit";
        return { max_running: t === "" ? null : Number(t) };
      }),
      form("set-retry", "Set retries", [retries, " × ", backoff, " ms +0-", jitter, "%"], () => {
        const r = retries.value.trim(), b = backoff.value.trim(), j = jitter.value.trim();
        if (!whole(r) || !whole(b)) return "retries and backoff are whole numbers (0 retries: a failure is final)";
        if (!whole(j) || Number(j) > 100) return "jitter is 0 to 100 (% of each wait)";
        return { retry: { max_retries: Number(r), backoff_base_ms: Number(b), jitter_percent: Number(j) } };
      }),
      form("set-window", "Set window", [span, " ", tz], () => {
        const t = span.value.trim();
        if (t === "") return { window: null };
        const m = /^([0-9]{1,2}:[0-9]{2})-([0-9]{1,2}:[0-9]{2})$/.exec(t);
        if (!m) return "a window is HH:MM-HH:MM, e.g. 22:00-06:00, or empty for any time";
        const zone = tz.value.trim();
        return { window: zone ? { start: m[1], end: m[2], tz: zone } : { start: m[1], end: m[2] } };
      }),
      msg);
    return el("tr", { "data-kind": k.kind },
      el("td", {}, k.kind),
      el("td", {}, k.registered ? "yes" : el("span", { class: "muted" }, "no")),
      el("td", { class: "limit-now" }, limitText(k.effective.max_running)),
      el("td", { class: "retry-now" }, k.effective.retry.max_retries + " × " + k.effective.retry.backoff_base_ms + " ms"
        + (k.effective.retry.jitter_percent ? " (+0-" + k.effective.retry.jitter_percent + "%)" : "")),
      el("td", { class: "window-now" }, windowText(k.effective.window)),
      el("td", {}, k.stored ? "stored" : el("span", { class: "muted" }, "this process's")),
      el("td", {}, forms));
  });
  main.replaceChildren(el("h1", {}, "Kinds"),
    el("p", { class: "muted" }, "Stored settings outlive restarts and hold for every process on the data directory; booster kind shows and changes them too."),
    el("table", { id: "kinds" },
      el("thead", {}, el("tr", {}, el("th", {}, "Kind"), el("th", {}, "Handler here"), el("th", {}, "Running limit"),
        el("th", {}, "Retries"), el("th", {}, "Window"), el("th", {}, "Settings"), el("th", {}, "Change"))),
      el("tbody", {}, rows)));
}

// Dirmon entries (`GET /api/dirmons`), paused, resumed or removed here
// as `booster dirmon` does; entries are added where their paths are
// known (the CLI, or `POST /api/dirmons`).
async function dirmonPage() {
  const current = pageGuard();
  let data;
  try { data = await api("GET", "/api/dirmons"); } catch (e) { return current() && showError(e); }
  if (!current()) return;
  const msg = el("p", { class: "msg", id: "entry-msg" });
  main.replaceChildren(el("h1", {}, "Dirmon"), msg,
    data.dirmons.length === 0
      ? el("p", { class: "muted" }, "No dirmon entries. booster dirmon add --pattern 'DIR/*.csv' --archive DONE --kind copy adds one.")
      : el("table", { id: "dirmons" },
        el("thead", {}, el("tr", {}, el("th", { class: "num" }, "Id"), el("th", {}, "Pattern"), el("th", {}, "Archive"),
          el("th", { class: "num" }, "Settle"), el("th", {}, "Job options"), el("th", {}, "State"), el("th", {}, "Change"))),
        el("tbody", {}, data.dirmons.map((d) => el("tr", { "data-id": d.id },
          el("td", { class: "num" }, String(d.id)),
          el("td", { class: "expr" }, d.spec.pattern),
          el("td", {}, d.spec.archive),
          el("td", { class: "num" }, d.spec.settle_ms + " ms"),
          el("td", { class: "expr" }, d.spec.options.join(" ")),
          el("td", {}, d.paused ? "paused" : "active"),
          el("td", {}, entryActions("dirmons", d, "dirmon", msg, () => current() && dirmonPage())))))));
}

window.addEventListener("hashchange", route);
startEvents();
route();
