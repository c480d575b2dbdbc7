// Launch a campaign: an experiment with its limits, budget and keys in one call
// (POST /campaigns, one transaction), then its keys shown once.

import { api } from "./api.js";
import { add, errorBox, field, h } from "./dom.js";
import { session } from "./session.js";
import { issuedKeys, teamSelect } from "./widgets.js";

const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);

export async function render(root) {
  let team;
  if (session.role === "team") {
    team = h("input", { id: "launch-team", type: "text", value: session.team?.name || "", readonly: true });
  } else {
    team = (await teamSelect("launch-team", null, false)).select;
  }
  const input = (id, attrs) => h("input", { id, name: id, ...attrs });
  const name = input("launch-name", { type: "text", required: true, maxlength: 200, autocomplete: "off" });
  const tags = input("launch-tags", { type: "text", placeholder: "nightly, gsm8k" });
  const ends = input("launch-ends", { type: "datetime-local" });
  const count = input("launch-keys", { type: "number", min: 1, max: 1000, value: 1, required: true });
  const models = input("launch-models", { type: "text", placeholder: "any configured model" });
  const rpm = input("launch-rpm", { type: "number", min: 1 });
  const tpm = input("launch-tpm", { type: "number", min: 1 });
  const total = input("launch-budget", { type: "text", inputmode: "decimal", placeholder: "none" });
  const daily = input("launch-daily", { type: "text", inputmode: "decimal", placeholder: "none" });
  const result = h("div", { class: "form-result", id: "launch-result" });
  const form = h(
    "form",
    {
      id: "launch-form",
      class: "stack",
      onsubmit: async (event) => {
        event.preventDefault();
        result.replaceChildren();
        const limits = { budgets: [] };
        if (rpm.value) limits.rpm = Number(rpm.value);
        if (tpm.value) limits.tpm = Number(tpm.value);
        if (total.value.trim()) limits.budgets.push({ period: "total", amount_usd: total.value.trim() });
        if (daily.value.trim()) limits.budgets.push({ period: "daily", amount_usd: daily.value.trim() });
        const body = {
          team: session.role === "team" ? session.team.id : team.value,
          name: name.value.trim(),
          tags: list(tags.value),
          keys: Number(count.value),
        };
        if (ends.value) body.ends_at = new Date(ends.value).toISOString();
        if (list(models.value).length) body.allowed_models = list(models.value);
        if (limits.rpm || limits.tpm || limits.budgets.length) body.limits = limits;
        try {
          const launched = await api("/campaigns", { method: "POST", body });
          const link = h("a", { href: `#/campaign/${launched.experiment.id}`, id: "launched-link" }, `Open ${launched.experiment.name}`);
          result.append(h("p", { class: "notice", role: "status" }, `Launched ${launched.experiment.name}. `, link), issuedKeys(launched.keys, `${launched.experiment.name}.env`));
          form.reset();
          result.querySelector(".issued")?.focus();
        } catch (error) {
          result.append(errorBox(error));
        }
      },
    },
    field("Team", team),
    field("Name", name, "unique within the team; every key carries it"),
    field("Tags", tags, "comma-separated"),
    field("Ends (your local time)", ends, "its keys stop then; empty: no end"),
    field("Keys", count, "1 to 1000"),
    field("Allowed models", models, "comma-separated; empty: any"),
    field("Requests per minute", rpm),
    field("Tokens per minute", tpm),
    field("Total budget (USD)", total),
    field("Daily budget (USD)", daily),
    h("button", { type: "submit" }, "Launch campaign"),
  );
  add(root, h("h1", {}, "Launch a campaign"), form, result);
}
