// Booster dashboard: charts, drawn by uPlot (served from the binary as
// /assets/uPlot.min.js). The history page (records and jobs processed and
// failed per minute, from GET /api/history) and a running job's
// throughput. Loaded before app.js; the same safety rule holds: uPlot
// draws on a canvas, and every label it gets is set as text.
"use strict";

const COLORS = { ok: "#3a7be0", bad: "#c03030", done: "#1f8a4c" };

// A chart of `series` ({label, color}) over times in seconds, inside
// `node`, as wide as the page. `bars`: each series as bars side by side
// (counts per minute); otherwise lines. The time axis spans at least
// `minSpanS` seconds, so a single point does not stretch it over years.
function chart(node, title, series, data, bars, minSpanS) {
  const width = Math.max(320, Math.min(1180, (main.clientWidth || 900) - 40));
  const barPaths = (i) => uPlot.paths.bars({ size: [0.8 / series.length, 40], align: i === 0 ? -1 : 1 });
  const opts = {
    title, width, height: 220,
    scales: { x: { time: true, range: (u, min, max) => [Math.min(min, max - minSpanS), max + minSpanS / 60] },
      y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: s.color, width: bars ? 1 : 2,
      fill: bars ? s.color + "99" : undefined, paths: bars ? barPaths(i) : undefined, points: { show: !bars },
      value: (u, v) => (v === null || v === undefined ? "-" : fmtInt(Math.round(v))) }))],
    axes: [{}, { values: (u, ticks) => ticks.map((v) => fmtInt(v)), size: 70 }],
  };
  return new uPlot(opts, data, node);
}
const plural = (n, noun) => fmtInt(n) + " " + noun + (n === 1 ? "" : "s");

// The last hour and the last day, per minute, as the server counted them.
// It keeps them in memory: after a restart the history starts empty.
async function historyPage() {
  const current = pageGuard();
  const charts = [];
  const sections = {};
  for (const range of ["hour", "day"]) {
    sections[range] = {
      records: el("div", { class: "chart", id: "chart-" + range + "-records" }),
      jobs: el("div", { class: "chart", id: "chart-" + range + "-jobs" }),
      totals: el("p", { class: "muted totals", id: "totals-" + range }),
    };
  }
  main.replaceChildren(el("h1", {}, "History"),
    el("p", { class: "muted" }, "Per minute, as this server counted them since it started (the history restarts empty)."),
    ...["hour", "day"].flatMap((range) => [
      el("h2", {}, range === "hour" ? "Last hour" : "Last day"),
      sections[range].totals,
      el("div", { class: "card" }, sections[range].records, sections[range].jobs)]));
  const sum = (xs) => xs.reduce((a, v) => a + (v || 0), 0);
  async function refresh() {
    for (const range of ["hour", "day"]) {
      let h;
      try { h = await api("GET", "/api/history?range=" + range); } catch (e) { return current() && showError(e); }
      if (!current()) return;
      const xs = h.minute_ms.map((ms) => ms / 1000);
      const s = sections[range];
      s.totals.textContent = plural(sum(h.records_processed), "record") + " processed, " +
        fmtInt(sum(h.records_failed)) + " failed; " + plural(sum(h.jobs_completed), "job") + " completed, " +
        fmtInt(sum(h.jobs_failed)) + " failed";
      s.totals.dataset.recordsProcessed = String(sum(h.records_processed));
      s.totals.dataset.recordsFailed = String(sum(h.records_failed));
      s.totals.dataset.jobsCompleted = String(sum(h.jobs_completed));
      s.totals.dataset.jobsFailed = String(sum(h.jobs_failed));
      const recordsData = [xs, h.records_processed, h.records_failed];
      const jobsData = [xs, h.jobs_completed, h.jobs_failed];
      if (s.recordsChart) {
        s.recordsChart.setData(recordsData);
        s.jobsChart.setData(jobsData);
      } else {
        const span = xs.length * 60;
        s.recordsChart = chart(s.records, "Records per minute",
          [{ label: "processed", color: COLORS.ok }, { label: "failed", color: COLORS.bad }], recordsData, true, span);
        s.jobsChart = chart(s.jobs, "Jobs per minute",
          [{ label: "completed", color: COLORS.done }, { label: "failed", color: COLORS.bad }], jobsData, true, span);
        charts.push(s.recordsChart, s.jobsChart);
      }
    }
  }
  const timer = setInterval(refresh, 10000);
  pageCleanup = () => { clearInterval(timer); for (const c of charts) c.destroy(); };
  await refresh();
}

// The job page's throughput chart: records per second, as the server
// sampled the job each second while it ran (the last 15 minutes).
function throughputChart(id) {
  const node = el("div", { class: "chart", id: "throughput-chart" });
  const note = el("p", { class: "muted", id: "throughput-note" });
  const section = el("div", { class: "card", id: "throughput" }, note, node);
  let drawn = null;
  let data = [[], []];
  return {
    // Asks the server for the job's series (on every refresh of the page).
    async load() {
      try {
        const r = await api("GET", "/api/jobs/" + id + "/throughput");
        data = [r.t_ms.map((ms) => ms / 1000), r.records_per_s];
      } catch (_) { /* the page shows the job's own error */ }
    },
    section(job) {
      const points = data[0].length;
      section.hidden = job.state !== "running" && points === 0;
      note.textContent = points
        ? "Throughput of this job (records per second), sampled by the server each second while it runs."
        : "Throughput shows once the job has run for a few seconds.";
      section.dataset.points = String(points);
      section.dataset.maxRate = String(Math.max(0, ...data[1]));
      return section;
    },
    draw() {
      if (data[0].length < 2) return; // a curve needs two points
      if (drawn) drawn.setData(data);
      else drawn = chart(node, "Records per second", [{ label: "records/s", color: COLORS.ok }], data, false, 60);
    },
    destroy() { if (drawn) drawn.destroy(); drawn = null; },
  };
}
