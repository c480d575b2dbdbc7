// Keys: every key the token can see, with spend, status and expiry; revoke or rotate.

import { api } from "./api.js";
import { add, errorBox, field, fmtTime, h, table } from "./dom.js";
import { session } from "./session.js";
import { confirmButton, csvButton, expiry, issuedKeys, money, teamSelect } from "./widgets.js";

const filters = { team: "", status: "active" };

export async function render(root, _args, notice) {
  const team = session.role === "team" ? "" : filters.team;
  const [keys, experiments] = await Promise.all([api("/keys", { params: { team } }), api("/experiments", { params: { team } })]);
  const experimentNames = new Map(experiments.data.map((e) => [e.id, e.name]));
  const controls = h("form", { class: "controls", onsubmit: (e) => e.preventDefault() });
  const teamNames = new Map();
  if (session.role !== "team") {
    const { select, teams } = await teamSelect("keys-team", filters.team);
    for (const t of teams) teamNames.set(t.id, t.name);
    select.addEventListener("change", () => { filters.team = select.value; rerender(root, "keys-team"); });
    controls.append(field("Team", select));
  } else if (session.team) {
    teamNames.set(session.team.id, session.team.name);
  }
  const status = h(
    "select",
    { id: "keys-status", onchange: (e) => { filters.status = e.target.value; rerender(root, "keys-status"); } },
    [["", "every status"], ["active", "active"], ["revoked", "revoked"], ["expired", "expired"], ["ended", "ended"]].map(([v, l]) => h("option", { value: v, selected: v === filters.status }, l)),
  );
  controls.append(field("Status", status));
  const rows = keys.data.filter((k) => !filters.status || k.status === filters.status);
  const actions = (k) =>
    k.status !== "active"
      ? ""
      : h(
          "span",
          { class: "actions" },
          h("button", { type: "button", class: "secondary", "aria-label": `Rotate key ${k.prefix}`, onclick: async (e) => {
            try {
              const rotated = await api(`/keys/${k.id}/rotate`, { method: "POST", body: {} });
              await rerender(root, null, issuedKeys([rotated], `${rotated.prefix}.env`));
            } catch (error) {
              e.target.after(errorBox(error));
            }
          } }, "Rotate"),
          " ",
          confirmButton("Revoke", `Revoke ${k.prefix}?`, async () => {
            await api(`/keys/${k.id}/revoke`, { method: "POST", body: {} });
            await rerender(root);
          }),
        );
  add(root, 
    h("h1", {}, "Keys"),
    notice || null,
    controls,
    table({
      id: "keys",
      columns: [
        { label: "key", value: (k) => h("code", {}, k.prefix) },
        { label: "name", value: (k) => k.name ?? "—" },
        { label: "team", value: (k) => teamNames.get(k.team_id) || k.team_id },
        { label: "campaign", value: (k) => (k.experiment_id ? h("a", { href: `#/campaign/${k.experiment_id}` }, experimentNames.get(k.experiment_id) || k.experiment_id) : "—") },
        { label: "status", value: (k) => k.status },
        { label: "models", value: (k) => (k.allowed_models ? k.allowed_models.join(", ") : "any") },
        { label: "spend", value: (k) => money(k.spend_usd), num: true },
        { label: "created", value: (k) => fmtTime(k.created_at) },
        { label: "expires", value: expiry },
        { label: "", value: actions },
      ],
      rows,
      empty: "No key matches.",
    }),
    csvButton("Download CSV", "/keys", { team }, "keys.csv"),
  );
}

async function rerender(root, focusId, notice) {
  const fresh = h("div", { class: "page" });
  await render(fresh, [], notice);
  root.replaceWith(fresh);
  if (focusId) fresh.querySelector(`#${focusId}`)?.focus();
  else fresh.querySelector(".issued")?.focus();
}
