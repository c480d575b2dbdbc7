// Building the page. Every value from the API goes in as text (textContent or an attribute),
// never as markup, so a name like `<img src=x onerror=...>` shows as those characters.

/** h("td", {class: "num"}, "12", child): an element with attributes and children. */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttributes(node, attrs);
  append(node, children);
  return node;
}

const SVG = "http://www.w3.org/2000/svg";

export function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  setAttributes(node, attrs);
  append(node, children);
  return node;
}

function setAttributes(node, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (value === true) {
      node.setAttribute(name, "");
    } else {
      node.setAttribute(name, String(value));
    }
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Appends children to an existing node, skipping null, undefined and false (which the
 * DOM's own `append` would write out as text). */
export function add(node, ...children) {
  append(node, children);
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
}

/** A timestamp as `2026-12-04 09:15 UTC`. */
export function fmtTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return `${date.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

export function fmtInt(value) {
  if (value === null || value === undefined) return "—";
  return BigInt(value).toLocaleString("en-US");
}

/** A duration in seconds as `3 d 4 h`, `5 h 10 min` or `42 min`. */
export function fmtDuration(seconds) {
  const s = Number(seconds);
  if (!Number.isFinite(s)) return "—";
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  if (days > 0) return `${days} d ${hours} h`;
  if (hours > 0) return `${hours} h ${minutes} min`;
  return `${Math.max(minutes, 1)} min`;
}

/**
 * A table: columns are {label, value(row) -> text or node, num?}. Header cells are `th`
 * with scope, numbers right-aligned.
 */
export function table({ caption, columns, rows, empty = "Nothing yet.", id }) {
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)));
  const body = rows.length
    ? rows.map((row) =>
        h("tr", {}, columns.map((c) => h("td", { class: c.num ? "num" : null }, c.value(row)))),
      )
    : [h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, empty))];
  return h(
    "div",
    { class: "table-wrap" },
    h("table", { id }, caption ? h("caption", {}, caption) : null, h("thead", {}, head), h("tbody", {}, body)),
  );
}

/** A labelled form control: label text, then the control (its id ties them together). */
export function field(label, control, hint) {
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hint ? h("small", {}, hint) : null);
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error && error.message ? error.message : String(error));
}

export function notice(text) {
  return h("p", { class: "notice", role: "status" }, text);
}

/** The start of the current hour, minus `hours`, as RFC 3339 (reports take whole hours). */
export function hoursAgo(hours) {
  const date = new Date();
  date.setUTCMinutes(0, 0, 0);
  date.setUTCHours(date.getUTCHours() - hours);
  return date.toISOString().replace(".000Z", "Z");
}

/** Midnight UTC `days` ago, as `YYYY-MM-DD`. */
export function daysAgo(days) {
  const date = new Date();
  date.setUTCHours(0, 0, 0, 0);
  date.setUTCDate(date.getUTCDate() - days);
  return date.toISOString().slice(0, 10);
}
