// Audit log: every change made through the admin API, who made it and when, newest first.

import { api } from "./api.js";
import { add, fmtTime, h, table } from "./dom.js";
import { csvButton } from "./widgets.js";

function summary(entry) {
  const after = entry.after || entry.before || {};
  return after.name || after.prefix || after.period || "";
}

export async function render(root) {
  const listing = h("div", { id: "audit-log" });
  const more = h("div", { class: "more" });
  const load = async (before) => {
    const page = await api("/audit", { params: { limit: 50, before } });
    listing.replaceChildren(
      table({
        id: "audit",
        columns: [
          { label: "time", value: (e) => fmtTime(e.at) },
          { label: "who", value: (e) => `${e.actor} (${e.role})` },
          { label: "action", value: (e) => e.action },
          { label: "on", value: (e) => `${e.target_kind} ${summary(e)}`.trim() },
          { label: "id", value: (e) => h("code", {}, e.target_id) },
          { label: "change", value: (e) => h("details", {}, h("summary", {}, "before / after"), h("pre", {}, JSON.stringify({ before: e.before, after: e.after }, null, 2))) },
        ],
        rows: page.data,
        empty: "No change recorded yet.",
      }),
    );
    more.replaceChildren(page.next ? h("button", { type: "button", class: "secondary", onclick: () => load(page.next) }, "Older entries") : "");
  };
  await load();
  add(root, h("h1", {}, "Audit log"), listing, more, csvButton("Download CSV (newest 1000)", "/audit", { limit: 1000 }, "audit.csv"));
}
