// Campaigns: every experiment with its budgets as bars, its burn rate over the last 24 hours
// and when its budget runs out at that rate, rpm/tpm in use now, its end, keys and state.

import { api } from "./api.js";
import { add, field, fmtTime, h, hoursAgo, table } from "./dom.js";
import { units } from "./money.js";
import { session } from "./session.js";
import { budgetBars, burn, csvButton, money, rateUse, runsOutText, sizeBars, stateBadge, teamSelect } from "./widgets.js";

const filters = { team: "", state: "running" };
const BURN_HOURS = 24;

/** The start of the burn-rate window: 24 hours back, or the experiment's creation if later. */
function burnWindow(experiment) {
  const from = new Date(hoursAgo(BURN_HOURS - 1));
  const created = new Date(experiment.created_at);
  const start = created > from ? created : from;
  return Math.max(Math.floor((Date.now() - start.getTime()) / 1000), 60);
}

export async function render(root) {
  const team = session.role === "team" ? "" : filters.team;
  const scope = team ? { team } : {};
  const burnFrom = hoursAgo(BURN_HOURS - 1);
  const [experiments, keys, recent, total] = await Promise.all([
    api("/experiments", { params: scope }),
    api("/keys", { params: scope }),
    api("/spend", { params: { ...scope, group_by: "experiment", from: burnFrom } }),
    api("/spend", { params: { ...scope, group_by: "experiment" } }),
  ]);
  const shown = experiments.data.filter((e) => !filters.state || e.state === filters.state);
  const usages = await Promise.all(shown.map((e) => api(`/experiments/${e.id}/limits`)));
  const byId = (report) => new Map(report.data.map((r) => [r.experiment_id, r]));
  const recentById = byId(recent);
  const totalById = byId(total);
  const keyCount = new Map();
  for (const k of keys.data) {
    const entry = keyCount.get(k.experiment_id) || { all: 0, active: 0 };
    entry.all += 1;
    if (k.status === "active") entry.active += 1;
    keyCount.set(k.experiment_id, entry);
  }
  const teamNames = new Map();
  const controls = h("form", { class: "controls", onsubmit: (e) => e.preventDefault() });
  if (session.role !== "team") {
    const { select, teams } = await teamSelect("filter-team", filters.team);
    for (const t of teams) teamNames.set(t.id, t.name);
    select.addEventListener("change", () => { filters.team = select.value; rerender(root, "filter-team"); });
    controls.append(field("Team", select));
  } else if (session.team) {
    teamNames.set(session.team.id, session.team.name);
  }
  const stateSelect = h(
    "select",
    { id: "filter-state", onchange: (e) => { filters.state = e.target.value; rerender(root, "filter-state"); } },
    [["", "every state"], ["running", "running"], ["ended", "ended"], ["closed", "closed"]].map(([v, l]) => h("option", { value: v, selected: v === filters.state }, l)),
  );
  controls.append(field("State", stateSelect));
  const rows = shown.map((e, i) => {
    const usage = usages[i].usage;
    const spent = units(recentById.get(e.id)?.cost_usd || "0");
    const { perHour, runsOut } = burn(usage, spent, burnWindow(e));
    return { e, usage, perHour, runsOut, total: totalById.get(e.id)?.cost_usd || "0", keys: keyCount.get(e.id) || { all: 0, active: 0 } };
  });
  add(root, 
    h("h1", {}, "Campaigns"),
    controls,
    table({
      id: "campaigns",
      columns: [
        { label: "campaign", value: (r) => h("a", { href: `#/campaign/${encodeURIComponent(r.e.id)}` }, r.e.name) },
        { label: "team", value: (r) => teamNames.get(r.e.team_id) || r.e.team_id },
        { label: "state", value: (r) => stateBadge(r.e.state) },
        { label: "spent", value: (r) => money(r.total), num: true },
        { label: "budgets", value: (r) => budgetBars(r.usage) },
        { label: "burn rate", value: (r) => h("span", {}, money(r.perHour), " / h"), num: true },
        { label: "budget runs out", value: (r) => runsOutText(r.runsOut, r.e.ends_at) },
        { label: "rpm now", value: (r) => rateUse(r.usage?.rpm), num: true },
        { label: "tpm now", value: (r) => rateUse(r.usage?.tpm), num: true },
        { label: "ends", value: (r) => fmtTime(r.e.ends_at) },
        { label: "keys", value: (r) => `${r.keys.active} active / ${r.keys.all}`, num: true },
      ],
      rows,
      empty: "No campaign matches. Launch one from the Launch page.",
    }),
    csvButton("Download CSV (spend by campaign)", "/spend", { ...scope, group_by: "team,experiment" }, "spend-by-experiment.csv"),
  );
  sizeBars(root);
}

async function rerender(root, focusId) {
  const fresh = h("div", { class: "page" });
  await render(fresh);
  root.replaceWith(fresh);
  fresh.querySelector(`#${focusId}`)?.focus();
}
