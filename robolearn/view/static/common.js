// robolearn view: helpers shared by the store, episode and run pages (no framework, no network but our server).
"use strict";

const RL = {};

RL.getJSON = async function (url) {
  const r = await fetch(url, { cache: "no-cache" });
  const body = await r.json().catch(() => ({ error: `${url}: HTTP ${r.status}` }));
  if (!r.ok || body.error) throw new Error(body.error || `${url}: HTTP ${r.status}`);
  return body;
};

RL.esc = function (s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
};

RL.fmt = function (v, digits = 3) {
  if (v === null || v === undefined) return "\u2013";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return v.toFixed(a >= 100 ? 1 : digits);
};

RL.el = function (tag, attrs = {}, html = "") {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (html) e.innerHTML = html;
  return e;
};

RL.showError = function (where, err) {
  const box = RL.el("p", { class: "error" }, RL.esc(err.message || err));
  where.prepend(box);
  console.error(err);
};

RL.header = function (active, info) {
  const h = document.querySelector("header");
  const links = [];
  if (info.store) links.push(`<a href="/store" ${active === "store" ? 'style="color:#fff"' : ""}>store</a>`);
  if (info.run) links.push(`<a href="/run" ${active === "run" ? 'style="color:#fff"' : ""}>run</a>`);
  if (info.live) links.push(`<a href="/live" ${active === "live" ? 'style="color:#fff"' : ""}>live</a>`);
  h.innerHTML = `<span class="brand">robolearn view</span>${links.join(" ")}<span class="path">${RL.esc(info.path || "")}</span>`;
};

// Distinct colours for the dimensions of a stream (tab10).
RL.COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
RL.colour = (i) => RL.COLOURS[i % RL.COLOURS.length];

// A uPlot line chart: x values, then [{label, values, dash}] series. Returns the uPlot instance.
RL.lineChart = function (target, x, series, opts = {}) {
  const width = Math.max(300, (opts.width || target.clientWidth || 800) - 10);
  const o = {
    width, height: opts.height || 170,
    scales: { x: { time: false }, y: opts.log ? { distr: 3 } : {} },
    axes: [{ label: opts.xlabel || "" }, { size: 64, values: (u, vals) => vals.map((v) => RL.fmt(v)) }],
    legend: { show: series.length <= 16 },
    series: [{ label: opts.xlabel || "x" }].concat(series.map((s, i) => ({
      label: s.label, stroke: s.colour || RL.colour(i), width: 1.2, dash: s.dash, spanGaps: !!s.spanGaps,
      points: { show: !!s.points },
    }))),
    cursor: { drag: { x: true, y: false } },
    hooks: opts.hooks || {},
  };
  return new uPlot(o, [x, ...series.map((s) => s.values)], target);
};

// A histogram on a small canvas: counts over edges (numbers), with min/max printed under it.
RL.histogram = function (target, title, h, w = 180, ht = 70) {
  const box = RL.el("div", { class: "hist" });
  box.appendChild(RL.el("div", { class: "title" }, RL.esc(title)));
  const c = RL.el("canvas", { width: w, height: ht });
  box.appendChild(c);
  const foot = h.count ? `${RL.fmt(h.min)} \u2026 ${RL.fmt(h.max)} &nbsp; \u03bc ${RL.fmt(h.mean)} \u03c3 ${RL.fmt(h.std)}` : "no finite values";
  box.appendChild(RL.el("div", { class: "title" }, foot));
  target.appendChild(box);
  if (!h.count) return box;
  const g = c.getContext("2d");
  const max = Math.max(...h.counts, 1);
  const bw = w / h.counts.length;
  g.fillStyle = "#2a6fdb";
  h.counts.forEach((n, i) => {
    const bh = (n / max) * (ht - 2);
    g.fillRect(i * bw, ht - bh, Math.max(1, bw - 1), bh);
  });
  return box;
};
