// Charts of the page: SVG sparklines, the product chart (uPlot, vendored), HTML bars.
import { el, pct } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";

// A sparkline of negative shares in [0, 1]: a dot per bucket with reviews, joined in order
// (buckets without reviews have no share and are skipped).
export function sparkline(values, width = 110, height = 22) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const step = values.length > 1 ? (width - 4) / (values.length - 1) : 0;
  const xy = [];
  values.forEach((v, i) => {
    if (v !== null) xy.push([2 + i * step, height - 2 - v * (height - 4)]);
  });
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", xy.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join(""));
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", "#d64545");
  path.setAttribute("stroke-width", "1.2");
  svg.append(path);
  for (const [x, y] of xy) {
    const dot = document.createElementNS(SVG, "circle");
    dot.setAttribute("cx", x.toFixed(1));
    dot.setAttribute("cy", y.toFixed(1));
    dot.setAttribute("r", "1.6");
    dot.setAttribute("fill", "#d64545");
    svg.append(dot);
  }
  return svg;
}

// The product chart: negative share with the baseline band, reviews per bucket as bars.
let chart = null;

export function productChart(target, body) {
  const xs = body.series.map((p) => Date.parse(p.start) / 1000);
  const share = body.series.map((p) => (p.volume ? p.shares.negative : null));
  const lo = body.baseline.band.map((b) => (b ? b[0] : null));
  const hi = body.baseline.band.map((b) => (b ? b[1] : null));
  const volume = body.series.map((p) => p.volume);
  const data = [xs, volume, hi, lo, share];
  const width = Math.max(320, target.clientWidth - 4);
  if (chart && chart.root.parentNode === target && chart.series.length === data.length) {
    chart.setData(data);
    if (chart.width !== width) chart.setSize({ width, height: 260 });
    return chart;
  }
  if (chart) chart.destroy();
  target.replaceChildren();
  const bars = uPlot.paths.bars({ size: [0.6, 40] });
  chart = new uPlot(
    {
      width,
      height: 260,
      scales: { share: { range: [0, 1] }, n: { range: (u, min, max) => [0, Math.max(1, max) * 1.1] } },
      axes: [
        {},
        { scale: "share", values: (u, ticks) => ticks.map((t) => pct(t, 0)) },
        { scale: "n", side: 1, grid: { show: false } },
      ],
      series: [
        {},
        { label: "reviews", scale: "n", paths: bars, fill: "rgba(52,97,193,0.25)", stroke: "rgba(52,97,193,0.5)", points: { show: false } },
        { label: "band high", scale: "share", stroke: "rgba(214,69,69,0.25)", points: { show: false }, value: (u, v) => pct(v) },
        { label: "band low", scale: "share", stroke: "rgba(214,69,69,0.25)", points: { show: false }, value: (u, v) => pct(v) },
        { label: "negative share", scale: "share", stroke: "#d64545", width: 2, spanGaps: false, value: (u, v) => pct(v) },
      ],
      bands: [{ series: [2, 3], fill: "rgba(214,69,69,0.12)" }],
    },
    data,
    target,
  );
  return chart;
}

// Horizontal bars: [[label, count]], widths relative to the largest.
export function bars(target, rows, cls = "") {
  const max = Math.max(1, ...rows.map((r) => r[1]));
  target.replaceChildren(
    ...rows.map(([label, n]) =>
      el("div", { class: `row ${cls}` },
        el("span", {}, label),
        el("div", { class: "bar", style: `width:${(100 * n) / max}%` }),
        el("span", {}, String(n)))),
  );
  if (!rows.length) target.replaceChildren(el("p", { class: "empty" }, "none in this window"));
}
