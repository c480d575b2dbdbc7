// Requests: the request log, newest first, with filters; it reads itself again every five
// seconds while "Follow" is on and the first page is shown.

import { api } from "./api.js";
import { add, field, fmtInt, fmtTime, h, table } from "./dom.js";
import { onLeave, session } from "./session.js";
import { csvButton, money, teamSelect } from "./widgets.js";

const REFRESH_MS = 5000;
const filters = { team: "", model: "", status: "", key: "", follow: true };

function params(before) {
  return { team: session.role === "team" ? "" : filters.team, model: filters.model, status: filters.status, key: filters.key, limit: 50, before };
}

function logTable(rows) {
  return table({
    id: "requests",
    columns: [
      { label: "time", value: (r) => fmtTime(r.created_at) },
      { label: "key", value: (r) => h("code", {}, r.key_prefix) },
      { label: "team", value: (r) => r.team_name },
      { label: "campaign", value: (r) => r.experiment_name ?? "—" },
      { label: "model", value: (r) => r.model },
      { label: "status", value: (r) => h("span", { class: r.status >= 400 ? "status-error" : null }, `${r.status}${r.error_type ? ` ${r.error_type}` : ""}`) },
      { label: "tokens in / out", value: (r) => `${fmtInt(r.input_tokens)} / ${fmtInt(r.output_tokens)}`, num: true },
      { label: "cost", value: (r) => money(r.cost_usd), num: true },
      { label: "latency", value: (r) => `${fmtInt(r.latency_ms)} ms`, num: true },
      { label: "stream", value: (r) => (r.streamed ? "yes" : "no") },
    ],
    rows,
    empty: "No request matches.",
  });
}

export async function render(root) {
  const controls = h("form", { class: "controls", id: "request-filters" });
  if (session.role !== "team") {
    const { select } = await teamSelect("req-team", filters.team);
    controls.append(field("Team", select));
  }
  const model = h("input", { id: "req-model", type: "text", value: filters.model, placeholder: "any" });
  const key = h("input", { id: "req-key", type: "text", value: filters.key, placeholder: "key id" });
  const status = h(
    "select",
    { id: "req-status" },
    [["", "any"], ["ok", "ok"], ["error", "errors (400+)"], ["4xx", "4xx"], ["5xx", "5xx"], ["402", "402 budget"], ["429", "429 rate"]].map(([v, l]) => h("option", { value: v, selected: v === filters.status }, l)),
  );
  const follow = h("input", { id: "req-follow", type: "checkbox", checked: filters.follow });
  controls.append(
    field("Model", model),
    field("Key id", key),
    field("Status", status),
    h("div", { class: "field check" }, follow, h("label", { for: "req-follow" }, "Follow (refresh every 5 s)")),
    h("button", { type: "submit" }, "Apply"),
  );
  const listing = h("div", { id: "request-log" });
  const more = h("div", { class: "more" });
  const updated = h("p", { class: "muted", id: "requests-updated", role: "status" });
  let firstPage = true;

  const load = async (before) => {
    const page = await api("/requests", { params: params(before) });
    firstPage = !before;
    listing.replaceChildren(logTable(page.data));
    more.replaceChildren(
      page.next ? h("button", { type: "button", class: "secondary", onclick: () => load(page.next) }, "Older requests") : "",
      before ? h("button", { type: "button", class: "secondary", onclick: () => load() }, "Newest") : "",
    );
    updated.textContent = `Read at ${new Date().toISOString().slice(11, 19)} UTC`;
  };
  controls.addEventListener("submit", async (event) => {
    event.preventDefault();
    filters.team = controls.querySelector("#req-team")?.value || "";
    filters.model = model.value.trim();
    filters.key = key.value.trim();
    filters.status = status.value;
    filters.follow = follow.checked;
    await load().catch((error) => updated.replaceChildren(error.message));
  });
  follow.addEventListener("change", () => { filters.follow = follow.checked; });
  await load();
  const timer = setInterval(() => {
    if (filters.follow && firstPage && document.visibilityState === "visible") load().catch((error) => { updated.textContent = error.message; });
  }, REFRESH_MS);
  onLeave(() => clearInterval(timer));
  add(root, h("h1", {}, "Requests"), controls, updated, listing, more, csvButton("Download CSV (this filter, newest 1000)", "/requests", () => ({ ...params(), limit: 1000 }), "requests.csv"));
}
