// One campaign: spend per hour by model, a table of its keys, its limits next to their use,
// and what can be done to it: change limits, issue keys, revoke or rotate a key, close it.

import { api } from "./api.js";
import { seriesFrom, stackedBars } from "./chart.js";
import { add, errorBox, field, fmtInt, fmtTime, h, hoursAgo, table } from "./dom.js";
import { limitsForm } from "./limits_form.js";
import { units } from "./money.js";
import { budgetBars, confirmButton, csvButton, expiry, issuedKeys, money, rateUse, sizeBars, stateBadge } from "./widgets.js";

const HOURS = 48;

function hourBuckets() {
  const out = [];
  for (let i = HOURS - 1; i >= 0; i -= 1) out.push(hoursAgo(i));
  return out;
}

const hourLabel = (iso) => `${iso.slice(5, 10)} ${iso.slice(11, 13)}h`;

export async function render(root, [id], notice) {
  const experiment = await api(`/experiments/${encodeURIComponent(id)}`);
  const eid = experiment.id;
  const from = hoursAgo(HOURS - 1);
  const [limits, hourly, keys, perKey, recent, total, team] = await Promise.all([
    api(`/experiments/${eid}/limits`),
    api("/spend", { params: { experiment: eid, group_by: "hour,model", from, order: "hour.asc" } }),
    api("/keys", { params: { experiment: eid } }),
    api("/spend", { params: { experiment: eid, group_by: "key" } }),
    api("/requests", { params: { experiment: eid, limit: 1000 } }),
    api("/spend", { params: { experiment: eid } }),
    api(`/teams/${experiment.team_id}`),
  ]);
  const again = (extra) => rerender(root, id, extra);
  const keySpend = new Map(perKey.data.map((r) => [r.key_id, r]));
  const lastUsed = new Map();
  for (const r of recent.data) if (!lastUsed.has(r.key_id)) lastUsed.set(r.key_id, r.created_at);
  const buckets = hourBuckets();
  const series = seriesFrom(hourly.data, buckets.map(hourLabel), (r) => hourLabel(r.hour), (r) => r.model, units);
  const usage = limits.usage;
  const open = experiment.state !== "closed";

  const keyActions = (k) => {
    if (k.status !== "active") return h("span", { class: "muted" }, k.status);
    return h(
      "span",
      { class: "actions" },
      h("button", { type: "button", class: "secondary", "aria-label": `Rotate key ${k.prefix}`, onclick: async (e) => {
        e.target.disabled = true;
        try {
          const rotated = await api(`/keys/${k.id}/rotate`, { method: "POST", body: {} });
          await again(issuedKeys([rotated], `${experiment.name}-${rotated.prefix}.env`));
        } catch (error) {
          e.target.after(errorBox(error));
        }
      } }, "Rotate"),
      " ",
      confirmButton("Revoke", `Revoke ${k.prefix}? Requests with it are refused at once.`, async () => {
        await api(`/keys/${k.id}/revoke`, { method: "POST", body: {} });
        await again();
      }),
    );
  };

  const countInput = h("input", { id: "issue-count", type: "number", min: 1, max: 1000, value: 1, required: true });
  const nameInput = h("input", { id: "issue-name", type: "text", value: experiment.name, maxlength: 200 });
  const issueResult = h("div", { class: "form-result" });
  const issueForm = h(
    "form",
    { id: "issue-form", class: "inline", onsubmit: async (event) => {
      event.preventDefault();
      issueResult.replaceChildren();
      try {
        const issued = await api("/keys", { method: "POST", body: { team: experiment.team_id, experiment: eid, count: Number(countInput.value), name: nameInput.value || undefined } });
        await again(issuedKeys(issued.data, `${experiment.name}.env`));
      } catch (error) {
        issueResult.append(errorBox(error));
      }
    } },
    field("How many keys", countInput),
    field("Key name", nameInput),
    h("button", { type: "submit" }, "Issue keys"),
    issueResult,
  );

  const closeBox = h("div", { id: "close-campaign" });
  if (open) {
    closeBox.append(
      confirmButton("Close campaign", `Close ${experiment.name}? Its ${keys.data.filter((k) => k.status === "active").length} active keys are revoked now and it ends.`, async () => {
        const closed = await api(`/campaigns/${eid}/close`, { method: "POST", body: {} });
        await again(finalReport(closed, eid, experiment.name));
      }),
    );
  }

  add(root, 
    h("p", { class: "crumbs" }, h("a", { href: "#/campaigns" }, "Campaigns"), " / "),
    h("h1", {}, experiment.name, " ", stateBadge(experiment.state)),
    notice || null,
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Team"), h("dd", {}, team.name),
      h("dt", {}, "Spent"), h("dd", { id: "campaign-total" }, money(total.total.cost_usd)),
      h("dt", {}, "Requests"), h("dd", {}, `${fmtInt(total.total.requests)} (${fmtInt(total.total.errors)} errors)`),
      h("dt", {}, "Ends"), h("dd", {}, fmtTime(experiment.ends_at)),
      h("dt", {}, "Tags"), h("dd", {}, experiment.tags.length ? experiment.tags.join(", ") : "—"),
      h("dt", {}, "Created"), h("dd", {}, fmtTime(experiment.created_at)),
    ),
    h(
      "section",
      { "aria-labelledby": "limits-h" },
      h("h2", { id: "limits-h" }, "Limits and their use"),
      budgetBars(usage),
      modelLimits(usage),
      h(
        "ul",
        { class: "rates" },
        h("li", {}, `requests this minute: ${rateUse(usage?.rpm)}`),
        h("li", {}, `tokens this minute: ${rateUse(usage?.tpm)}`),
        h("li", {}, `concurrent now: ${usage?.concurrency ? `${usage.concurrency.limit - usage.concurrency.remaining} / ${usage.concurrency.limit}` : "—"}`),
      ),
      open ? h("details", {}, h("summary", {}, "Change limits and budgets"), limitsForm(`/experiments/${eid}/limits`, limits.limits, () => again(h("p", { class: "notice", role: "status" }, "Limits saved.")))) : null,
    ),
    stackedBars({ title: `Spend per hour by model, last ${HOURS} hours`, buckets: buckets.map(hourLabel), series }),
    csvButton("Download CSV", "/spend", { experiment: eid, group_by: "hour,model", from, order: "hour.asc" }, `${experiment.name}-hourly.csv`),
    h(
      "section",
      { "aria-labelledby": "keys-h" },
      h("h2", { id: "keys-h" }, "Keys"),
      table({
        id: "campaign-keys",
        columns: [
          { label: "key", value: (k) => h("code", {}, k.prefix) },
          { label: "name", value: (k) => k.name ?? "—" },
          { label: "status", value: (k) => k.status },
          { label: "spend", value: (k) => money(k.spend_usd), num: true },
          { label: "requests", value: (k) => fmtInt(keySpend.get(k.id)?.requests ?? 0), num: true },
          { label: "errors", value: (k) => fmtInt(keySpend.get(k.id)?.errors ?? 0), num: true },
          { label: "last used", value: (k) => (lastUsed.has(k.id) ? fmtTime(lastUsed.get(k.id)) : keySpend.has(k.id) ? "earlier" : "never") },
          { label: "expires", value: expiry },
          { label: "", value: keyActions },
        ],
        rows: keys.data,
        empty: "No keys yet.",
      }),
      csvButton("Download CSV (spend by key)", "/spend", { experiment: eid, group_by: "key" }, `${experiment.name}-keys.csv`),
      open ? h("h3", {}, "Issue more keys") : null,
      open ? issueForm : null,
    ),
    open ? h("section", { "aria-labelledby": "close-h" }, h("h2", { id: "close-h" }, "Close the campaign"), h("p", {}, "Closing revokes every key of the campaign at once and shows its final report."), closeBox) : null,
  );
  sizeBars(root);
}

function finalReport(closed, eid, name) {
  return h(
    "section",
    { class: "issued", tabindex: -1, id: "final-report", "aria-label": "Final report" },
    h("h2", {}, "Final report"),
    h("p", {}, `Closed; ${closed.revoked_keys} keys revoked. Total `, money(closed.report.total.cost_usd), ` over ${fmtInt(closed.report.total.requests)} requests.`),
    table({
      columns: [
        { label: "key", value: (r) => h("code", {}, r.key_prefix) },
        { label: "model", value: (r) => r.model },
        { label: "requests", value: (r) => fmtInt(r.requests), num: true },
        { label: "errors", value: (r) => fmtInt(r.errors), num: true },
        { label: "spend", value: (r) => money(r.cost_usd), num: true },
      ],
      rows: closed.report.data,
      empty: "The campaign served no requests.",
    }),
    csvButton("Download CSV", "/spend", { experiment: eid, group_by: "key,model" }, `${name}-final-report.csv`),
  );
}

async function rerender(root, id, notice) {
  const fresh = h("div", { class: "page" });
  await render(fresh, [id], notice);
  root.replaceWith(fresh);
  (fresh.querySelector(".issued, [role=status]") || fresh.querySelector("h1")).focus?.();
}

/** The campaign's limits on models: each model's budgets as bars, and its rates. */
function modelLimits(usage) {
  const models = (usage && usage.models) || [];
  if (!models.length) return null;
  return h(
    "div",
    { id: "model-limits" },
    models.map((m) =>
      h(
        "div",
        { class: "model-limit", "data-model": m.model },
        h("h3", {}, `Model ${m.model}`),
        m.budgets.length ? budgetBars(m) : null,
        m.rpm ? h("p", {}, `requests this minute: ${rateUse(m.rpm)}`) : null,
        m.tpm ? h("p", {}, `tokens this minute: ${rateUse(m.tpm)}`) : null,
      ),
    ),
  );
}
