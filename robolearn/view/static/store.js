// The store page: summary cards, the episode table (one API call: the meta/episodes columns), statistics.
"use strict";

const STORE = { data: null, order: [], sortKey: "index", sortDir: 1, rowHTML: [], tableMs: null };
window.RV_STORE = STORE;

// Table columns: key, header, width, cell formatter (returns [html, css class]).
const COLUMNS = [
  ["index", "#", "4em", (d, i) => [i, ""]],
  ["length", "length", "5em", (d, i) => [d.episodes.length[i], ""]],
  ["task", "task", "11em", (d, i) => [RL.esc(d.tasks[d.episodes.task_index[i]] ?? ""), "text"]],
  ["success", "success", "6.5em", (d, i) => {
    const s = d.episodes.success[i];
    return s === 1 ? ["yes", "yes"] : s === 0 ? ["no", "no"] : ["\u2013", "na"];
  }],
  ["status", "status", "7em", (d, i) => {
    const name = d.status_names[String(d.episodes.status[i])] ?? String(d.episodes.status[i]);
    return [name, `text status-${name}`];
  }],
  ["declared_fps", "declared fps", "8.5em", (d, i) => [RL.fmt(d.episodes.declared_fps[i], 1), ""]],
  ["achieved_fps", "achieved fps", "8.5em", (d, i) => {
    const a = d.episodes.achieved_fps[i], dec = d.episodes.declared_fps[i];
    const flagged = d.episodes.rate_flagged[i] || (a > 0 && dec > 0 && Math.abs(a - dec) / dec > 0.05);
    return [a > 0 ? RL.fmt(a, 1) : "\u2013", flagged ? "warn" : ""];
  }],
  ["dropped_frames", "dropped", "6.5em", (d, i) => [d.episodes.dropped_frames[i], d.episodes.dropped_frames[i] ? "warn" : "na"]],
  ["late_frames", "late", "4.5em", (d, i) => [d.episodes.late_frames[i], d.episodes.late_frames[i] ? "warn" : "na"]],
  ["missed_ticks", "missed ticks", "8.5em", (d, i) => [d.episodes.missed_ticks[i], d.episodes.missed_ticks[i] ? "warn" : "na"]],
  ["held_ticks", "held ticks", "7.5em", (d, i) => [d.episodes.held_ticks[i], d.episodes.held_ticks[i] ? "warn" : "na"]],
  ["has_actions", "actions", "5.5em", (d, i) => d.episodes.has_actions[i] ? ["yes", ""] : ["none", "warn"]],
  ["source", "source", "7em", (d, i) => [RL.esc(d.sources[d.episodes.source_index[i]] ?? ""), "text"]],
  ["seed", "seed", "4.5em", (d, i) => [d.episodes.seed[i] >= 0 ? d.episodes.seed[i] : "\u2013", ""]],
];

function sortValue(d, key, i) {
  if (key === "index") return i;
  if (key === "task") return d.tasks[d.episodes.task_index[i]] ?? "";
  if (key === "source") return d.sources[d.episodes.source_index[i]] ?? "";
  const v = d.episodes[key][i];
  return typeof v === "boolean" ? Number(v) : v;
}

function buildRows(d) {
  STORE.rowHTML = new Array(d.n_episodes);
  for (let i = 0; i < d.n_episodes; i++) {
    let h = `<div class="row" role="row" data-ep="${i}">`;
    for (const [, , , f] of COLUMNS) {
      const [v, cls] = f(d, i);
      h += cls ? `<div class="${cls}">${v}</div>` : `<div>${v}</div>`;
    }
    STORE.rowHTML[i] = h + "</div>";
  }
}

function matches(d, i, f) {
  const e = d.episodes;
  if (f.status !== "" && String(e.status[i]) !== f.status) return false;
  if (f.success !== "" && String(e.success[i]) !== f.success) return false;
  if (f.actions !== "" && Number(e.has_actions[i]) !== Number(f.actions)) return false;
  if (f.problems && !(e.dropped_frames[i] > 0 || e.late_frames[i] > 0)) return false;
  if (f.text) {
    const t = ((d.tasks[e.task_index[i]] ?? "") + " " + (d.sources[e.source_index[i]] ?? "")).toLowerCase();
    if (!t.includes(f.text)) return false;
  }
  return true;
}

function render() {
  const d = STORE.data;
  const f = {
    text: document.getElementById("f-text").value.trim().toLowerCase(),
    status: document.getElementById("f-status").value,
    success: document.getElementById("f-success").value,
    actions: document.getElementById("f-actions").value,
    problems: document.getElementById("f-problems").checked,
  };
  const idx = [];
  for (let i = 0; i < d.n_episodes; i++) if (matches(d, i, f)) idx.push(i);
  const key = STORE.sortKey, dir = STORE.sortDir;
  if (key !== "index" || dir !== 1) {
    const vals = idx.map((i) => sortValue(d, key, i));
    const pos = idx.map((_, j) => j);
    pos.sort((a, b) => (vals[a] < vals[b] ? -dir : vals[a] > vals[b] ? dir : idx[a] - idx[b]));
    STORE.order = pos.map((j) => idx[j]);
  } else {
    STORE.order = idx;
  }
  document.querySelector("#episodes .body").innerHTML = STORE.order.map((i) => STORE.rowHTML[i]).join("");
  document.getElementById("shown").textContent = `${STORE.order.length} of ${d.n_episodes}`;
  document.querySelectorAll("#episodes .head > div").forEach((th) => {
    th.classList.toggle("sorted-asc", th.dataset.key === key && dir === 1);
    th.classList.toggle("sorted-desc", th.dataset.key === key && dir === -1);
  });
}

function cards(d) {
  const e = d.episodes;
  let ok = 0, defined = 0;
  for (const s of e.success) { if (s >= 0) { defined++; ok += s === 1; } }
  const keys = Object.entries(d.features).map(([k, f]) => `${RL.esc(k)} <span class="muted">${f.shape.join("\u00d7") || "scalar"} ${f.dtype}${f.codec === "jpeg" ? " jpeg" : ""}</span>`);
  const items = [
    ["episodes", d.n_episodes], ["frames", d.n_frames], ["fps", RL.fmt(d.fps, 1)],
    ["duration", d.fps > 0 ? `${RL.fmt(d.n_frames / d.fps / 60, 1)} min` : "\u2013"],
    ["success", defined ? `${RL.fmt((100 * ok) / defined, 1)} %` : "\u2013"],
    ["tasks", d.tasks.length], ["schema", d.version], ["env", RL.esc(d.env_id || "\u2013")],
  ];
  document.getElementById("cards").innerHTML =
    items.map(([k, v]) => `<div class="card"><div class="k">${k}</div><div class="v">${v}</div></div>`).join("") +
    `<div class="card"><div class="k">keys</div><div>${keys.join("<br>")}</div></div>`;
}

async function loadStats() {
  const box = document.getElementById("stats");
  try {
    const s = await RL.getJSON("/api/stats");
    box.className = "";
    box.innerHTML = "";
    const status = Object.entries(s.status).map(([k, v]) => `${k} ${v}`).join(", ");
    const tasks = Object.entries(s.tasks).map(([k, v]) => `${RL.esc(k || "(none)")}: ${v}`).join(", ");
    box.appendChild(RL.el("p", {}, `status: ${status}<br>episodes per task: ${tasks}` +
      (s.sampled_rows ? `<br><span class="muted">histograms from ${s.sampled_rows} sampled rows</span>` : "")));
    const eh = RL.el("div", { class: "hists" });
    for (const [k, h] of Object.entries(s.episode_hists)) RL.histogram(eh, `episode ${k}`, h);
    box.appendChild(eh);
    for (const [key, ks] of Object.entries(s.keys)) {
      box.appendChild(RL.el("h2", {}, RL.esc(key)));
      const row = RL.el("div", { class: "hists", "data-key": key });
      if (ks.dims) ks.dims.forEach((h, i) => RL.histogram(row, `${key}[${i}]`, h));
      else if (ks.stored) row.appendChild(RL.el("p", { class: "muted" },
        `stored per-channel mean ${ks.stored.mean.map((v) => RL.fmt(v)).join(", ")}; std ${ks.stored.std.map((v) => RL.fmt(v)).join(", ")}`));
      box.appendChild(row);
    }
    window.RV_STATS = s;
  } catch (err) {
    RL.showError(box, err);
  }
}

async function main() {
  STORE.marks = { start: performance.now() };
  const d = await RL.getJSON("/api/store");
  STORE.marks.api = performance.now();
  STORE.data = d;
  RL.header("store", { store: true, run: d.run, live: d.live, path: d.path });
  document.title = `robolearn view: ${d.path}`;
  cards(d);
  const statusSel = document.getElementById("f-status");
  for (const [code, name] of Object.entries(d.status_names)) statusSel.appendChild(RL.el("option", { value: code }, name));
  const grid = document.getElementById("episodes");
  grid.style.setProperty("--cols", COLUMNS.map((c) => c[2]).join(" "));
  grid.querySelector(".head").innerHTML = COLUMNS.map(([k, label]) =>
    `<div role="columnheader" data-key="${k}" class="${k === "task" || k === "source" || k === "status" ? "text" : ""}">${label}</div>`).join("");
  buildRows(d);
  STORE.marks.built = performance.now();
  render();
  STORE.tableMs = performance.now();  // ms since navigation started: the last row is in the DOM
  requestAnimationFrame(() => requestAnimationFrame(() => {
    STORE.paintedMs = performance.now();
    setTimeout(loadStats, 0);  // statistics read the data: only once the table is on screen
  }));
  grid.querySelector(".head").addEventListener("click", (ev) => {
    const th = ev.target.closest("[data-key]");
    if (!th) return;
    STORE.sortDir = STORE.sortKey === th.dataset.key ? -STORE.sortDir : 1;
    STORE.sortKey = th.dataset.key;
    render();
  });
  grid.querySelector(".body").addEventListener("click", (ev) => {
    const tr = ev.target.closest(".row");
    if (tr) location.href = `/episode/${tr.dataset.ep}`;
  });
  for (const id of ["f-text", "f-status", "f-success", "f-problems", "f-actions"])
    document.getElementById(id).addEventListener("input", render);
}

main().catch((err) => RL.showError(document.querySelector("main"), err));
