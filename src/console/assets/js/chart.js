// Stacked bar charts in SVG. Each series has a colour and a fill pattern, and the legend and
// a table under the chart name them, so nothing is told by colour alone.

import { h, svg } from "./dom.js";
import { exact, share, usd } from "./money.js";

const FILLS = [
  { color: "#1f5fa8", pattern: null },
  { color: "#d9822b", pattern: "stripes" },
  { color: "#2f8a4c", pattern: "dots" },
  { color: "#8e44ad", pattern: "cross" },
  { color: "#b8342b", pattern: "rows" },
  { color: "#5b6770", pattern: "columns" },
];

const MAX_SERIES = FILLS.length;
let chartCount = 0;

function patternDef(id, fill) {
  const marks = {
    stripes: [svg("path", { d: "M0,8 L8,0", stroke: "#fff", "stroke-width": 2 })],
    dots: [svg("circle", { cx: 4, cy: 4, r: 1.6, fill: "#fff" })],
    cross: [svg("path", { d: "M0,0 L8,8 M8,0 L0,8", stroke: "#fff", "stroke-width": 1.2 })],
    rows: [svg("path", { d: "M0,4 L8,4", stroke: "#fff", "stroke-width": 2 })],
    columns: [svg("path", { d: "M4,0 L4,8", stroke: "#fff", "stroke-width": 2 })],
  }[fill.pattern];
  return svg(
    "pattern",
    { id, width: 8, height: 8, patternUnits: "userSpaceOnUse" },
    svg("rect", { width: 8, height: 8, fill: fill.color }),
    marks,
  );
}

/**
 * buckets: labels along the x axis; series: [{name, values: [BigInt per bucket]}]. Series
 * past the sixth are summed into "other".
 */
export function stackedBars({ title, buckets, series, axisLabel = (b) => b }) {
  const shown = series.slice(0, MAX_SERIES - 1);
  if (series.length > MAX_SERIES - 1) {
    const rest = series.slice(MAX_SERIES - 1);
    shown.push({
      name: `other (${rest.length})`,
      values: buckets.map((_, i) => rest.reduce((t, s) => t + s.values[i], 0n)),
    });
  }
  const chartId = `chart${(chartCount += 1)}`;
  const totals = buckets.map((_, i) => shown.reduce((t, s) => t + s.values[i], 0n));
  const max = totals.reduce((m, v) => (v > m ? v : m), 0n);
  const width = 760;
  const height = 220;
  const left = 70;
  const bottom = 28;
  const plotHeight = height - bottom - 10;
  const slot = (width - left - 10) / Math.max(buckets.length, 1);
  const barWidth = Math.max(Math.min(slot * 0.7, 40), 2);
  const defs = svg("defs", {}, shown.map((s, i) => (FILLS[i].pattern ? patternDef(`${chartId}-p${i}`, FILLS[i]) : null)));
  const fillOf = (i) => (FILLS[i].pattern ? `url(#${chartId}-p${i})` : FILLS[i].color);
  const bars = [];
  buckets.forEach((bucket, b) => {
    let y = 10 + plotHeight;
    shown.forEach((s, i) => {
      const value = s.values[b];
      if (value <= 0n) return;
      const barHeight = share(value, max) * plotHeight;
      y -= barHeight;
      bars.push(
        svg(
          "rect",
          { x: left + b * slot + (slot - barWidth) / 2, y, width: barWidth, height: Math.max(barHeight, 0.5), fill: fillOf(i), stroke: FILLS[i].color },
          svg("title", {}, `${bucket} · ${s.name}: ${usd(value)} (${exact(value)} USD)`),
        ),
      );
    });
  });
  // As many labels as fit side by side: about 7 units per character plus a gap.
  const longest = buckets.reduce((m, bucket) => Math.max(m, String(axisLabel(bucket)).length), 1);
  const fitting = Math.max(1, Math.floor((width - left - 10) / (longest * 7 + 16)));
  const every = Math.max(1, Math.ceil(buckets.length / fitting));
  const labels = buckets.map((bucket, b) =>
    b % every === 0
      ? svg("text", { x: left + b * slot + slot / 2, y: height - 8, "text-anchor": "middle", class: "axis" }, axisLabel(bucket))
      : null,
  );
  const axis = [
    svg("line", { x1: left, y1: 10 + plotHeight, x2: width - 10, y2: 10 + plotHeight, class: "axis-line" }),
    svg("text", { x: left - 6, y: 16, "text-anchor": "end", class: "axis" }, usd(max)),
    svg("text", { x: left - 6, y: 10 + plotHeight, "text-anchor": "end", class: "axis" }, "$0"),
  ];
  const chart = svg(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title}: the table below has the numbers`, class: "chart" },
    defs,
    axis,
    bars,
    labels,
  );
  const legend = h(
    "ul",
    { class: "legend" },
    shown.map((s, i) =>
      h(
        "li",
        {},
        svg("svg", { width: 16, height: 16, "aria-hidden": "true" }, FILLS[i].pattern ? patternDef(`${chartId}-l${i}`, FILLS[i]) : null, svg("rect", { width: 16, height: 16, fill: FILLS[i].pattern ? `url(#${chartId}-l${i})` : FILLS[i].color })),
        s.name,
      ),
    ),
  );
  const rows = buckets.map((bucket, b) =>
    h("tr", {}, h("th", { scope: "row" }, bucket), shown.map((s) => h("td", { class: "num" }, usd(s.values[b]))), h("td", { class: "num" }, usd(totals[b]))),
  );
  const data = h(
    "details",
    { class: "chart-data" },
    h("summary", {}, "Show the numbers"),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, ""), shown.map((s) => h("th", { scope: "col", class: "num" }, s.name)), h("th", { scope: "col", class: "num" }, "total"))),
        h("tbody", {}, rows),
      ),
    ),
  );
  return h("figure", { class: "chart-box" }, h("figcaption", {}, title), buckets.length ? chart : h("p", { class: "empty" }, "No spend in this range."), legend, data);
}

/** Turns report rows into chart series: one series per `seriesKey`, one bucket per `bucketKey`. */
export function seriesFrom(rows, buckets, bucketOf, seriesOf, units) {
  const index = new Map(buckets.map((b, i) => [b, i]));
  const byName = new Map();
  for (const row of rows) {
    const name = seriesOf(row);
    if (!byName.has(name)) byName.set(name, { name, values: buckets.map(() => 0n), total: 0n });
    const entry = byName.get(name);
    const at = index.get(bucketOf(row));
    if (at === undefined) continue;
    const value = units(row.cost_usd);
    entry.values[at] += value;
    entry.total += value;
  }
  return [...byName.values()].sort((a, b) => (b.total > a.total ? 1 : b.total < a.total ? -1 : 0));
}
