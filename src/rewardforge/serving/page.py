"""The page served at `/`: type a prompt and two or more responses, see their rewards and the
Bradley-Terry preference probabilities. Self-contained HTML + JS (no CDN, no build step);
it calls POST /v1/compare on the same origin."""

from __future__ import annotations

import html

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rewardforge: __MODEL__</title>
<style>
  :root { color-scheme: light dark; --accent: #3b6fd8; --good: #2e8b57; --muted: #777; }
  body { font: 15px/1.45 system-ui, sans-serif; max-width: 900px; margin: 1.5rem auto; padding: 0 1rem; }
  h1 { font-size: 1.35rem; margin-bottom: .2rem; }
  .sub { color: var(--muted); margin-top: 0; }
  label { display: block; font-weight: 600; margin: .8rem 0 .25rem; }
  textarea, input[type=password] { width: 100%; box-sizing: border-box; font: inherit; padding: .45rem;
    border: 1px solid #9999; border-radius: 6px; background: transparent; color: inherit; }
  textarea { min-height: 3.2rem; resize: vertical; }
  .resp { border: 1px solid #9995; border-radius: 8px; padding: .5rem .7rem .7rem; margin-top: .7rem; }
  .resp.best { border-color: var(--good); box-shadow: 0 0 0 1px var(--good); }
  .resp header { display: flex; justify-content: space-between; align-items: center; gap: 1rem; }
  .score { font-variant-numeric: tabular-nums; font-weight: 600; }
  .bar { height: 6px; background: #9993; border-radius: 3px; margin-top: .35rem; overflow: hidden; }
  .bar > div { height: 100%; width: 0; background: var(--accent); transition: width .3s; }
  button { font: inherit; padding: .45rem .9rem; border-radius: 6px; border: 1px solid #9999; cursor: pointer;
    background: transparent; color: inherit; }
  button.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
  button:disabled { opacity: .6; cursor: progress; }
  .remove { padding: .1rem .5rem; }
  .actions { display: flex; gap: .6rem; margin-top: 1rem; align-items: center; }
  #error { color: #c0392b; white-space: pre-wrap; }
  #summary { font-size: 1.1rem; margin-top: 1rem; }
  table { border-collapse: collapse; margin-top: .6rem; font-variant-numeric: tabular-nums; }
  th, td { border: 1px solid #9996; padding: .25rem .55rem; text-align: right; }
  .hidden { display: none; }
  footer { color: var(--muted); margin-top: 2rem; font-size: .85rem; }
</style>
</head>
<body>
<h1>Reward model playground</h1>
<p class="sub">Model <code id="model-name">__MODEL__</code>. Higher reward = better response.
P(A &#8827; B) = sigmoid(&beta; &times; (reward A &minus; reward B)) (Bradley&ndash;Terry; &beta; as in training, 1 by default).</p>

<div id="key-box" class="__KEY_CLASS__">
  <label for="api-key">API key</label>
  <input type="password" id="api-key" autocomplete="off" placeholder="sent as Authorization: Bearer ...">
</div>

<label for="prompt">Prompt</label>
<textarea id="prompt" placeholder="What the user asked (optional)"></textarea>

<div id="responses"></div>

<div class="actions">
  <button type="button" id="add-response">+ Add response</button>
  <button type="button" id="score-btn" class="primary">Score</button>
  <span id="status" role="status" aria-live="polite"></span>
</div>

<div id="error" role="alert"></div>
<div id="results" class="hidden">
  <div id="summary"></div>
  <table id="pairwise" aria-label="Pairwise preference probabilities"></table>
</div>

<footer>API: <a href="/docs">/docs</a> &middot; <a href="/openapi.json">/openapi.json</a> &middot;
<a href="/metrics">/metrics</a></footer>

<script>
"use strict";
const MAX_RESPONSES = __MAX_ITEMS__;
const $ = (id) => document.getElementById(id);
const letter = (i) => i < 26 ? String.fromCharCode(65 + i) : "#" + (i + 1);

function addResponse(text) {
  const box = $("responses");
  if (box.children.length >= MAX_RESPONSES) return;
  const i = box.children.length;
  const div = document.createElement("div");
  div.className = "resp";
  div.innerHTML =
    '<header><label></label><span><span class="score"></span> ' +
    '<button type="button" class="remove" title="Remove this response">&times;</button></span></header>' +
    '<textarea class="response"></textarea><div class="bar"><div></div></div>';
  div.querySelector("textarea").value = text || "";
  div.querySelector(".remove").addEventListener("click", () => {
    if ($("responses").children.length > 2) { div.remove(); renumber(); clearResults(); }
  });
  box.appendChild(div);
  renumber();
}

function renumber() {
  [...$("responses").children].forEach((div, i) => {
    const ta = div.querySelector("textarea");
    ta.id = "response-" + i;
    div.querySelector("label").htmlFor = ta.id;
    div.querySelector("label").textContent = "Response " + letter(i);
    div.querySelector(".score").id = "score-" + i;
  });
}

function clearResults() {
  $("results").classList.add("hidden");
  $("error").textContent = "";
  document.querySelectorAll(".resp").forEach((d) => {
    d.classList.remove("best");
    d.querySelector(".score").textContent = "";
    d.querySelector(".bar > div").style.width = "0";
  });
}

function fmt(x, digits) { return Number(x).toFixed(digits); }

function errorText(status, body) {
  if (body && typeof body.error === "string") {
    return "Error " + status + ": " + body.error;
  }
  return "Error " + status;
}

async function score() {
  clearResults();
  const responses = [...document.querySelectorAll("textarea.response")].map((t) => t.value);
  if (responses.some((r) => r.trim() === "")) { $("error").textContent = "Fill in every response."; return; }
  const prompt = $("prompt").value;
  const headers = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) headers["Authorization"] = "Bearer " + key;
  $("score-btn").disabled = true;
  $("status").textContent = "Scoring\u2026";
  try {
    const res = await fetch("/v1/compare", {
      method: "POST", headers,
      body: JSON.stringify({ prompt: prompt.trim() ? prompt : null, responses }),
    });
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) {
      if (res.status === 401) $("key-box").classList.remove("hidden");
      $("error").textContent = errorText(res.status, body);
      $("status").textContent = "";
      return;
    }
    show(body);
    $("status").textContent = "Done.";
  } catch (e) {
    $("error").textContent = "Request failed: " + e;
    $("status").textContent = "";
  } finally {
    $("score-btn").disabled = false;
  }
}

function show(r) {
  const divs = [...document.querySelectorAll(".resp")];
  const lo = Math.min(...r.scores), hi = Math.max(...r.scores);
  r.scores.forEach((s, i) => {
    divs[i].querySelector(".score").textContent = "reward " + fmt(s, 4);
    const w = hi > lo ? 10 + 90 * (s - lo) / (hi - lo) : 100;
    divs[i].querySelector(".bar > div").style.width = w + "%";
  });
  divs[r.ranking[0]].classList.add("best");
  const a = letter(0), b = letter(1);
  let text = "P(" + a + " \u227b " + b + ") = <span id=\\"probability\\">" + fmt(r.probability, 4) + "</span>";
  text += " &middot; best: <span id=\\"best\\">" + letter(r.ranking[0]) + "</span>";
  $("summary").innerHTML = text;
  const n = r.scores.length;
  let t = "<caption>P(row preferred over column)</caption><tr><th></th>";
  for (let j = 0; j < n; j++) t += "<th>" + letter(j) + "</th>";
  t += "</tr>";
  for (let i = 0; i < n; i++) {
    t += "<tr><th>" + letter(i) + "</th>";
    for (let j = 0; j < n; j++) t += "<td>" + (i === j ? "&ndash;" : fmt(r.pairwise[i][j], 3)) + "</td>";
    t += "</tr>";
  }
  $("pairwise").innerHTML = t;
  $("results").classList.remove("hidden");
}

$("add-response").addEventListener("click", () => addResponse(""));
$("score-btn").addEventListener("click", score);
document.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) score(); });
addResponse("");
addResponse("");
</script>
</body>
</html>
"""


def render_page(model_name: str, auth_required: bool, max_items: int) -> str:
    return (
        PAGE.replace("__MODEL__", html.escape(model_name))
        .replace("__KEY_CLASS__", "" if auth_required else "hidden")
        .replace("__MAX_ITEMS__", str(int(max_items)))
    )
