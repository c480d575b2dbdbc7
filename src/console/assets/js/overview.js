// Overview: spend today, this week and this month; spend per day as a chart stacked by team
// or by model; the biggest experiments, keys and models; requests, error rate and tokens.

import { api } from "./api.js";
import { seriesFrom, stackedBars } from "./chart.js";
import { add, daysAgo, field, fmtInt, h, table } from "./dom.js";
import { units } from "./money.js";
import { csvButton, money } from "./widgets.js";

const view = { days: 30, stack: "team" };

function weekStart() {
  const date = new Date();
  date.setUTCHours(0, 0, 0, 0);
  date.setUTCDate(date.getUTCDate() - ((date.getUTCDay() + 6) % 7));
  return date.toISOString().slice(0, 10);
}

function monthStart() {
  return `${new Date().toISOString().slice(0, 7)}-01`;
}

/** Totals of the report rows from `since` (a `YYYY-MM-DD`) on: exact sums, no floats. */
function totalSince(rows, since) {
  const total = { cost: 0n, requests: 0n, errors: 0n, input: 0n, output: 0n };
  for (const r of rows) {
    if (r.day < since) continue;
    total.cost += units(r.cost_usd);
    total.requests += BigInt(r.requests);
    total.errors += BigInt(r.errors);
    total.input += BigInt(r.input_tokens);
    total.output += BigInt(r.output_tokens);
  }
  return total;
}

function card(label, id, total) {
  return h("div", { class: "card", id }, h("div", { class: "card-label" }, label), h("div", { class: "card-value" }, money(total.cost)), h("div", { class: "card-sub" }, `${fmtInt(total.requests)} requests`));
}

function days(from) {
  const out = [];
  const date = new Date(`${from}T00:00:00Z`);
  const today = daysAgo(0);
  while (date.toISOString().slice(0, 10) <= today) {
    out.push(date.toISOString().slice(0, 10));
    date.setUTCDate(date.getUTCDate() + 1);
  }
  return out;
}

function topTable(title, by, report, from) {
  const name = {
    experiment: (r) => (r.experiment_name === null ? "(no experiment)" : r.experiment_name),
    key: (r) => r.key_prefix,
    model: (r) => r.model,
  }[by];
  return h(
    "section",
    { class: "top" },
    h("h2", {}, title),
    table({
      id: `top-${by}`,
      columns: [
        { label: by, value: name },
        { label: "spend", value: (r) => money(r.cost_usd), num: true },
        { label: "requests", value: (r) => fmtInt(r.requests), num: true },
      ],
      rows: report.data,
      empty: "No requests in this range.",
    }),
    csvButton(`Download CSV`, "/spend/top", { by, limit: 100, from }, `top-${by}.csv`),
  );
}

export async function render(root) {
  const from = daysAgo(view.days - 1);
  const groupBy = `day,${view.stack}`;
  // One daily report covers the cards and the chart: today, this week and this month are
  // sums of its days.
  const earliest = [from, weekStart(), monthStart()].sort()[0];
  const [daily, topExperiments, topKeys, topModels] = await Promise.all([
    api("/spend", { params: { group_by: groupBy, from: earliest, order: "day.asc" } }),
    api("/spend/top", { params: { by: "experiment", limit: 5, from } }),
    api("/spend/top", { params: { by: "key", limit: 5, from } }),
    api("/spend/top", { params: { by: "model", limit: 5, from } }),
  ]);
  const total = totalSince(daily.data, from);
  // Tenths of a percent, in integers.
  const errorRate = total.requests > 0n ? `${(Number((total.errors * 1000n) / total.requests) / 10).toFixed(1)} %` : "—";
  const rangeSelect = h(
    "select",
    { id: "range", onchange: (e) => { view.days = Number(e.target.value); rerender(root); } },
    [7, 30, 90].map((d) => h("option", { value: d, selected: d === view.days }, `last ${d} days`)),
  );
  const stackSelect = h(
    "select",
    { id: "stack", onchange: (e) => { view.stack = e.target.value; rerender(root); } },
    h("option", { value: "team", selected: view.stack === "team" }, "team"),
    h("option", { value: "model", selected: view.stack === "model" }, "model"),
  );
  const buckets = days(from);
  const seriesName = view.stack === "team" ? (r) => r.team_name : (r) => r.model;
  const series = seriesFrom(daily.data, buckets, (r) => r.day, seriesName, units);
  add(root, 
    h("h1", {}, "Overview"),
    h("div", { class: "cards" }, card("Today", "spend-today", totalSince(daily.data, daysAgo(0))), card("This week", "spend-week", totalSince(daily.data, weekStart())), card("This month", "spend-month", totalSince(daily.data, monthStart()))),
    h("form", { class: "controls", onsubmit: (e) => e.preventDefault() }, field("Range", rangeSelect), field("Stack by", stackSelect)),
    h(
      "div",
      { class: "cards" },
      h("div", { class: "card", id: "range-spend" }, h("div", { class: "card-label" }, "Spend in range"), h("div", { class: "card-value" }, money(total.cost))),
      h("div", { class: "card", id: "range-requests" }, h("div", { class: "card-label" }, "Requests"), h("div", { class: "card-value" }, fmtInt(total.requests))),
      h("div", { class: "card", id: "range-errors" }, h("div", { class: "card-label" }, "Error rate"), h("div", { class: "card-value" }, errorRate), h("div", { class: "card-sub" }, `${fmtInt(total.errors)} errors`)),
      h("div", { class: "card", id: "range-tokens" }, h("div", { class: "card-label" }, "Tokens"), h("div", { class: "card-value" }, fmtInt(total.input + total.output)), h("div", { class: "card-sub" }, `${fmtInt(total.input)} in, ${fmtInt(total.output)} out`)),
    ),
    stackedBars({ title: `Spend per day by ${view.stack}`, buckets, series, axisLabel: (day) => day.slice(5) }),
    csvButton("Download CSV", "/spend", { group_by: groupBy, from: earliest, order: "day.asc" }, `spend-by-${groupBy.replace(",", "-")}.csv`),
    h("div", { class: "tops" }, topTable("Top experiments", "experiment", topExperiments, from), topTable("Top keys", "key", topKeys, from), topTable("Top models", "model", topModels, from)),
  );
}

async function rerender(root) {
  const focused = document.activeElement?.id || "range";
  const fresh = h("div", { class: "page" });
  await render(fresh);
  root.replaceWith(fresh);
  fresh.querySelector(`#${focused}`)?.focus();
}
