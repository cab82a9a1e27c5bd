// Bulkhead dashboard: polls the JSON API every second and updates the page in place.
// Data is written with textContent only (never as HTML). Amounts arrive as integer strings;
// they are formatted with BigInt, so no amount passes through a float. The chart plots the
// margin ratio (a display figure) from samples kept while the page is open.
"use strict";

const POLL_MS = 1000;
const MAX_SAMPLES = 300;
const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777"];
const STATES = ["seen", "safe", "finalized", "attested", "held", "refused", "credited",
                "dropped", "orphaned"];
const series = new Map(); // position -> [{t, ratio}]
let polls = 0;

function $(sel) { return document.querySelector(sel); }

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
}

function short(hex, keep = 6) {
  if (!hex) return "-";
  return hex.length > 2 * keep + 4 ? `${hex.slice(0, keep + 2)}…${hex.slice(-4)}` : hex;
}

function fixed(units, decimals, shown) {
  // integer string -> decimal string with at most `shown` fractional digits (truncated)
  if (units === null || units === undefined) return "-";
  let v = BigInt(units);
  const neg = v < 0n;
  if (neg) v = -v;
  const base = 10n ** BigInt(decimals);
  const whole = v / base;
  let frac = (v % base).toString().padStart(decimals, "0").slice(0, shown).replace(/0+$/, "");
  return (neg ? "-" : "") + whole.toString() + (frac ? "." + frac : "");
}

async function getJson(path) {
  const res = await fetch(path, { cache: "no-store" });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return res.json();
}

function showError(name, err) {
  const p = document.querySelector(`[data-error-for="${name}"]`);
  if (!p) return;
  p.hidden = !err;
  p.textContent = err ? String(err.message || err) : "";
}

function showEmpty(name, empty) {
  const p = document.querySelector(`[data-empty-for="${name}"]`);
  if (p) p.hidden = !empty;
}

function fillTable(selector, rows, build) {
  const tbody = $(selector + " tbody");
  tbody.replaceChildren(...rows.map(build));
}

function cells(tr, values) {
  for (const [field, value, cls] of values) {
    const td = el("td", value, { "data-field": field });
    if (cls) td.className = cls;
    tr.appendChild(td);
  }
  return tr;
}

function renderChains(data) {
  fillTable("#chains-table", data.items, (c) => cells(
    el("tr", null, { "data-chain": c.chain, "data-reachable": c.reachable }), [
      ["chain", c.chain], ["kind", c.kind], ["chain_id", c.chain_id],
      ["reachable", c.reachable ? "yes" : "NO"],
      ["latest", c.latest ?? "-", "num"], ["safe", c.safe ?? "-", "num"],
      ["finalized", c.finalized ?? "-", "num"], ["lag", c.lag ?? (c.error || "-"), "num"],
    ]));
}

function renderPipeline(data) {
  const list = $("#pipeline");
  list.replaceChildren(...STATES.map((s) => {
    const n = data.states[s] || 0;
    const li = el("li", null, { "data-state": s, "data-count": n });
    li.append(el("b", n), el("span", s));
    return li;
  }));
  const total = $("#pipeline-total");
  total.dataset.total = data.total;
  total.textContent = `${data.total} ${data.total === 1 ? "lock" : "locks"}`;
}

function renderLocks(data, now) {
  fillTable("#locks-table", data.items, (r) => {
    const seen = r.transitions.length ? r.transitions[0].at_ms : null;
    const sig = r.signatures ? `${r.signatures.have} of ${r.signatures.need}` : "-";
    const tr = el("tr", null, { "data-lock-key": r.key, "data-state": r.state,
                                "data-tx": r.tx_id });
    if (seen && now - seen < 5000) tr.className = "fresh";
    return cells(tr, [
      ["seen_at", seen ? new Date(seen).toLocaleTimeString() : "-"], ["chain", r.chain],
      ["lock_id", short(r.lock_id)], ["amount", r.amount_display, "num"],
      ["state", r.attributed ? r.state : `${r.state} UNATTRIBUTED`], ["signatures", sig],
      ["position", short(r.position_key)],
      ["age", seen ? `${Math.max(0, Math.round((now - seen) / 1000))} s` : "-", "num"],
    ]);
  });
  showEmpty("locks", data.items.length === 0);
}

function renderPositions(data, now) {
  fillTable("#positions-table", data.items, (p) => cells(
    el("tr", null, { "data-position": p.position, "data-liquidatable": p.liquidatable }), [
      ["position", short(p.position)], ["owner", short(p.owner)],
      ["size", fixed(p.size_e18, 18, 6), "num"], ["entry", fixed(p.entry_e8, 8, 2), "num"],
      ["equity", fixed(p.equity_usd_e18, 18, 2), "num"],
      ["initial", fixed(p.initial_usd_e18, 18, 2), "num"],
      ["maintenance", fixed(p.maintenance_usd_e18, 18, 2), "num"],
      ["margin_ratio", p.margin_ratio, "num"],
      ["liquidation_price", fixed(p.liquidation_price_e8, 8, 2), "num"],
      ["bankruptcy_price", fixed(p.bankruptcy_price_e8, 8, 2), "num"],
      ["status", p.liquidatable ? "LIQUIDATABLE" : "ok"],
    ]));
  showEmpty("positions", data.items.length === 0);
  for (const p of data.items) {
    const ratio = Number(p.margin_ratio); // display only: "-" (no requirement) is skipped
    if (!Number.isFinite(ratio)) continue;
    const points = series.get(p.position) || [];
    points.push({ t: now, ratio });
    if (points.length > MAX_SAMPLES) points.shift();
    series.set(p.position, points);
  }
}

function renderLiquidations(data) {
  fillTable("#liquidations-table", data.items, (l) => cells(
    el("tr", null, { "data-tx": l.tx_id, "data-position": l.position, "data-kind": l.kind }), [
      ["height", l.height, "num"], ["position", short(l.position)],
      ["kind", l.kind === "liquidation" ? (l.full ? "full" : "partial") : "shortfall"],
      ["closed_size", fixed(l.closed_size_e18, 18, 6), "num"],
      ["mark", fixed(l.mark_e8, 8, 2), "num"], ["fee", fixed(l.fee_usd_e18, 18, 2), "num"],
      ["shortfall", fixed(l.shortfall_usd_e18, 18, 2), "num"], ["tx", short(l.tx_id)],
    ]));
  showEmpty("liquidations", data.items.length === 0);
}

function markText(at) {
  return `${at.mark_e8 === null ? "none" : fixed(at.mark_e8, 8, 4)} (${at.max_age_s} s)`;
}

function renderMarks(data) {
  // one row per source; the market's mark and count head its first source's row
  const rows = [];
  for (const m of data.items) {
    m.sources.forEach((s, i) => {
      const tr = el("tr", null, { "data-market": m.market, "data-source": s.source,
                                  "data-kind": s.kind, "data-reason": s.reason,
                                  "data-quorum": m.user.quorum });
      if (s.reason !== "ok") tr.className = "off";
      rows.push(cells(tr, [
        ["market", i ? "" : m.market], ["mark", i ? "" : markText(m.user), "num"],
        ["mark_liquidation", i ? "" : markText(m.liquidation), "num"],
        ["valid", i ? "" : `${m.user.valid_sources} of ${m.min_sources}`, "num"],
        ["kind", s.kind], ["feed", short(s.feed)], ["price", fixed(s.price_e8, 8, 4), "num"],
        ["age", s.age_s === null ? "-" : `${s.age_s} s`, "num"],
        ["verdict", s.reason === s.reason_liquidation ? s.reason
          : `${s.reason} / liq. ${s.reason_liquidation}`, "verdict"],
      ]));
    });
  }
  $("#marks-table tbody").replaceChildren(...rows);
  showEmpty("marks", data.items.length === 0);
}

function drawChart() {
  const canvas = $("#margin-chart");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 40;
  ctx.clearRect(0, 0, w, h);
  const all = [...series.values()].flat();
  canvas.dataset.samples = all.length;
  canvas.dataset.series = series.size;
  if (!all.length) {
    ctx.fillStyle = "#6b7385";
    ctx.fillText("no open positions yet", pad, h / 2);
    return;
  }
  const t0 = Math.min(...all.map((p) => p.t)), t1 = Math.max(t0 + 1000, ...all.map((p) => p.t));
  const top = Math.max(1.5, ...all.map((p) => p.ratio)) * 1.05;
  const x = (t) => pad + ((t - t0) / (t1 - t0)) * (w - 2 * pad);
  const y = (r) => h - pad - (Math.max(0, r) / top) * (h - 2 * pad);
  ctx.strokeStyle = "#dde1ea";
  ctx.fillStyle = "#6b7385";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const r = (top * i) / 4;
    ctx.beginPath(); ctx.moveTo(pad, y(r)); ctx.lineTo(w - pad, y(r)); ctx.stroke();
    ctx.fillText(r.toFixed(2), 4, y(r) + 4);
  }
  ctx.strokeStyle = "#b42318"; // the liquidation line: equity = maintenance margin
  ctx.setLineDash([6, 4]);
  ctx.beginPath(); ctx.moveTo(pad, y(1)); ctx.lineTo(w - pad, y(1)); ctx.stroke();
  ctx.setLineDash([]);
  const legend = $("#chart-legend");
  legend.replaceChildren();
  [...series.entries()].forEach(([position, points], i) => {
    const color = COLORS[i % COLORS.length];
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    points.forEach((p, j) => (j ? ctx.lineTo(x(p.t), y(p.ratio)) : ctx.moveTo(x(p.t), y(p.ratio))));
    ctx.stroke();
    const item = el("li", null, { "data-position": position });
    const swatch = el("i");
    swatch.style.background = color;
    item.append(swatch, el("span", `${short(position)}  ${points[points.length - 1].ratio}`));
    legend.appendChild(item);
  });
}

function renderOps(ops) {
  const badge = $("#ops-badge");
  const down = ops.workers.filter((w) => !w.alive).map((w) => w.worker);
  badge.dataset.deadletters = ops.deadletters;
  badge.dataset.discarded = ops.pool_discarded;
  badge.dataset.state = ops.deadletters || down.length ? "warn" : "ok";
  badge.textContent = `dead letters ${ops.deadletters} · discarded ${ops.pool_discarded}` +
    (down.length ? ` · down: ${down.join(", ")}` : "");
}

async function section(name, path, render, now) {
  try {
    render(await getJson(path), now);
    showError(name, null);
    return true;
  } catch (err) {
    showError(name, err);
    return false;
  }
}

async function poll() {
  const now = Date.now();
  const results = await Promise.all([
    section("chains", "/api/v1/chains", renderChains, now),
    section("pipeline", "/api/v1/pipeline", renderPipeline, now),
    section("marks", "/api/v1/marks", renderMarks, now),
    section("locks", "/api/v1/locks?limit=20", renderLocks, now),
    section("positions", "/api/v1/positions?limit=100", renderPositions, now),
    section("liquidations", "/api/v1/liquidations?limit=20", renderLiquidations, now),
    section("ops", "/api/v1/operations", renderOps, now),
  ]);
  drawChart();
  polls += 1;
  const status = $("#status");
  const ok = results.every(Boolean);
  status.dataset.state = ok ? "ok" : "error";
  status.textContent = ok ? "live" : "some data unavailable";
  const stamp = $("#last-update");
  stamp.dataset.polls = polls;
  stamp.textContent = `updated ${new Date(now).toLocaleTimeString()}`;
}

async function loop() {
  await poll();
  setTimeout(loop, POLL_MS);
}

loop();
