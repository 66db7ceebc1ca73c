// espressivo studio: the page.  No framework; every request goes to the studio's own JSON API.
"use strict";

const $ = (id) => document.getElementById(id);
// this tab's id: the studio's queue takes turns between clients, so another tab's long queue never blocks ours
const CLIENT = sessionStorage.getItem("espressivo-client") || Math.random().toString(16).slice(2, 18);
sessionStorage.setItem("espressivo-client", CLIENT);
const state = { score: null, renderers: [], takes: [], selected: null, polling: new Set(), maxUpload: 0 };

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function api(method, url, body, raw) {
  // the studio refuses changes without this header: a browser sends it only from the studio's own page
  const options = { method, headers: { "X-Espressivo-Studio": "1", "X-Espressivo-Client": CLIENT } };
  if (raw !== undefined) {
    options.body = raw;
  } else if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, options);
  let data = {};
  try { data = await response.json(); } catch (e) { data = { error: response.statusText }; }
  if (!response.ok) throw new Error(data.error || `request failed (${response.status})`);
  return data;
}

function guarded(fn) {
  return async (...args) => {
    showError("");
    try { await fn(...args); } catch (err) { showError(err.message); }
  };
}

// ------------------------------------------------------------------ score
async function init() {
  const data = await api("GET", "/api/renderers");
  state.renderers = data.renderers;
  state.maxUpload = data.max_upload;
  $("model").innerHTML = data.renderers.map((r) => `<option value="${r.name}" title="${escapeHtml(r.summary || "")}">${escapeHtml((r.summary || r.name).split(": ")[0])} (${r.name})</option>`).join("");
  $("examples").innerHTML = data.examples.map((e) => `<option value="${e.id}">${e.label}</option>`).join("");
  $("examples-note").textContent = data.examples_note || "";
  modelChanged();
  const workspace = /score=([0-9a-f]{16})/.exec(location.hash);  // a reloaded page: the score and its takes again
  if (workspace) await restore(workspace[1]);
}

async function restore(id) {
  let score;
  try { score = await api("GET", `/api/scores/${id}`); } catch (err) {
    history.replaceState(null, "", location.pathname);
    throw new Error("this workspace is no longer in the studio (it was restarted, or its files were cleared): open the score again");
  }
  showScore(score);
  showNotation(score);
  for (const take of (await api("GET", `/api/scores/${id}/takes`)).takes) addTake(take, false);
}

function showScore(score) {
  state.score = score;
  state.takes = [];
  state.selected = null;
  const info = score.info;
  const rows = [
    ["Score", score.name], ["Title", info.title || "—"], ["Notes", info.notes], ["Measures", info.measures],
    ["Time signatures", (info.time_signatures || []).join(", ") || "—"],
    ["Length at the written tempo", info.duration_at_written_tempo_sec !== undefined ? `${info.duration_at_written_tempo_sec} s` : "—"],
    ["Tempo markings", (info.tempo_markings || []).join(", ") || "none (the tempo is estimated)"],
    ["Dynamics", (info.dynamics || []).slice(0, 12).join(", ") + ((info.dynamics || []).length > 12 ? ", …" : "") || "none"],
  ];
  for (const warning of score.warnings || []) rows.push(["Note", warning]);  // what reading the score had to say
  $("info").innerHTML = rows.map(([k, v]) => `<dt>${k}</dt><dd>${escapeHtml(String(v))}</dd>`).join("");
  $("controls").hidden = false;
  $("human").hidden = $("pianist").hidden = !score.humans.length;
  $("pianist").innerHTML = score.humans.map((name, k) => `<option value="${k}">${escapeHtml(name)}</option>`).join("");
  const firstBar = info.first_bar ?? 1;  // 0 for a pickup, as printed
  $("last-bar").min = $("first-bar").min = $("start-bar").min = firstBar;
  $("start-bar").value = firstBar;
  $("last-bar").max = $("first-bar").max = $("start-bar").max = info.measures - 1 + firstBar;
  renderTakes();
  $("look").hidden = true;
  $("use-reference").checked = false;
  $("use-reference").disabled = true;
  $("reference-info").textContent = "";
}

// ------------------------------------------------------------------ the score as notation (Verovio's SVG pages)
async function showNotation(score) {
  const box = $("notation"), note = $("notation-note");
  box.innerHTML = ""; box.hidden = true; note.hidden = true; state.sounding = new Set();
  let info;
  try { info = await api("GET", `/api/scores/${score.id}/notation`); } catch (err) {
    note.textContent = `No notation: ${err.message}`; note.hidden = false; return;
  }
  for (let k = 1; k <= info.pages; k++) {
    if (state.score !== score) return;  // another score was opened meanwhile
    const response = await fetch(`/api/scores/${score.id}/notation/${k}`, { headers: { "X-Espressivo-Studio": "1", "X-Espressivo-Client": CLIENT } });
    if (!response.ok) break;
    const page = document.createElement("div");
    page.className = "page";
    page.innerHTML = await response.text();  // Verovio's SVG (no scripts; the CSP runs none)
    box.appendChild(page);
    box.hidden = false;
  }
  if (info.total > info.pages) { note.textContent = `the first ${info.pages} of ${info.total} pages`; note.hidden = false; }
}

function lightNotes() {  // the notes sounding at the playhead, lit on the notation
  const take = selectedTake(), box = $("notation");
  if (box.hidden || !take || !take.view || !take.view.ids) return;
  const t = $("audio").currentTime || 0, now = new Set();
  take.view.notes.forEach(([onset, duration], k) => { if (onset <= t && t < onset + Math.max(duration, 0.08)) now.add(take.view.ids[k]); });
  for (const id of state.sounding || []) if (!now.has(id)) { const e = document.getElementById(id); if (e) e.classList.remove("sounding"); }
  let first = null;
  for (const id of now) {
    const e = id && document.getElementById(id);
    if (e && box.contains(e)) { e.classList.add("sounding"); first = first || e; }
  }
  state.sounding = now;
  if (first && !$("audio").paused) {  // keep the music in view
    const a = first.getBoundingClientRect(), b = box.getBoundingClientRect();
    if (a.top < b.top || a.bottom > b.bottom) box.scrollTop += a.top - b.top - b.height / 3;
  }
}

function barIndex(beat) {  // the measure (as played, from 0) a score beat falls in
  const bars = state.score.info.bars || [];
  let k = 0;
  while (k + 1 < bars.length && bars[k + 1] <= beat + 1e-6) k++;
  return k;
}

function barOfBeat(beat) { return barIndex(beat) + (state.score.info.first_bar ?? 1); }  // as printed: a pickup is 0

function markBars() {  // on the notation: the bars chosen to render again, and a passage take's re-rendered bars
  const take = selectedTake(), box = $("notation");
  box.querySelectorAll("g.note.chosen, g.note.changed").forEach((e) => e.classList.remove("chosen", "changed"));
  if (box.hidden || !take || !take.view || !take.view.beats) return;
  const first = Number($("first-bar").value), last = Number($("last-bar").value);
  const passage = take.kind === "passage" ? take.settings.bars : null;
  take.view.ids.forEach((id, k) => {
    const e = id && take.view.beats[k] !== null && document.getElementById(id);
    if (!e || !box.contains(e)) return;
    const bar = barOfBeat(take.view.beats[k]);
    if (passage && bar >= passage[0] && bar <= passage[1]) e.classList.add("changed");
    else if (bar >= first && bar <= last && (take.kind === "render" || take.kind === "passage")) e.classList.add("chosen");
  });
}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

async function opened(score) {  // the score's facts, and beside the takes to come: its deadpan and its pianist
  history.replaceState(null, "", `#score=${score.id}`);  // the workspace's address: a reload comes back to it
  showScore(score);
  showNotation(score);  // in the background: the takes need not wait for the engraving
  await submit({ kind: "deadpan" }, false);
  if (score.humans.length) await submit({ kind: "human", index: 0 }, false);
}

const upload = guarded(async () => {
  const file = $("upload").files[0];
  if (!file) return;
  if (state.maxUpload && file.size > state.maxUpload) throw new Error(`the file is larger than ${state.maxUpload / 1048576} MB`);
  await reading(file.name, async () => opened(await api("POST", `/api/scores?name=${encodeURIComponent(file.name)}`, undefined, file)));
});

async function reading(name, work) {  // a score being read says so, with the seconds it has taken
  const started = Date.now(), status = $("reading");
  const show = () => { status.textContent = `reading ${name}… ${Math.round((Date.now() - started) / 1000)} s`; };
  show();
  status.hidden = false;
  const timer = setInterval(show, 500);
  try { await work(); } finally { clearInterval(timer); status.hidden = true; }
}

const uploadReference = guarded(async () => {
  const file = $("reference").files[0];
  if (!file) return;
  const info = await api("POST", `/api/scores/${state.score.id}/reference?name=${encodeURIComponent(file.name)}`, undefined, file);
  $("reference-info").textContent = `${file.name}: ${info.notes} notes, ${info.duration_sec} s`;
  $("use-reference").disabled = false;
  $("use-reference").checked = true;
});

const openExample = guarded(async () => {
  const which = $("examples").value;
  await reading(which, async () => opened(await api("POST", `/api/examples/${encodeURIComponent(which)}`)));
});

// ------------------------------------------------------------------ takes
function renderer() { return state.renderers.find((r) => r.name === $("model").value) || state.renderers[0]; }

function modelChanged() {
  const r = renderer();
  if (!r) return;
  $("expr-label").hidden = !r.expressiveness;
  $("steer").hidden = !r.z_dim;
  for (const [id, at] of [["sliders", ""], ["sliders-end", " at the end"]]) {
    $(id).innerHTML = Array.from({ length: r.z_dim }, (_, k) =>
      `<label title="latent dimension z${k + 1}: + moves towards what it says, - away (measured on the test split)">${escapeHtml((r.z_names || [])[k] || `z${k + 1}`)}${at}
        <input type="range" class="z" min="-3" max="3" step="0.25" value="0" aria-label="z${k + 1}${at}"><output>0</output></label>`).join("");
  }
  document.querySelectorAll("#steer .z").forEach((input) => input.addEventListener("input", () => { input.nextElementSibling.value = input.value; }));
}

function renderRequest() {
  const r = renderer();
  const request = { kind: "render", model: r.name, seed: Number($("seed").value || 0), dynamics_scale: Number($("dynamics").value),
    temperature: Number($("temperature").value) };
  if ($("tempo").value) request.tempo = Number($("tempo").value);
  if (r.expressiveness) request.expressiveness = Number($("expressiveness").value);
  const values = (id) => Array.from(document.querySelectorAll(`#${id} input`)).map((i) => Number(i.value));
  if (r.z_dim) request.interpretation = $("changing").checked ? { start: values("sliders"), end: values("sliders-end") } : values("sliders");
  if (r.z_dim && $("use-reference").checked) request.reference = true;
  return request;
}

async function submit(request, show = true) {
  const take = await api("POST", `/api/scores/${state.score.id}/takes`, request);
  addTake(take, show);
}

// a take the user asked for is shown when it is ready; the deadpan and the pianist listed on opening are shown
// only while nothing else is
function addTake(take, show = true) {
  if (state.takes.some((t) => t.id === take.id)) {  // the studio answered with a take already listed
    if (show && take.status === "done") select(take.id);
    return;
  }
  state.takes.push(take);
  renderTakes();
  poll(take.id, show);
}

async function poll(id, show) {
  if (state.polling.has(id)) return;
  state.polling.add(id);
  try {
    for (;;) {
      const take = await api("GET", `/api/takes/${id}?view=1`);
      const index = state.takes.findIndex((t) => t.id === id);
      if (index < 0) return;
      state.takes[index] = take;
      renderTakes();
      if (["done", "failed", "cancelled", "expired"].includes(take.status)) {
        if (take.status === "done" && (show || !state.selected)) select(id);
        if (take.status === "failed") showError(take.error);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  } finally { state.polling.delete(id); }
}

function renderTakes() {
  listCompare();
  $("takes").innerHTML = state.takes.map((t) => {
    const busy = t.status === "queued" || t.status === "running";
    return `<li data-id="${t.id}" class="${t.id === state.selected ? "selected" : ""}">
      ${(() => { const verb = t.id === state.selected && !$("audio").paused ? "Pause" : "Play";
        return `<button class="play" aria-label="${verb} ${escapeHtml(t.label)}" ${t.status === "done" ? "" : "disabled"}>${verb}</button>`; })()}
      <button class="star" aria-label="${t.star ? "Unstar" : "Star"} ${escapeHtml(t.label)}" aria-pressed="${t.star}">${t.star ? "★" : "☆"}</button>
      <span>${t.name ? `<b>${escapeHtml(t.name)}</b> · ` : ""}${escapeHtml(t.label)}</span>
      ${busy ? "" : `<button class="rename" aria-label="Name ${escapeHtml(t.label)}">Name</button><button class="remove" aria-label="Delete ${escapeHtml(t.label)}">Delete</button>`}
      ${busy ? `<progress max="1" value="${t.progress}"></progress><span class="state">${t.stage}</span><button class="cancel" aria-label="Cancel ${escapeHtml(t.label)}">Cancel</button>` : ""}
      ${t.status === "failed" ? `<span class="state">failed: ${escapeHtml(t.error)}</span>` : ""}
      ${t.status === "cancelled" ? `<span class="state">cancelled</span>` : ""}
    </li>`;
  }).join("");
}

// ------------------------------------------------------------------ listen and look
// where a take is in the music: the score beat at a time of its audio, and back (its curves' time map)
function beatAt(take, sec) { const c = take && take.view && take.view.curves; return c && c.beat.length > 1 ? interp(c.onset_sec, c.beat, sec) : null; }
function secAt(take, beat) { const c = take && take.view && take.view.curves; return c && c.beat.length > 1 ? interp(c.beat, c.onset_sec, beat) : null; }

// select a take; ``play``: start it (the Play button), else keep playing if the last one was (A/B switching)
function select(id, play = false) {
  const take = state.takes.find((t) => t.id === id);
  if (!take || take.status !== "done") return;
  const audio = $("audio");
  if (id === state.selected && audio.src) {  // the selected take's button: play or pause it
    if (play) { if (audio.paused) playAudio(); else audio.pause(); }
    return;
  }
  const beat = beatAt(selectedTake(), audio.currentTime || 0);  // A/B: the other take at the same bar and beat
  const playing = !audio.paused;
  state.selected = id;
  $("look").hidden = false;
  $("now-playing").textContent = take.label;
  if (take.files.includes("audio.wav")) {
    audio.src = `/api/takes/${id}/audio.wav`;
    audio.addEventListener("loadedmetadata", () => {
      const at = beat === null ? audio.currentTime : secAt(take, beat);
      audio.currentTime = Math.max(0, Math.min(at || 0, audio.duration || 0));
      if (playing || play) playAudio();
    }, { once: true });
  }
  $("downloads").innerHTML = take.files.map((f) => `<a class="download" href="/api/takes/${id}/${f}" download>${f}</a>`).join(" · ");
  $("passage").hidden = !(take.kind === "render" || take.kind === "passage");
  renderTakes();
  draw();
}

function selectedTake() { return state.takes.find((t) => t.id === state.selected); }

// compare: another take's curves, dashed, on the same axes (the pianist's by default, when the score has one)
function comparedTake() {
  const id = $("compare").value;
  return id && id !== state.selected ? state.takes.find((t) => t.id === id && t.view) : null;
}

function listCompare() {
  const chosen = $("compare").value;
  const done = state.takes.filter((t) => t.status === "done");
  const key = done.map((t) => t.id).join(",");
  if (key === state.compareKey) return;  // rebuilt only when the finished takes change (an open list stays open)
  state.compareKey = key;
  const pianist = done.find((t) => t.kind === "human");
  $("compare").innerHTML = `<option value="">nothing</option>` + done.map((t) =>
    `<option value="${t.id}">${escapeHtml(t.label)}</option>`).join("");
  $("compare").value = done.some((t) => t.id === chosen) ? chosen : (pianist ? pianist.id : "");
}

function velocityColour(v) {
  const t = Math.max(0, Math.min(1, (v - 20) / 100));
  return `hsl(${220 - 200 * t}, 70%, ${60 - 20 * t}%)`;
}

function draw() {
  const take = selectedTake();
  if (!take || !take.view) return;
  drawRoll(take.view);
  drawCurves(take.view);
}

function drawRoll(view) {
  const canvas = $("roll"), g = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, lane = 24, top = 6;
  g.clearRect(0, 0, W, H);
  const notes = view.notes;
  if (!notes.length) return;
  const lo = Math.min(...notes.map((n) => n[2])) - 2, hi = Math.max(...notes.map((n) => n[2])) + 2;
  const x = (t) => (t / Math.max(view.duration, 1e-3)) * (W - 2) + 1;
  const y = (p) => top + (hi - p) / (hi - lo) * (H - lane - top - 8);
  const h = Math.max(2, (H - lane - top - 8) / (hi - lo));
  g.strokeStyle = "#eee";
  for (let p = Math.ceil(lo / 12) * 12; p <= hi; p += 12) { g.beginPath(); g.moveTo(0, y(p)); g.lineTo(W, y(p)); g.stroke(); }
  for (const [onset, duration, pitch, velocity] of notes) {
    g.fillStyle = velocityColour(velocity);
    g.fillRect(x(onset), y(pitch) - h / 2, Math.max(1.5, x(onset + duration) - x(onset)), h);
  }
  g.fillStyle = "#f3efe8";
  g.fillRect(0, H - lane, W, lane);
  g.fillStyle = "#8a3b12aa";
  for (const [down, up] of view.pedal) g.fillRect(x(down), H - lane + 5, Math.max(1, x(up) - x(down)), lane - 10);
  g.fillStyle = "#777";
  g.font = "11px system-ui";
  g.fillText("pedal", 4, H - 8);
  const audio = $("audio");
  g.strokeStyle = "#000";
  g.beginPath(); g.moveTo(x(audio.currentTime), 0); g.lineTo(x(audio.currentTime), H); g.stroke();
}

function interp(xs, ys, v) {
  if (!xs.length) return 0;
  if (v <= xs[0]) return ys[0];
  for (let i = 1; i < xs.length; i++) if (v <= xs[i]) return ys[i - 1] + (ys[i] - ys[i - 1]) * (v - xs[i - 1]) / (xs[i] - xs[i - 1] || 1);
  return ys[ys.length - 1];
}

function drawCurves(view) {
  const canvas = $("curves"), g = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, left = 44, top = 16, bottom = 8;
  g.clearRect(0, 0, W, H);
  const c = view.curves;
  g.font = "10px system-ui";
  if (!c || c.beat.length < 2) { g.fillStyle = "#999"; g.fillText("no curves for this take", 10, 20); return; }
  const bars = state.score.info.bars || [];
  const b0 = Math.min(c.beat[0], bars.length ? bars[0] : c.beat[0]), b1 = c.beat[c.beat.length - 1];
  const x = (b) => left + (b - b0) / Math.max(b1 - b0, 1e-3) * (W - left - 6);
  state.curvesX = { beatAtPixel: (px) => b0 + (px - left) / (W - left - 6) * Math.max(b1 - b0, 1e-3) };
  g.strokeStyle = "#eee";
  g.fillStyle = "#999";
  bars.forEach((bar, k) => {
    if (bar > b1 + 1e-6) return;
    g.beginPath(); g.moveTo(x(bar), 0); g.lineTo(x(bar), H); g.stroke();
    g.fillText(String(k + (state.score.info.first_bar ?? 1)), x(bar) + 2, 10);
  });
  const colour = (name, fallback) => getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
  const line = (xs, ys, stroke, lo, hi, dashed = false) => {
    const y = (v) => Math.max(top, Math.min(H - bottom, H - bottom - (v - lo) / Math.max(hi - lo, 1e-6) * (H - top - bottom)));
    g.strokeStyle = stroke; g.lineWidth = dashed ? 1.2 : 1.6; g.setLineDash(dashed ? [5, 4] : []); g.beginPath();
    xs.forEach((b, i) => (i ? g.lineTo(x(b), y(ys[i])) : g.moveTo(x(b), y(ys[i]))));
    g.stroke(); g.lineWidth = 1; g.setLineDash([]);
  };
  const other = comparedTake(), o = other && other.view && other.view.curves;  // dashed, on the same axes
  const tempi = [c.tempo_bpm, o && o.tempo_beat.length > 1 ? o.tempo_bpm : []].flat();
  if (c.tempo_beat.length > 1) {
    // the whole range, not percentiles: a final ritardando must look like one
    const lo = Math.floor(Math.min(...tempi) * 0.95), hi = Math.ceil(Math.max(...tempi) * 1.05);
    if (o && o.tempo_beat.length > 1) line(o.tempo_beat, o.tempo_bpm, colour("--tempo", "#1f5fa8"), lo, hi, true);
    line(c.tempo_beat, c.tempo_bpm, colour("--tempo", "#1f5fa8"), lo, hi);
    g.fillStyle = colour("--tempo", "#1f5fa8");
    g.fillText(`${hi} bpm`, 2, top + 4); g.fillText(`${lo} bpm`, 2, H - bottom);
  }
  if (o && o.beat.length > 1) line(o.beat, o.velocity, colour("--loud", "#b8452b"), 20, 120, true);
  line(c.beat, c.velocity, colour("--loud", "#b8452b"), 20, 120);
  g.fillStyle = colour("--loud", "#b8452b");
  g.fillText("vel 120", 2, top + 16); g.fillText("vel 20", 2, H - bottom - 12);
  const beat = interp(c.onset_sec, c.beat, $("audio").currentTime);
  g.strokeStyle = "#000";
  g.beginPath(); g.moveTo(x(beat), 0); g.lineTo(x(beat), H); g.stroke();
}

// ------------------------------------------------------------------ transport
function barBeat(bar) {  // the score beat where a bar (as printed: 0 for a pickup) starts; its end for bar + 1
  const bars = state.score.info.bars || [], k = bar - (state.score.info.first_bar ?? 1);
  if (k < 0) return bars.length ? bars[0] : 0;
  if (k < bars.length) return bars[k];
  const c = selectedTake() && selectedTake().view && selectedTake().view.curves;
  return c && c.beat.length ? c.beat[c.beat.length - 1] + 1 : Infinity;
}

function seekToBeat(beat) {
  const at = secAt(selectedTake(), beat);
  if (at !== null) $("audio").currentTime = Math.max(0, at);
}

function playAudio() {  // a play interrupted by a pause (Space twice) is no error
  $("audio").play().catch((err) => { if (err.name !== "AbortError") showError(`cannot play: ${err.message}`); });
}

function togglePlay() {
  const audio = $("audio");
  if (!selectedTake() || !audio.src) return;
  if (audio.paused) playAudio(); else audio.pause();
}

function position() {  // "bar 12, beat 2" under the playhead
  const beat = beatAt(selectedTake(), $("audio").currentTime || 0);
  const bars = state.score && state.score.info.bars || [];
  if (beat === null || !bars.length) return "";
  return `bar ${barOfBeat(beat)}, beat ${Math.floor(beat - bars[barIndex(beat)] + 1e-6) + 1}`;
}

function loopCheck() {  // looping bars m-n: past the end of bar n, back to the start of bar m
  if (!$("loop").checked || !selectedTake()) return;
  const first = Number($("first-bar").value), last = Number($("last-bar").value);
  const beat = beatAt(selectedTake(), $("audio").currentTime || 0);
  if (beat !== null && (beat >= barBeat(last + 1) - 1e-3 || beat < barBeat(first) - 0.5)) seekToBeat(barBeat(first));
}

function tick() {
  if (!$("audio").paused) { loopCheck(); draw(); }
  lightNotes();
  const marks = [state.selected, $("first-bar").value, $("last-bar").value, $("notation").childElementCount].join();
  if (marks !== state.marks) { state.marks = marks; markBars(); }  // the one caller: whatever changed them
  $("position").textContent = position();
  $("loop-bars").textContent = `${$("first-bar").value}-${$("last-bar").value}`;
  requestAnimationFrame(tick);
}

// ------------------------------------------------------------------ wiring
window.addEventListener("DOMContentLoaded", guarded(async () => {
  $("upload").addEventListener("change", upload);
  $("open-example").addEventListener("click", openExample);
  $("reference").addEventListener("change", uploadReference);
  $("model").addEventListener("change", modelChanged);
  $("changing").addEventListener("change", () => { $("sliders-end").hidden = !$("changing").checked; });
  ["dynamics", "expressiveness", "temperature"].forEach((id) => $(id).addEventListener("input", () => { $(id).nextElementSibling.value = $(id).value; }));
  $("render").addEventListener("click", guarded(() => submit(renderRequest())));
  $("another").addEventListener("click", guarded(() => { $("seed").value = Number($("seed").value || 0) + 1; return submit(renderRequest()); }));
  $("deadpan").addEventListener("click", guarded(() => submit({ kind: "deadpan", tempo: $("tempo").value ? Number($("tempo").value) : null })));
  $("human").addEventListener("click", guarded(() => submit({ kind: "human", index: Number($("pianist").value || 0) })));
  $("again").addEventListener("click", guarded(async () => {
    const take = await api("POST", `/api/takes/${state.selected}/passage`, { first: Number($("first-bar").value), last: Number($("last-bar").value) });
    addTake(take);
  }));
  $("takes").addEventListener("click", guarded(async (event) => {
    const item = event.target.closest("li");
    if (!item) return;
    const id = item.dataset.id, index = state.takes.findIndex((t) => t.id === id);
    if (event.target.classList.contains("cancel")) await api("DELETE", `/api/takes/${id}`);
    else if (event.target.classList.contains("play")) select(id, true);
    else if (event.target.classList.contains("star")) {
      Object.assign(state.takes[index], await api("PATCH", `/api/takes/${id}`, { star: !state.takes[index].star }));
      renderTakes();
    } else if (event.target.classList.contains("rename")) {
      const name = prompt("Name this take", state.takes[index].name || "");
      if (name === null) return;
      Object.assign(state.takes[index], await api("PATCH", `/api/takes/${id}`, { name }));
      renderTakes();
    } else if (event.target.classList.contains("remove")) {
      await api("DELETE", `/api/takes/${id}?remove=1`);
      state.takes.splice(index, 1);
      if (state.selected === id) { state.selected = null; $("audio").removeAttribute("src"); $("look").hidden = true; }
      renderTakes();
    }
  }));
  $("audio").addEventListener("seeked", draw);
  $("compare").addEventListener("change", draw);
  document.addEventListener("keydown", (event) => {  // Space: play / pause, unless typing or on a control
    if (event.code !== "Space" || event.target.closest("input, select, textarea, button, audio")) return;
    event.preventDefault();
    togglePlay();
  });
  $("roll").addEventListener("click", (event) => {  // the roll's x is time
    const take = selectedTake(), canvas = $("roll"), box = canvas.getBoundingClientRect();
    if (!take || !take.view) return;
    const fraction = (event.clientX - box.left) / box.width;
    $("audio").currentTime = Math.max(0, fraction * (canvas.width - 2) / canvas.width * take.view.duration);
  });
  $("notation").addEventListener("click", (event) => {  // a note: go to where the take plays it; a bar: choose it
    const take = selectedTake();
    if (!take || !take.view || !take.view.ids) return;
    const g = event.target.closest("g.note");
    if (!g) {  // a bar's empty space: it becomes the first bar to render again (with Shift: the last)
      const note = event.target.closest("g.measure") && event.target.closest("g.measure").querySelector("g.note");
      const k = note ? take.view.ids.indexOf(note.id) : -1;
      if (k < 0 || take.view.beats[k] === null) return;
      const bar = barOfBeat(take.view.beats[k]);
      if (event.shiftKey) $("last-bar").value = Math.max(bar, Number($("first-bar").value));
      else { $("first-bar").value = bar; $("last-bar").value = Math.max(bar, Number($("last-bar").value)); }
      return;
    }
    const t = $("audio").currentTime || 0;
    const onsets = take.view.notes.map((n) => n[0]).filter((_, k) => take.view.ids[k] === g.id);
    if (!onsets.length) return;
    const next = onsets.find((o) => o > t + 0.05);  // a repeated passage: its next playing, else the first
    $("audio").currentTime = next === undefined ? onsets[0] : next;
  });
  $("curves").addEventListener("click", (event) => {  // the curves' x is score beats
    const canvas = $("curves"), box = canvas.getBoundingClientRect();
    const beat = state.curvesX && state.curvesX.beatAtPixel((event.clientX - box.left) * canvas.width / box.width);
    if (beat !== null && beat !== undefined) seekToBeat(beat);
  });
  $("from-bar").addEventListener("click", () => { seekToBeat(barBeat(Number($("start-bar").value))); playAudio(); });
  ["play", "pause"].forEach((name) => $("audio").addEventListener(name, renderTakes));  // the buttons say which
  await init();
  requestAnimationFrame(tick);
}));
