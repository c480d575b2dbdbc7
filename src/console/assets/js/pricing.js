// Pricing: the live price table with effective dates, and a calculator that asks the
// gateway what a usage costs (POST /pricing/quote), computed as it charges.

import { api } from "./api.js";
import { add, errorBox, field, fmtInt, h, table } from "./dom.js";
import { csvButton, money } from "./widgets.js";

const RATES = ["input", "cached_input", "cache_write", "output", "reasoning"];

export async function render(root) {
  const prices = await api("/pricing");
  const current = prices.data.filter((p) => p.status === "current");
  const model = h("input", { id: "quote-model", type: "text", required: true, list: "models", value: current[0]?.name || "" });
  const models = h("datalist", { id: "models" }, current.map((p) => h("option", { value: p.name })));
  const number = (id) => h("input", { id, type: "number", min: 0, step: 1, value: 0 });
  const counts = {
    input_tokens: number("quote-input"),
    cached_input_tokens: number("quote-cached"),
    output_tokens: number("quote-output"),
    reasoning_tokens: number("quote-reasoning"),
  };
  counts.input_tokens.value = 1000;
  counts.output_tokens.value = 1000;
  const at = h("input", { id: "quote-at", type: "date" });
  const result = h("div", { id: "quote-result", role: "status" });
  const form = h(
    "form",
    { id: "quote-form", class: "inline", onsubmit: async (event) => {
      event.preventDefault();
      result.replaceChildren();
      // Token counts go as typed: the API checks them and names a bad one.
      const body = { model: model.value.trim() };
      for (const [name, input] of Object.entries(counts)) body[name] = Number(input.value || 0);
      if (at.value) body.at = at.value;
      try {
        const quote = await api("/pricing/quote", { method: "POST", body });
        result.append(
          h("p", {}, `${quote.entry.name} (${quote.entry.provider}), prices from ${quote.entry.effective_from}${quote.tier ? `, tier above ${fmtInt(quote.tier.above_prompt_tokens)} prompt tokens` : ""}: `, h("strong", {}, money(quote.cost.total))),
          table({
            columns: [
              { label: "part", value: (r) => r },
              { label: "tokens", value: (r) => fmtInt(quote.billed_tokens[r] ?? 0), num: true },
              { label: "USD per 1M", value: (r) => quote.rates[r] ?? "—", num: true },
              { label: "cost", value: (r) => money(quote.cost[r] ?? "0"), num: true },
            ],
            rows: ["input", "cached_input", "cache_write", "output", "reasoning"],
          }),
        );
      } catch (error) {
        result.append(errorBox(error));
      }
    } },
    field("Model", model),
    models,
    field("Input tokens", counts.input_tokens, "all prompt tokens"),
    field("of which cached", counts.cached_input_tokens),
    field("Output tokens", counts.output_tokens, "all completion tokens"),
    field("of which reasoning", counts.reasoning_tokens),
    field("Priced at", at, "empty: now"),
    h("button", { type: "submit" }, "Quote"),
  );
  add(root, 
    h("h1", {}, "Pricing"),
    h("section", { "aria-labelledby": "quote-h" }, h("h2", { id: "quote-h" }, "What a request costs"), form, result),
    h("h2", {}, "Price table (USD per 1M tokens)"),
    table({
      id: "prices",
      columns: [
        { label: "model", value: (p) => h("span", { title: p.aliases.length ? `aliases: ${p.aliases.join(", ")}` : null }, p.name) },
        { label: "provider", value: (p) => p.provider },
        { label: "from", value: (p) => p.effective_from },
        { label: "until", value: (p) => p.effective_until ?? "—" },
        { label: "status", value: (p) => p.status },
        ...RATES.map((r) => ({ label: r.replace("_", " "), value: (p) => p.rates[r], num: true })),
        { label: "tiers", value: (p) => (p.tiers.length ? p.tiers.map((t) => `above ${fmtInt(t.above_prompt_tokens)}`).join("; ") : "—") },
      ],
      rows: prices.data,
    }),
    csvButton("Download CSV", "/pricing", {}, "pricing.csv"),
  );
}
