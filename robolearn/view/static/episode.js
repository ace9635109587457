// The episode page: every camera on one frame cursor, the low-dim streams plotted under it, the timestamps.
// Frames are fetched by index (/api/episodes/<e>/frame/<key>/<i>) and drawn on canvases: exact, never a video seek.
"use strict";

const CACHE_FRAMES = 600;  // images kept per camera
const READ_AHEAD = 12;     // frames requested ahead of the cursor while playing

const EP = {
  ep: Number(location.pathname.split("/").pop()), d: null, cursor: 0, playing: false, speed: 1,
  images: {}, canvases: {}, drawn: {}, plots: {}, lastStep: 0, ready: false,
};
window.RV = EP;

function frameURL(key, i) {
  return `/api/episodes/${EP.ep}/frame/${key.split("/").map(encodeURIComponent).join("/")}/${i}`;
}

// The cached image of frame i of `key` ({img, ready, promise}); requested once.
function image(key, i) {
  const cache = EP.images[key];
  let entry = cache.get(i);
  if (entry) return entry;
  const img = new Image();
  entry = { img, ready: false };
  entry.promise = new Promise((resolve, reject) => {
    img.onload = () => { entry.ready = true; resolve(img); };
    img.onerror = () => { cache.delete(i); reject(new Error(`frame ${i} of ${key} did not load`)); };
  });
  entry.promise.catch(() => {});
  img.src = frameURL(key, i);
  cache.set(i, entry);
  if (cache.size > CACHE_FRAMES) {  // forget the frames farthest from the cursor
    const far = [...cache.keys()].sort((a, b) => Math.abs(b - EP.cursor) - Math.abs(a - EP.cursor));
    for (const k of far.slice(0, cache.size - CACHE_FRAMES)) cache.delete(k);
  }
  return entry;
}

function draw(key, i) {
  const entry = image(key, i);
  entry.promise.then((img) => {
    if (EP.cursor !== i) return;  // the cursor moved on meanwhile
    const c = EP.canvases[key];
    if (c.width !== img.naturalWidth || c.height !== img.naturalHeight) {
      c.width = img.naturalWidth; c.height = img.naturalHeight;
      const h = img.naturalHeight, scale = h < 240 ? Math.max(1, Math.floor(240 / h)) : 240 / h;
      c.style.width = `${img.naturalWidth * scale}px`; c.style.height = `${h * scale}px`;
    }
    c.getContext("2d").drawImage(img, 0, 0);
    c.dataset.index = String(i);
    EP.drawn[key] = i;
  }, () => {});
}

function allReady(i) {
  return Object.keys(EP.images).every((k) => image(k, i).ready);
}

function moveCursorLines() {
  for (const u of Object.values(EP.plots)) {
    const line = u.root.querySelector(".cursorline");
    const x = u.valToPos(EP.cursor, "x");
    line.style.left = `${x}px`;
    line.style.display = x >= 0 && x <= u.over.clientWidth ? "" : "none";
  }
}

function setFrame(i) {
  const n = EP.d.length;
  i = Math.max(0, Math.min(n - 1, Math.round(i)));
  EP.cursor = i;
  document.getElementById("scrubber").value = String(i);
  const ts = EP.d.timestamps[EP.refKey];
  const t = ts ? ts.t[i] : i / EP.d.fps;
  document.getElementById("pos").textContent = `frame ${i} / ${n - 1}   t = ${t.toFixed(3)} s`;
  for (const key of Object.keys(EP.images)) draw(key, i);
  moveCursorLines();
}

function play(on) {
  EP.playing = on;
  document.getElementById("play").textContent = on ? "pause" : "play";
  if (on) {
    if (EP.cursor >= EP.d.length - 1) setFrame(0);
    EP.lastStep = performance.now();
    requestAnimationFrame(tick);
  }
}

// Playback: one frame per period at fps x speed, but only once every camera has that frame (in sync).
function tick(now) {
  if (!EP.playing) return;
  const period = 1000 / (EP.d.fps * EP.speed);
  const next = EP.cursor + 1;
  for (let j = next; j < Math.min(EP.d.length, next + READ_AHEAD); j++) for (const k of Object.keys(EP.images)) image(k, j);
  if (next >= EP.d.length) { play(false); return; }
  if (now - EP.lastStep >= period && allReady(next)) {
    EP.lastStep = now - EP.lastStep > 2 * period ? now : EP.lastStep + period;  // late: never burst
    setFrame(next);
  }
  requestAnimationFrame(tick);
}

function goEpisode(delta) {
  const e = EP.ep + delta;
  if (e >= 0 && e < EP.d.n_episodes) location.href = `/episode/${e}`;
}

function info(d) {
  const r = d.row;
  const success = r.success === 1 ? '<span class="yes">yes</span>' : r.success === 0 ? '<span class="no">no</span>' : "\u2013";
  const items = [
    ["episode", `${d.episode} <span class="muted">of ${d.n_episodes}</span>`], ["task", RL.esc(r.task || "\u2013")],
    ["success", success], ["status", `<span class="status-${r.status_name}">${r.status_name}</span>`],
    ["length", d.length], ["declared / achieved fps", `${RL.fmt(r.declared_fps, 1)} / ${r.achieved_fps > 0 ? RL.fmt(r.achieved_fps, 1) : "\u2013"}`],
    ["dropped / late", `${r.dropped_frames} / ${r.late_frames}`], ["missed / held ticks", `${r.missed_ticks} / ${r.held_ticks}`],
    ["actions", r.has_actions ? "yes" : '<span class="warn">none</span>'], ["source", RL.esc(r.source || "\u2013")],
    ["seed", r.seed],
  ];
  document.getElementById("info").innerHTML =
    items.map(([k, v]) => `<div class="card"><div class="k">${k}</div><div class="v">${v}</div></div>`).join("");
}

function cameras(d) {
  const box = document.getElementById("cams");
  const keys = Object.keys(d.frames);
  if (!keys.length) box.innerHTML = '<p class="muted">this store has no image, depth or tactile map keys</p>';
  for (const key of keys) {
    const fig = RL.el("div", { class: "cam", "data-key": key });
    fig.appendChild(RL.el("div", { class: "title" }, `${RL.esc(key)} <span class="muted">${d.frames[key]}</span>`));
    const c = RL.el("canvas", { width: 1, height: 1, "data-key": key });
    fig.appendChild(c);
    box.appendChild(fig);
    EP.canvases[key] = c;
    EP.images[key] = new Map();
  }
}

function addPlot(name, title, series, opts = {}) {
  const box = RL.el("div", { class: "plot", "data-plot": name });
  box.appendChild(RL.el("div", { class: "title" }, title));
  document.getElementById(opts.target || "plots").appendChild(box);
  const x = Array.from({ length: series[0].values.length }, (_, i) => i + (opts.x0 || 0));
  const u = RL.lineChart(box, x, series, { xlabel: "frame", height: opts.height, width: box.clientWidth,
    hooks: { setScale: [() => moveCursorLines()] } });
  const line = RL.el("div", { class: "cursorline" });
  u.over.appendChild(line);
  u.over.addEventListener("click", () => {
    if (u.select.width > 0) return;  // a drag to zoom, not a click
    const v = u.posToVal(u.cursor.left, "x");
    if (Number.isFinite(v)) setFrame(v);
  });
  EP.plots[name] = u;
  return u;
}

function plots(d) {
  const s = d.series;
  const dimLabel = (key, i, n) => (n === 1 ? key : `${key}[${i}]`);
  const lines = (key, dash) => s[key].values.map((v, i) => ({ label: dimLabel(key, i, s[key].dims) + (dash ? " (commanded)" : ""),
    values: v, colour: RL.colour(i), dash, spanGaps: false }));
  const done = new Set();
  if (s.action && s.action_commanded) {
    addPlot("action", "action: applied (solid) and commanded (dashed)", [...lines("action"), ...lines("action_commanded", [4, 3])]);
    done.add("action"); done.add("action_commanded");
  }
  const timing = Object.keys(s).filter((k) => s[k].kind === "timing");
  for (const key of Object.keys(s)) {
    if (done.has(key) || s[key].kind === "timing") continue;
    addPlot(key, RL.esc(key), lines(key));
  }
  if (timing.length) {
    addPlot("timing", "timing/*: when each stage happened on the tick, ms after the tick's action stamp (gaps: the stage did not run)",
      timing.map((k, i) => ({ label: k, values: s[k].values[0], colour: RL.colour(i), points: true })));
  }
}

function stamps(d) {
  const cols = [["key", "stream"], ["count", "frames"], ["mean_dt_ms", "mean \u0394t ms"], ["jitter_ms", "jitter ms"],
    ["p50_dt_ms", "p50 \u0394t"], ["p99_dt_ms", "p99 \u0394t"], ["max_dt_ms", "max \u0394t"], ["gaps", "gaps"],
    ["backwards", "backwards"], ["offset", "offset to reference ms"]];
  document.querySelector("#stamps thead").innerHTML = "<tr>" + cols.map(([k, l]) => `<th class="${k === "key" ? "text" : ""}">${l}</th>`).join("") + "</tr>";
  const rows = Object.entries(d.timestamps).map(([key, t]) => "<tr>" + cols.map(([k]) => {
    if (k === "key") return `<td class="text">${RL.esc(key)}</td>`;
    if (k === "offset") return `<td>${t.offset_to ? `${RL.fmt(t.offset_mean_ms)} \u00b1 ${RL.fmt(t.offset_std_ms)} <span class="muted">(${RL.esc(t.offset_to)})</span>` : "reference"}</td>`;
    const v = t[k];
    return `<td class="${(k === "gaps" || k === "backwards") && v ? "warn" : ""}">${RL.fmt(v)}</td>`;
  }).join("") + "</tr>");
  document.querySelector("#stamps tbody").innerHTML = rows.join("");
  if (d.length < 2) return;
  const series = Object.entries(d.timestamps).map(([key, t], i) => ({
    label: key, colour: RL.colour(i), values: t.t.slice(1).map((v, j) => (v - t.t[j]) * 1000),
  }));
  addPlot("dt", "interval to the previous frame, ms, per stream", series, { target: "dtplot", x0: 1 });
}

function keys(ev) {
  if (ev.target.tagName === "INPUT" && ev.target.type !== "range") return;
  if (ev.target.tagName === "SELECT") return;
  const step = ev.shiftKey ? 10 : 1;
  const k = ev.key;
  if (k === "ArrowRight") setFrame(EP.cursor + step);
  else if (k === "ArrowLeft") setFrame(EP.cursor - step);
  else if (k === " ") play(!EP.playing);
  else if (k === "Home") setFrame(0);
  else if (k === "End") setFrame(EP.d.length - 1);
  else if (k === "]" || k === "PageDown" || k === "n") goEpisode(1);
  else if (k === "[" || k === "PageUp" || k === "p") goEpisode(-1);
  else return;
  ev.preventDefault();
}

async function main() {
  const d = await RL.getJSON(`/api/episodes/${EP.ep}`);
  EP.d = d;
  EP.refKey = ["action", "state"].find((k) => d.timestamps[k]) || Object.keys(d.timestamps)[0];
  RL.header("episode", { store: true, run: false, path: `episode ${d.episode}` });
  RL.getJSON("/api/store").then((s) => RL.header("episode", { store: true, run: s.run, live: s.live, path: `${s.path} \u00b7 episode ${d.episode}` })).catch(() => {});
  document.title = `robolearn view: episode ${d.episode}`;
  info(d);
  cameras(d);
  plots(d);
  stamps(d);
  const scrub = document.getElementById("scrubber");
  scrub.max = String(d.length - 1);
  scrub.addEventListener("input", () => setFrame(Number(scrub.value)));
  document.getElementById("play").addEventListener("click", () => play(!EP.playing));
  document.getElementById("step-back").addEventListener("click", () => setFrame(EP.cursor - 1));
  document.getElementById("step-fwd").addEventListener("click", () => setFrame(EP.cursor + 1));
  document.getElementById("prev-ep").addEventListener("click", () => goEpisode(-1));
  document.getElementById("next-ep").addEventListener("click", () => goEpisode(1));
  document.getElementById("prev-ep").disabled = d.episode === 0;
  document.getElementById("next-ep").disabled = d.episode === d.n_episodes - 1;
  document.getElementById("speed").addEventListener("input", (ev) => { EP.speed = Number(ev.target.value); });
  document.addEventListener("keydown", keys);
  const start = Number(new URLSearchParams(location.search).get("frame") || 0);
  setFrame(start);
  EP.ready = true;
}

main().catch((err) => RL.showError(document.querySelector("main"), err));
