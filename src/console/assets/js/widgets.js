// Pieces several pages share: amounts, budget bars, CSV buttons, keys shown once.

import { api, downloadCsv, saveFile } from "./api.js";
import { errorBox, fmtDuration, fmtTime, h } from "./dom.js";
import { exact, share, units, usd } from "./money.js";

/** An amount for people, with the exact value in `title` and `data-exact`. */
export function money(value) {
  const amount = typeof value === "bigint" ? value : units(value);
  return h("span", { class: "money", title: `${exact(amount)} USD`, "data-exact": exact(amount) }, usd(amount));
}

/** `params` may be a function, read at the click (for filters changed after the render). */
export function csvButton(label, path, params, filename) {
  const status = h("span", { class: "csv-status", role: "status" });
  const button = h(
    "button",
    {
      type: "button",
      class: "secondary",
      onclick: async () => {
        status.textContent = "";
        try {
          await downloadCsv(path, typeof params === "function" ? params() : params, filename);
        } catch (error) {
          status.textContent = error.message;
        }
      },
    },
    label,
  );
  return h("span", { class: "csv" }, button, status);
}

export function stateBadge(state) {
  return h("span", { class: `badge badge-${state}` }, state);
}

/** One bar per budget: spent, reserved and remaining, each labelled in words and amounts. */
export function budgetBars(usage) {
  const budgets = (usage && usage.budgets) || [];
  if (!budgets.length) return h("span", { class: "muted" }, "no budget");
  return h(
    "div",
    { class: "budgets" },
    budgets.map((b) => {
      const limit = units(b.limit_usd);
      const spent = units(b.spent_usd);
      const reserved = units(b.reserved_usd);
      const used = share(spent, limit);
      const held = share(reserved, limit);
      return h(
        "div",
        { class: "budget", "data-period": b.period },
        h(
          "div",
          { class: "bar", role: "meter", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": Math.round(used * 100), "aria-label": `${b.period} budget used` },
          h("span", { class: "bar-spent", "data-width": used }),
          h("span", { class: "bar-reserved", "data-width": held }),
        ),
        h(
          "div",
          { class: "budget-text" },
          `${b.period}: `,
          money(b.spent_usd),
          " spent, ",
          money(b.reserved_usd),
          " reserved, ",
          money(b.remaining_usd),
          " left of ",
          money(b.limit_usd),
          ` (${Math.round(used * 100)} %)`,
        ),
      );
    }),
  );
}

/**
 * CSP forbids inline styles set from markup, but not from script: bar widths are applied
 * after the bars are built.
 */
export function sizeBars(root) {
  for (const bar of root.querySelectorAll("[data-width]")) {
    bar.style.width = `${(Number(bar.dataset.width) * 100).toFixed(2)}%`;
  }
}

export function rateUse(limit) {
  if (!limit) return "—";
  return `${limit.limit - limit.remaining} / ${limit.limit}`;
}

/**
 * Spend per hour over a recent window, and how long the tightest remaining budget lasts at
 * that rate. `spent` is the window's spend in units, `windowSeconds` its length.
 */
export function burn(usage, spent, windowSeconds) {
  const perHour = windowSeconds > 0 ? (spent * 3600n) / BigInt(windowSeconds) : 0n;
  let runsOut = null;
  for (const b of (usage && usage.budgets) || []) {
    const remaining = units(b.remaining_usd);
    if (perHour <= 0n) continue;
    const seconds = remaining <= 0n ? 0n : (remaining * 3600n) / perHour;
    if (runsOut === null || seconds < runsOut) runsOut = seconds;
  }
  return { perHour, runsOut };
}

export function runsOutText(runsOut, endsAt) {
  if (runsOut === null) return "—";
  if (runsOut === 0n) return "now: budget used up";
  const at = new Date(Date.now() + Number(runsOut) * 1000);
  const text = `in ${fmtDuration(Number(runsOut))}`;
  if (endsAt && at > new Date(endsAt)) return `${text} (after the end)`;
  return text;
}

/** Issued secrets, shown this once, with copy buttons and a `.env` download. */
export function issuedKeys(keys, filename) {
  const lines = keys.map((k, i) => `TOLLGATE_KEY${keys.length > 1 ? `_${i + 1}` : ""}=${k.key}`);
  const status = h("span", { role: "status", class: "copy-status" });
  const copy = async (text) => {
    try {
      await navigator.clipboard.writeText(text);
      status.textContent = "Copied.";
    } catch {
      status.textContent = "The browser refused the clipboard: select the key and copy it.";
    }
  };
  return h(
    "section",
    { class: "issued", tabindex: -1, "aria-label": "New keys" },
    h("h3", {}, `${keys.length} new key${keys.length > 1 ? "s" : ""}: shown this once`),
    h("p", {}, "Copy them now. The gateway keeps only their hashes and cannot show them again."),
    h(
      "ul",
      { class: "secrets" },
      keys.map((k) =>
        h(
          "li",
          {},
          h("code", { class: "secret" }, k.key),
          " ",
          h("button", { type: "button", class: "secondary", onclick: () => copy(k.key), "aria-label": `Copy key ${k.prefix}` }, "Copy"),
        ),
      ),
    ),
    h(
      "p",
      {},
      h("button", { type: "button", onclick: () => copy(keys.map((k) => k.key).join("\n")) }, "Copy all"),
      " ",
      h("button", { type: "button", class: "secondary", onclick: () => saveFile(filename, `${lines.join("\n")}\n`, "text/plain") }, "Download .env"),
      " ",
      status,
    ),
  );
}

/** A button that asks once more in the page before it acts (no browser dialog). */
export function confirmButton(label, question, action) {
  const box = h("span", { class: "confirm" });
  const ask = h(
    "button",
    {
      type: "button",
      class: "danger",
      onclick: () => {
        ask.hidden = true;
        const yes = h("button", { type: "button", class: "danger", onclick: async () => {
          yes.disabled = true;
          try {
            await action();
          } catch (error) {
            box.append(errorBox(error));
          }
        } }, `Yes, ${label.toLowerCase()}`);
        const no = h("button", { type: "button", class: "secondary", onclick: () => {
          yes.remove();
          no.remove();
          text.remove();
          ask.hidden = false;
          ask.focus();
        } }, "Cancel");
        const text = h("span", {}, `${question} `);
        box.append(text, yes, " ", no);
        yes.focus();
      },
    },
    label,
  );
  box.append(ask);
  return box;
}

/** A `<select>` of the teams the token can see; `all` adds an "every team" choice. */
export async function teamSelect(id, selected, all = true) {
  const teams = (await api("/teams")).data;
  const select = h(
    "select",
    { id, name: "team" },
    all ? h("option", { value: "" }, "every team") : null,
    teams.map((t) => h("option", { value: t.id, selected: t.id === selected }, t.name)),
  );
  return { select, teams };
}

export function expiry(key) {
  if (key.revoked_at) return `revoked ${fmtTime(key.revoked_at)}`;
  const ends = [key.expires_at, key.experiment_ends_at].filter(Boolean).sort()[0];
  return ends ? fmtTime(ends) : "never";
}
