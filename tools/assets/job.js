// Booster dashboard: the job page. Loaded before app.js, whose helpers
// (el, api, setBar, ...) it uses once the page starts. The same safety
// rule holds: server data goes into the page as text only.
"use strict";

const ERRORS_PAGE = 50; // error entries per page on the job page

async function jobPage(id) {
  let job;
  const msg = el("div", { class: "msg", id: "job-msg" });
  function say(text, ok) { msg.textContent = text; msg.className = "msg " + (ok ? "ok" : "err"); }
  // Built once and re-attached on every render, so paging through the
  // errors and the throughput chart survive the refreshes.
  const errors = errorsList(id);
  const throughput = throughputChart(id);

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

    // The server says what the state machine allows; the page never guesses.
    const allowed = (action) => (j.allowed_actions || []).includes(action);
    const button = (label, action, confirmText, cls) => el("button", {
      id: "action-" + action, class: cls, disabled: !allowed(action),
      onclick: () => act("/api/jobs/" + id + "/" + action, "POST", undefined, confirmText),
    }, label);
    const destroy = el("button", { id: "action-destroy", class: "danger", disabled: !allowed("destroy"),
      title: allowed("destroy") ? null : "A " + j.state + " job cannot be destroyed" + (j.state === "running" ? ": abort it first" : ""),
      onclick: () => {
        if (!window.confirm("Destroy job " + id + " and all its records? This cannot be undone.")) return;
        api("DELETE", "/api/jobs/" + id).then(() => { location.hash = "#/"; }, (e) => say(e.message, false));
      } }, "Destroy");

    // A simple job has no slices or records: only its times and attempts.
    const sliced = j.simple ? [] : [
      stat("Slices done", fmtInt(j.slices_done) + " / " + fmtInt(j.slices_total)),
      stat("Slices running", fmtInt(j.slices_running)),
      stat("Slices queued", fmtInt(j.slices_queued)),
      stat("Slices failed", fmtInt(j.slices_failed), j.slices_failed > 0 ? "bad" : null),
      stat("Records in", fmtInt(j.records_in)),
      stat("Records out", fmtInt(j.records_out)),
      ...Object.entries(j.records_out_by_category || {}).map(([name, n]) =>
        stat("Records out: " + name, fmtInt(n))),
      stat("Record errors", fmtInt(j.records_errors), j.records_errors > 0 ? "bad" : null),
      stat("Records failed", fmtInt(j.records_failed), j.records_failed > 0 ? "bad" : null),
      stat("Throughput", fmtInt(Math.round(j.records_per_s)) + " records/s"),
      stat("ETA", j.state === "running" ? fmtDuration(j.eta_s) : "-"),
      stat("Upload", j.upload_complete ? "complete" : "waiting for input")];
    const counts = el("div", { class: "grid" },
      ...sliced,
      stat("Created", fmtTime(j.created_at_ms), "time"),
      stat("Started", fmtTime(j.started_at_ms), "time"),
      stat("Finished", fmtTime(j.completed_at_ms), "time"),
      stat("Attempts", fmtInt(j.attempts)),
      j.window ? stat("Window", j.window.start + "-" + j.window.end + " " + (j.window.tz || "UTC")) : null,
      j.singleton ? stat("Singleton", j.singleton) : null,
      j.cron ? stat("Cron run", "entry " + j.cron.cron + ", tick " + fmtTime(j.cron.tick_ms), "time") : null);
    // Jobs this one waits for (links), and a simple job's result.
    const after = (j.after || []).length ? el("p", { id: "job-after" }, "After jobs ",
      j.after.map((a, i) => [i ? ", " : "", el("a", { href: "#/job/" + a }, String(a))]),
      " (if one does not complete, this job " + ({ fail: "fails", abort: "is aborted", run: "runs anyway" }[j.on_dependency_failure] || "fails") + ")") : null;
    const result = j.result !== null && j.result !== undefined
      ? el("div", { id: "job-result" }, el("h2", {}, "Result"), el("pre", { class: "record" }, JSON.stringify(j.result, null, 2)))
      : null;

    main.replaceChildren(
      el("p", {}, el("a", { href: "#/" }, "← all jobs")),
      el("h1", {}, "Job " + j.id + " ", stateBadge(j.state), " ", el("span", { class: "muted" }, j.kind)),
      el("div", { class: "card" },
        el("div", { class: "description", id: "job-description" }, j.description || "(no description)"),
        (j.details || []).length ? el("dl", { class: "details", id: "job-details" },
          j.details.map((d) => [el("dt", {}, d.label), el("dd", { class: "record" }, d.value)])) : null,
        j.failure_reason ? el("p", { class: "msg err" }, "Failed: " + j.failure_reason) : null,
        j.waiting_reason ? el("p", { class: "msg", id: "job-waiting" }, "Waiting: " + j.waiting_reason) : null,
        after,
        ...(j.damage || []).map((d) => el("p", { class: "msg err" }, "Damaged: " + d)),
        el("div", { class: "bar-wrap" }, progressBar(j, true)),
        (j.downloads || []).length ? el("div", { class: "downloads", id: "downloads" }, "Download: ",
          j.downloads.map((l) => downloadLink(l, j.id))) : null),
      el("div", { class: "card" },
        el("div", { class: "controls" },
          el("div", { class: "edit" }, el("label", { for: "priority-input" }, "Priority (1 first, 100 last)"), prio,
            el("button", { id: "priority-save", onclick: savePrio }, "Save")),
          el("div", { class: "edit" }, el("label", { for: "max-workers-input" }, "Max workers"), workers,
            el("button", { id: "max-workers-save", onclick: saveWorkers }, "Save")),
          el("div", { class: "edit" },
            button("Pause", "pause", "Pause job " + id + "?"),
            button("Resume", "resume", null),
            button("Retry", "retry", "Retry the failed work of job " + id + "?"),
            button("Abort", "abort", "Abort job " + id + "? Its unfinished slices will not run.", "danger"),
            destroy)),
        msg),
      el("div", { class: "card" }, counts),
      result,
      throughput.section(j),
      el("h2", {}, "Leases (" + j.leases.length + ")"),
      j.leases.length ? el("table", { id: "leases" },
        el("thead", {}, el("tr", {}, el("th", { class: "num" }, "Worker"), el("th", { class: "num" }, "Slice"),
          el("th", { class: "num" }, "Epoch"), el("th", {}, "Since"), el("th", {}, "Deadline"))),
        el("tbody", {}, j.leases.map((l) => el("tr", {},
          el("td", { class: "num" }, String(l.worker)), el("td", { class: "num" }, l.slice === null ? "-" : String(l.slice)),
          el("td", { class: "num" }, String(l.epoch)), el("td", {}, fmtTime(l.since_ms)), el("td", {}, fmtTime(l.deadline_ms))))))
        : el("p", { class: "empty" }, "No slice of this job is leased right now."),
      el("h2", {}, "Errors (" + fmtInt(j.records_failed) + ")"),
      ...(j.errors.length ? j.errors.map(errorGroup) : [el("p", { class: "empty" }, "No errors.")]),
      errors.section(j));
    throughput.draw();
  }

  const current = pageGuard();
  async function refresh() {
    let fresh;
    try { fresh = await api("GET", "/api/jobs/" + id); } catch (e) { return current() && showError(e); }
    if (!current()) return;
    job = fresh;
    await throughput.load();
    if (!current()) return;
    // Keep what the person is typing: re-render only when no editor has focus.
    const active = document.activeElement;
    if (active && (active.id === "priority-input" || active.id === "max-workers-input") && document.getElementById(active.id)) {
      const bar = main.querySelector(".bar");
      if (bar) setBar(bar, job.percent, job);
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
  pageCleanup = () => { clearInterval(timer); throughput.destroy(); };
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

// A link to one category's records. Behind a token a plain link cannot
// send it, so the click fetches with the token and saves what came back.
function downloadLink(l, jobId, idPrefix) {
  const name = "job-" + jobId + "-" + l.category + ".txt";
  const link = el("a", { href: l.href, class: "download", id: (idPrefix || "download-") + l.category, download: name,
    "data-category": l.category,
    onclick: (e) => {
      if (!token()) return;
      e.preventDefault();
      saveWithToken(l.href, name).catch((err) => window.alert("Download failed: " + err.message));
    } }, l.label + " (" + fmtInt(l.records) + ")");
  return [link, " "];
}

async function saveWithToken(href, name) {
  const resp = await fetch(href, { headers: authHeaders() });
  if (!resp.ok) throw new Error("HTTP " + resp.status);
  const url = URL.createObjectURL(await resp.blob());
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

// Every error of the job (the `errors` category), a page at a time, with
// the whole category to download.
function errorsList(id) {
  const body = el("tbody", {});
  const info = el("span", { class: "muted", id: "errors-range" });
  const prev = el("button", { id: "errors-prev", onclick: () => { offset = Math.max(0, offset - ERRORS_PAGE); load(); } }, "← Previous");
  const next = el("button", { id: "errors-next", onclick: () => { offset = nextOffset; load(); } }, "Next →");
  const exportLink = el("span", {});
  const section = el("div", { id: "errors-list" },
    el("h2", {}, "Every error"),
    el("div", { class: "pager" }, prev, info, next, exportLink),
    el("table", { id: "errors-table" },
      el("thead", {}, el("tr", {}, el("th", { class: "num" }, "Record #"), el("th", { class: "num" }, "Line"),
        el("th", {}, "Message"), el("th", {}, "Record"))),
      body));
  let offset = 0;
  let nextOffset = null;
  let failedSeen = -1;
  async function load() {
    let data;
    try { data = await api("GET", "/api/jobs/" + id + "/errors?offset=" + offset + "&limit=" + ERRORS_PAGE); } catch (e) {
      info.textContent = "Cannot load errors: " + e.message;
      return;
    }
    nextOffset = data.next_offset;
    body.replaceChildren(...data.errors.map((e) => el("tr", {},
      el("td", { class: "num" }, e.record_number === undefined ? "-" : fmtInt(e.record_number)),
      el("td", { class: "num" }, e.line === null || e.line === undefined ? "-" : fmtInt(e.line)),
      el("td", { class: "record" }, e.message || ""),
      el("td", { class: "record" }, e.record !== undefined ? e.record : e.record_base64 !== undefined ? "(binary) " + e.record_base64 : ""))));
    info.textContent = data.errors.length
      ? "Errors " + fmtInt(offset + 1) + "–" + fmtInt(offset + data.errors.length) + " of " + fmtInt(data.total)
      : "No errors.";
    prev.disabled = offset === 0;
    next.disabled = nextOffset === null || nextOffset === undefined;
  }
  return {
    // Re-attached on every render; reloads the page shown when the
    // failed count moved.
    section(job) {
      exportLink.replaceChildren(...(job.downloads || []).filter((l) => l.category === "errors")
        .map((l) => downloadLink({ ...l, label: "Export all errors" }, job.id, "export-")));
      if (job.records_failed !== failedSeen) { failedSeen = job.records_failed; load(); }
      section.hidden = job.records_failed === 0 && offset === 0;
      return section;
    },
  };
}
