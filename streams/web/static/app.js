// The live product-health page: portfolio and product views over the worker's JSON API,
// refreshed when /api/events says a batch or an alert was stored (polling if that fails).
import { bars, productChart, sparkline } from "./charts.js";
import { el, pct, points, when } from "./dom.js";

const WINDOWS = ["15m", "1h", "24h", "7d"];
const RANKED = 15;
const POLL_MS = 2000; // while the event stream is down
const STATUS_MS = 5000;
const MIN_REFRESH_MS = 500; // at most two refreshes a second under a stream of batches

const $ = (sel) => document.querySelector(sel);

// ---- state in the URL hash: #window=24h&category=Dresses&product=1094 ----
function state() {
  const q = new URLSearchParams(location.hash.slice(1));
  const win = WINDOWS.includes(q.get("window")) ? q.get("window") : "24h";
  return { window: win, category: q.get("category") || "", product: q.get("product") || "" };
}

function go(change) {
  const next = { ...state(), ...change };
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(next)) if (v) q.set(k, v);
  location.hash = q.toString();
}

// ---- API ----
const token = new URLSearchParams(location.search).get("token");

async function api(path) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const response = await fetch(path, { headers });
  if (!response.ok && response.status !== 404) {
    throw new Error(`${path}: ${response.status} ${(await response.json()).error || ""}`);
  }
  return response.status === 404 ? null : response.json();
}

const enc = encodeURIComponent;

// ---- portfolio ----
function rankingRow(p, spark) {
  const change = points(p.change.negative_share);
  const row = el("tr", { "data-product": p.product_id },
    el("td", {}, el("a", { href: "#" }, p.product_id)),
    el("td", { class: "num", "data-field": "volume" }, String(p.volume)),
    el("td", { class: "num", "data-field": "negative" }, pct(p.shares.negative)),
    el("td", { class: `num ${change.cls}`, "data-field": "change" }, change.text),
    el("td", {}, sparkline(spark || [])));
  row.addEventListener("click", (e) => { e.preventDefault(); go({ product: p.product_id }); });
  return row;
}

function fillRanking(table, body) {
  const rows = body.products.map((p) => rankingRow(p, body.sparklines[p.product_id]));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 5, class: "empty" }, "no products with enough reviews in this window")));
  table.tBodies[0].replaceChildren(...rows);
}

async function loadPortfolio(s) {
  const common = `window=${s.window}&limit=${RANKED}&spark=1` + (s.category ? `&category=${enc(s.category)}` : "");
  const [ranked, movers] = await Promise.all([
    api(`/api/products?${common}`),
    api(`/api/products?${common}&order=change`),
  ]);
  fillRanking($("#ranked"), ranked);
  fillRanking($("#movers"), movers);
}

async function loadCategories() {
  const body = await api("/api/categories?window=7d&limit=1000");
  const select = $("#category");
  const current = state().category;
  const names = body.categories.map((c) => c.category);
  if (current && !names.includes(current)) names.push(current);
  select.replaceChildren(el("option", { value: "" }, "all"), ...names.map((n) => el("option", { value: n }, n)));
  select.value = current;
}

// ---- product ----
function kpi(label, value, field, cls = "") {
  return el("div", {}, el("dt", {}, label), el("dd", { "data-field": field, class: cls }, value));
}

function alertItem(a) {
  const evidence = (a.evidence || []).map((r) => el("li", {}, `${r.text} `, el("span", { class: "meta" }, `(${pct(r.score, 0)})`)));
  return el("li", { "data-alert": a.alert_id },
    el("span", { class: `badge ${a.status}` }, a.status), " ",
    el("strong", {}, `${a.severity} · ${a.rule}`), " ",
    el("span", { class: "meta" },
      `${when(a.window.start)} – ${when(a.window.end)} · ${a.counts.negative}/${a.counts.n} negative ` +
      `· baseline ${pct(a.baseline.share)} · p=${a.p_value.toPrecision(2)}`),
    evidence.length ? el("ul", { class: "evidence" }, ...evidence) : null);
}

async function loadProduct(s) {
  const id = enc(s.product);
  const [body, reviews, alerts, questions] = await Promise.all([
    api(`/api/products/${id}?window=${s.window}`),
    api(`/api/products/${id}/reviews?window=${s.window}&label=negative&limit=10`),
    api(`/api/products/${id}/alerts?limit=20`),
    api(`/api/products/${id}/questions?window=${s.window}`),
  ]);
  $("#product-id").textContent = s.product;
  if (!body) {
    $("#kpis").replaceChildren(el("p", { class: "empty" }, "no reviews of this product"));
    return;
  }
  const change = points(body.change.negative_share);
  $("#kpis").replaceChildren(
    kpi("reviews", String(body.volume), "volume"),
    kpi("negative share", pct(body.shares.negative), "negative"),
    kpi("previous window", pct(body.baseline.negative_share), "baseline"),
    kpi("change", change.text, "change", change.cls),
    kpi("mean rating", body.mean_rating === null ? "–" : `${body.mean_rating.toFixed(2)} ★`, "rating"),
  );
  productChart($("#chart"), body);
  const stars = ["5", "4", "3", "2", "1"].map((k) => [`${"★".repeat(+k)}`, body.ratings[k]]);
  if (body.ratings.none) stars.push(["unrated", body.ratings.none]);
  bars($("#ratings"), stars, "stars");
  const intents = Object.entries(questions.intents);
  bars($("#questions"), intents);
  if (questions.questions) {
    $("#questions").append(el("p", { class: "meta" }, `${questions.questions} questions · ${pct(questions.unanswered_share)} need a person`));
  }
  const items = reviews.reviews.map((r) => el("li", { "data-event": r.event_id },
    el("div", { class: "text" }, r.text),
    el("div", { class: "meta" },
      `${when(r.ts)} · P(negative) ${pct(r.p_negative)} · ${r.rating ? "★".repeat(r.rating) : "unrated"} · ${r.model.name} ${r.model.version}`)));
  $("#reviews").replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, "no negative reviews in this window")]));
  const open = alerts.alerts.filter((a) => a.status === "firing");
  const resolved = alerts.alerts.filter((a) => a.status !== "firing");
  const list = [...open, ...resolved].map(alertItem);
  $("#alerts").replaceChildren(...(list.length ? list : [el("li", { class: "empty" }, "no alerts")]));
}

// ---- header ----
async function loadStatus() {
  const s = await api("/api/status");
  const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);
  const set = (k, v) => { document.querySelector(`[data-stat="${k}"]`).textContent = v; };
  set("throughput", `${s.throughput_per_s.toFixed(1)} /s`);
  set("lag", s.consumer_lag === null ? "n/a" : String(s.consumer_lag));
  set("stored", String(sum(s.stored)));
  set("dead", String(s.dead_letters));
  set("models", Object.entries(s.models).map(([k, v]) => `${k}: ${v}`).join(" · "));
}

// ---- refresh, throttled; the live connection ----
let busy = false;
let again = false;
let last = 0;

async function refresh() {
  if (busy) { again = true; return; }
  busy = true;
  const wait = last + MIN_REFRESH_MS - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  try {
    const s = state();
    $("#windows").querySelectorAll("button").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.window === s.window)));
    $("#portfolio").hidden = Boolean(s.product);
    $("#product").hidden = !s.product;
    await Promise.all([s.product ? loadProduct(s) : loadPortfolio(s), loadStatus()]);
    $("#error").hidden = true;
    $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.refreshed = String(Date.now());
  } catch (err) {
    $("#error").textContent = String(err);
    $("#error").hidden = false;
  } finally {
    last = Date.now();
    busy = false;
    if (again) { again = false; refresh(); }
  }
}

let poller = null;

function setLive(mode) {
  $("#live").dataset.state = mode;
  $("#live").textContent = { live: "live", polling: "polling", connecting: "connecting" }[mode];
  if (mode === "polling" && !poller) poller = setInterval(refresh, POLL_MS);
  if (mode === "live" && poller) { clearInterval(poller); poller = null; }
}

function connect() {
  if (!("EventSource" in window) || token) { setLive("polling"); return; } // EventSource sends no headers
  const source = new EventSource("/api/events");
  source.addEventListener("hello", () => { setLive("live"); refresh(); }); // catch up after a drop
  source.addEventListener("stored", refresh);
  source.addEventListener("alerts", refresh);
  source.onerror = () => {
    setLive("polling"); // the browser retries the stream by itself; poll meanwhile
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 10000);
  };
}

$("#windows").addEventListener("click", (e) => {
  if (e.target.dataset.window) go({ window: e.target.dataset.window });
});
$("#category").addEventListener("change", (e) => go({ category: e.target.value }));
$("#back").addEventListener("click", (e) => { e.preventDefault(); go({ product: "" }); });
window.addEventListener("hashchange", refresh);
window.addEventListener("resize", () => { if (state().product) refresh(); });
setInterval(() => loadStatus().catch(() => {}), STATUS_MS);
loadCategories().catch(() => {});
refresh();
connect();
