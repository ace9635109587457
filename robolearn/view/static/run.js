// The run page: training curves from metrics.jsonl, the run's config, its evaluations with per-episode videos.
"use strict";

const RUN = { d: null, plots: {} };
window.RV_RUN = RUN;

function curve(name, title, x, series, log) {
  const box = RL.el("div", { class: "plot", "data-plot": name });
  box.appendChild(RL.el("div", { class: "title" }, title));
  document.getElementById("curves").appendChild(box);
  RUN.plots[name] = RL.lineChart(box, x, series, { xlabel: "step", log, width: box.clientWidth, height: 220 });
}

function curves(m) {
  const steps = m.step || [];
  const box = document.getElementById("curves");
  if (!steps.length) { box.innerHTML = '<p class="muted">no metrics.jsonl records</p>'; return; }
  const losses = Object.keys(m).filter((k) => k === "loss" || k.endsWith("_loss"));
  const positive = (k) => m[k].every((v) => v === null || v > 0);
  if (losses.length) {
    curve("loss", "loss (log scale where every value is positive)", steps,
      losses.map((k, i) => ({ label: k, values: m[k], colour: RL.colour(i), spanGaps: true, points: k !== "loss" })),
      losses.every(positive));
  }
  for (const k of Object.keys(m)) {
    if (k === "step" || losses.includes(k)) continue;
    curve(k, RL.esc(k), steps, [{ label: k, values: m[k], spanGaps: true, points: m[k].filter((v) => v !== null).length < 50 }], false);
  }
}

function summary(d) {
  const s = d.summary || {};
  const cfg = d.config || {};
  const policy = cfg.policy || cfg.name || (cfg.experiment && cfg.experiment.policy) || "\u2013";
  const items = [["run", RL.esc(d.name)], ["policy", RL.esc(typeof policy === "string" ? policy : JSON.stringify(policy))],
    ["env", RL.esc(cfg.env_id || "\u2013")], ["steps", RL.fmt(s.steps)], ["final loss", RL.fmt(s.final_loss)],
    ["val loss", RL.fmt(s.val_loss)], ["samples/s", RL.fmt(s.samples_per_s, 1)],
    ["store", d.store ? (d.has_store ? `<a href="/store">${RL.esc(d.store)}</a>` : RL.esc(d.store)) : "\u2013"]];
  document.getElementById("summary").innerHTML =
    items.map(([k, v]) => `<div class="card"><div class="k">${k}</div><div class="v">${v}</div></div>`).join("");
}

function evaluation(ev, n) {
  const box = RL.el("div", { class: "evaluation", "data-folder": ev.folder });
  const ci = ev.ci95 ? ` [${RL.fmt(100 * ev.ci95[0], 0)}, ${RL.fmt(100 * ev.ci95[1], 0)}]` : "";
  box.appendChild(RL.el("p", {}, `<b>${RL.esc(ev.folder === "." ? "this folder" : ev.folder)}</b>: ` +
    `success ${RL.fmt(100 * ev.success_rate, 1)} %${ci} over ${ev.n_episodes} episodes on ${RL.esc(ev.env_id || ev.env || "")}` +
    `, mean length ${RL.fmt(ev.mean_length, 1)}, mean reward ${RL.fmt(ev.mean_reward)}` +
    (ev.tiled_url ? ` &middot; <a href="${ev.tiled_url}" target="_blank">tiled rollouts.mp4</a>` : "")));
  const grid = RL.el("div", { class: "evalgrid" });
  const wrap = RL.el("div", { class: "tablewrap", style: "max-height:60vh" });
  const table = RL.el("table", { class: "eval-episodes" });
  table.innerHTML = "<thead><tr><th>#</th><th>seed</th><th>success</th><th>length</th><th>reward</th><th>video</th></tr></thead>";
  const body = RL.el("tbody");
  (ev.episodes || []).forEach((e, i) => {
    const tr = RL.el("tr", { "data-episode": i },
      `<td>${i}</td><td>${e.seed}</td><td class="${e.success ? "yes" : "no"}">${e.success ? "yes" : "no"}</td>` +
      `<td>${e.length}</td><td>${RL.fmt(e.reward)}</td><td>${e.video_url ? "\u25B6" : '<span class="na">\u2013</span>'}</td>`);
    if (e.video_url) tr.dataset.video = e.video_url;
    body.appendChild(tr);
  });
  table.appendChild(body);
  wrap.appendChild(table);
  const player = RL.el("div", {});
  const video = RL.el("video", { controls: "", loop: "", muted: "", playsinline: "", id: `video-${n}`, width: "480" });
  const caption = RL.el("div", { class: "muted" });
  player.appendChild(video);
  player.appendChild(caption);
  grid.appendChild(wrap);
  grid.appendChild(player);
  box.appendChild(grid);
  const select = (tr) => {
    body.querySelectorAll("tr").forEach((r) => r.classList.toggle("selected", r === tr));
    video.src = tr.dataset.video;
    caption.textContent = `episode ${tr.dataset.episode}: ${tr.dataset.video.split("/").pop()}`;
  };
  body.addEventListener("click", (evt) => {
    const tr = evt.target.closest("tr");
    if (tr && tr.dataset.video) select(tr);
  });
  const first = body.querySelector("tr[data-video]");
  if (first) select(first); else { video.remove(); caption.textContent = "no per-episode rollout videos in this evaluation"; }
  return box;
}

async function main() {
  const d = await RL.getJSON("/api/run");
  RUN.d = d;
  RL.header("run", { store: d.has_store, run: true, live: d.live, path: d.path });
  document.title = `robolearn view: ${d.name}`;
  summary(d);
  curves(d.metrics);
  const evals = document.getElementById("evals");
  if (!d.evaluations.length) evals.innerHTML = '<p class="muted">no evaluation yet (robolearn eval --checkpoint RUN)</p>';
  d.evaluations.forEach((ev, n) => evals.appendChild(evaluation(ev, n)));
  document.getElementById("config").textContent = d.config ? JSON.stringify(d.config, null, 2) : "(no config.json)";
  RUN.ready = true;
}

main().catch((err) => RL.showError(document.querySelector("main"), err));
