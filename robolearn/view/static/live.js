// The live page: a running loop's cameras, episode state, timing and events; its episode keys as buttons.
// Polls /api/live; each camera's newest frame is fetched (JPEG) only when its sequence number moved on.
"use strict";

const LIVE = { snap: null, drawn: {}, inflight: {}, sent: [], ready: false, polls: 0 };
window.RV_LIVE = LIVE;
const POLL_MS = 200;
const KEYMAP = { s: "save", Enter: "save", d: "discard", Backspace: "discard", r: "rerecord", q: "quit", Escape: "quit", t: "takeover" };

async function press(key) {
  const r = await fetch(`/api/live/key/${key}`, { method: "POST", headers: { "X-Robolearn-Live": "1" } });
  const body = await r.json().catch(() => ({}));
  const sent = document.getElementById("sent");
  if (!r.ok) { sent.textContent = body.error || `HTTP ${r.status}`; sent.className = "error"; return; }
  LIVE.sent.push(body.queued);
  sent.className = "muted";
  sent.textContent = `sent: ${body.queued} (${new Date().toLocaleTimeString()})`;
}

function buildKeys(snap) {
  const box = document.getElementById("keys");
  if (box.childElementCount) return;
  for (const { key, label } of snap.keys) {
    const b = RL.el("button", { id: `key-${key}`, class: `episode-key key-${key}`, "data-key": key }, RL.esc(label));
    b.addEventListener("click", () => press(key));
    box.appendChild(b);
  }
  document.addEventListener("keydown", (ev) => {
    if (ev.target.tagName === "INPUT" || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const key = KEYMAP[ev.key];
    if (key && snap.keys.some((k) => k.key === key)) { ev.preventDefault(); press(key); }
  });
}

function cards(s) {
  const t = s.timing;
  const items = [
    ["session", RL.esc(s.title)], ["phase", RL.esc(s.phase)],
    ["episode", s.episode === null ? "\u2013" : s.episode], ["seed", s.seed ?? "\u2013"],
    ["frames", s.frames], ["saved", s.saved], ["ticks", s.ticks],
    ["missed ticks", `<span class="${s.missed_ticks ? "warn" : ""}">${s.missed_ticks}</span>`],
    ["rate", `${RL.fmt(t.achieved_hz, 1)} / ${RL.fmt(s.fps, 1)} Hz`],
  ];
  if (s.task) items.splice(2, 0, ["task", RL.esc(s.task)]);
  document.getElementById("cards").innerHTML = items.map(([k, v]) =>
    `<div class="card"><div class="k">${k}</div><div class="v" data-card="${k}">${v}</div></div>`).join("");
}

async function drawFrame(key) {
  LIVE.inflight[key] = true;
  try {
    const r = await fetch(`/api/live/frame/${key}`, { cache: "no-store" });
    if (!r.ok) return;
    const meta = { seq: +r.headers.get("X-Frame-Seq"), episode: +r.headers.get("X-Frame-Episode"),
                   frame: +r.headers.get("X-Frame-Frame") };
    const bmp = await createImageBitmap(await r.blob());
    let c = document.querySelector(`canvas[data-key='${key}']`);
    if (!c) {
      const cams = document.getElementById("cams");
      if (!cams.querySelector(".cam")) cams.innerHTML = "";
      const box = RL.el("div", { class: "cam" });
      box.appendChild(RL.el("div", { class: "title" }, RL.esc(key)));
      c = RL.el("canvas", { "data-key": key });
      box.appendChild(c);
      box.appendChild(RL.el("div", { class: "title", "data-pos": key }));
      cams.appendChild(box);
    }
    if (c.width !== bmp.width || c.height !== bmp.height) {
      c.width = bmp.width; c.height = bmp.height;
      const scale = Math.max(1, Math.floor(320 / Math.max(bmp.width, bmp.height)));
      c.style.width = `${bmp.width * scale}px`; c.style.height = `${bmp.height * scale}px`;
    }
    c.getContext("2d").drawImage(bmp, 0, 0);
    bmp.close();
    document.querySelector(`[data-pos='${key}']`).textContent = `episode ${meta.episode} \u00b7 frame ${meta.frame}`;
    LIVE.drawn[key] = meta;
  } finally {
    LIVE.inflight[key] = false;
  }
}

function lateness(t) {
  const h = t.lateness_ms;
  document.getElementById("late-summary").textContent = h.n ?
    `p50 ${RL.fmt(h.p50)} ms \u00b7 p99 ${RL.fmt(h.p99)} ms \u00b7 max ${RL.fmt(h.max)} ms over the last ${h.n} ticks` : "";
  const c = document.getElementById("lateness");
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const n = h.counts.length, bw = c.width / n, top = Math.max(1, ...h.counts), base = c.height - 16;
  g.font = "10px system-ui"; g.textAlign = "center";
  h.counts.forEach((k, i) => {
    const bh = (k / top) * (base - 12);
    g.fillStyle = h.edges[i] >= 1 ? "#c98a00" : "#2a6fdb";
    g.fillRect(i * bw + 1, base - bh, bw - 2, bh);
    g.fillStyle = "#1d232a";
    if (k) g.fillText(String(k), i * bw + bw / 2, base - bh - 2);
    g.fillStyle = "#6b7480";
    g.fillText(h.edges[i + 1] === null ? `>${h.edges[i]}` : `<${h.edges[i + 1]}`, i * bw + bw / 2, c.height - 3);
  });
}

function tables(s) {
  const stages = Object.entries(s.timing.stages_ms);
  document.querySelector("#stages tbody").innerHTML = stages.length ? stages.map(([k, v]) =>
    `<tr><td class="text">${RL.esc(k)}</td><td>${RL.fmt(v.last)}</td><td>${RL.fmt(v.p50)}</td><td>${RL.fmt(v.p99)}</td>` +
    `<td>${RL.fmt(v.max)}</td><td>${v.n}</td></tr>`).join("") :
    `<tr><td class="text muted" colspan="6">no stage stamps from this loop</td></tr>`;
  const counters = Object.entries(s.counters);
  document.getElementById("counters").innerHTML = counters.length ? counters.map(([name, c]) =>
    `<b>${RL.esc(name)}</b> ` + Object.entries(c).map(([k, v]) => `${RL.esc(k)} ${RL.fmt(v)}`).join(" \u00b7 ")).join("<br>") :
    "no safety filter or watchdog in this loop";
  document.querySelector("#events tbody").innerHTML = s.events.map((e) =>
    `<tr><td>${e.n}</td><td class="text">${RL.esc(e.source)}</td><td class="text warn">${RL.esc(e.what)}</td>` +
    `<td>${e.count}</td><td>${e.episode ?? "\u2013"}</td><td>${e.frame}</td><td>${e.tick}</td></tr>`).join("");
  document.querySelector("#history tbody").innerHTML = s.history.map((h) =>
    `<tr><td>${h.episode}</td><td>${h.seed ?? "\u2013"}</td><td class="text">${RL.esc(h.event)}</td><td>${h.frames}</td>` +
    `<td class="text ${h.success ? "yes" : h.success === false ? "no" : "na"}">${h.success === null ? "\u2013" : h.success ? "yes" : "no"}</td>` +
    `<td>${h.missed_ticks}</td></tr>`).join("");
}

async function poll() {
  try {
    const s = await RL.getJSON("/api/live");
    LIVE.snap = s;
    LIVE.polls += 1;
    if (!LIVE.ready) {
      RL.header("live", { store: !!s.store, run: false, live: true, path: s.title });
      buildKeys(s);
    }
    cards(s);
    lateness(s.timing);
    tables(s);
    for (const [key, cam] of Object.entries(s.cameras)) {
      if (!LIVE.inflight[key] && (!LIVE.drawn[key] || LIVE.drawn[key].seq !== cam.seq)) drawFrame(key);
    }
    LIVE.ready = true;
  } catch (err) {
    const main = document.querySelector("main");
    if (!main.querySelector(".error")) RL.showError(main, err);
  }
  setTimeout(poll, POLL_MS);
}

poll();
