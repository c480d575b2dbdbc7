// The form that changes a scope's limits and budgets: PUT .../limits with the whole set.

import { api } from "./api.js";
import { errorBox, field, h } from "./dom.js";

const PERIODS = ["total", "daily", "weekly", "monthly"];

function numberInput(id, value, min = 1) {
  return h("input", { id, name: id, type: "number", min, step: 1, inputmode: "numeric", value: value ?? "" });
}

/** `path` is e.g. `/experiments/<id>/limits`; `done` runs after a successful change. */
export function limitsForm(path, limits, done) {
  const current = limits || {};
  const amount = (period) => (current.budgets || []).find((b) => b.period === period)?.amount_usd ?? "";
  const inputs = {
    rpm: numberInput("limit-rpm", current.rpm),
    tpm: numberInput("limit-tpm", current.tpm),
    max_concurrent: numberInput("limit-concurrent", current.max_concurrent),
  };
  const budgets = Object.fromEntries(
    PERIODS.map((p) => [p, h("input", { id: `budget-${p}`, name: `budget-${p}`, type: "text", inputmode: "decimal", autocomplete: "off", value: amount(p), placeholder: "none" })]),
  );
  const mode = h(
    "select",
    { id: "limit-mode" },
    ["strict", "estimate"].map((m) => h("option", { value: m, selected: (current.budget_mode || "strict") === m }, m)),
  );
  const failure = h(
    "select",
    { id: "limit-failure" },
    ["closed", "open"].map((m) => h("option", { value: m, selected: (current.on_redis_failure || "closed") === m }, m)),
  );
  const result = h("div", { class: "form-result" });
  const form = h(
    "form",
    {
      id: "limits-form",
      class: "stack",
      onsubmit: async (event) => {
        event.preventDefault();
        // The scope's limits on models are not edited here: sent back as they are, since
        // the API replaces a scope's limits as a whole.
        const body = { budgets: [], budget_mode: mode.value, on_redis_failure: failure.value, models: current.models || [] };
        for (const [name, input] of Object.entries(inputs)) {
          if (input.value.trim() !== "") body[name] = Number(input.value);
        }
        for (const [period, input] of Object.entries(budgets)) {
          // Sent as typed: the API parses the decimal exactly and names a bad one.
          if (input.value.trim() !== "") body.budgets.push({ period, amount_usd: input.value.trim() });
        }
        result.replaceChildren();
        try {
          await api(path, { method: "PUT", body });
          await done();
        } catch (error) {
          result.append(errorBox(error));
        }
      },
    },
    h(
      "fieldset",
      {},
      h("legend", {}, "Rates and concurrency (empty: no limit)"),
      field("Requests per minute", inputs.rpm),
      field("Tokens per minute", inputs.tpm),
      field("Concurrent requests", inputs.max_concurrent),
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "Budgets in USD (empty: none)"),
      PERIODS.map((p) => field(`${p[0].toUpperCase()}${p.slice(1)}`, budgets[p])),
      field("Budget mode", mode, "strict reserves the worst case before each request"),
      field("If Redis is down", failure),
    ),
    h("button", { type: "submit" }, "Save limits"),
    result,
  );
  return form;
}
