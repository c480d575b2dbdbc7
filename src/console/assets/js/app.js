// The console's shell: sign-in (a token from the URL fragment or the form, kept in session
// storage), the page router on the URL fragment, and sign-out.

import { api, claims, clearToken, onUnauthorized, setToken, token } from "./api.js";
import { clear, errorBox, h } from "./dom.js";
import { leavePage, session } from "./session.js";
import * as audit from "./audit.js";
import * as campaign from "./campaign.js";
import * as campaigns from "./campaigns.js";
import * as keys from "./keys.js";
import * as launch from "./launch.js";
import * as overview from "./overview.js";
import * as pricing from "./pricing.js";
import * as requests from "./requests.js";

const PAGES = {
  "": overview,
  campaigns,
  campaign,
  launch,
  keys,
  requests,
  pricing,
  audit,
};

const $ = (id) => document.getElementById(id);

let firstPage = true;


function takeTokenFromFragment() {
  const match = /^#token=([^&]+)/.exec(location.hash);
  if (!match) return;
  setToken(decodeURIComponent(match[1]));
  // The token must not stay in the address bar or the history.
  history.replaceState(null, "", `${location.pathname}#/`);
}

function showSignIn(message) {
  leavePage();
  $("nav").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  clear($("view"));
  $("sign-in").hidden = false;
  const note = $("sign-in-message");
  note.hidden = !message;
  note.textContent = message || "";
  $("token-input").focus();
}

async function signedIn() {
  const c = claims();
  const teams = (await api("/teams")).data;
  session.role = c && c.role === "team" ? "team" : "admin";
  session.team = session.role === "team" ? teams[0] || null : null;
  $("sign-in").hidden = true;
  $("nav").hidden = false;
  $("sign-out").hidden = false;
  $("who").textContent = session.team ? `team ${session.team.name}` : "admin";
  if (c && c.exp) $("who").title = `token valid until ${new Date(c.exp * 1000).toISOString()}`;
}

async function route() {
  if (!token()) return showSignIn();
  leavePage();
  const started = performance.now();
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const page = PAGES[name] || overview;
  for (const link of $("nav").querySelectorAll("a")) {
    const target = link.getAttribute("href").replace(/^#\/?/, "");
    if (target === name || (name === "campaign" && target === "campaigns")) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const view = $("view");
  clear(view);
  view.append(h("p", { class: "loading" }, "Loading…"));
  const content = h("div", { class: "page" });
  try {
    await page.render(content, rest.map(decodeURIComponent));
    clear(view);
    view.append(content);
    document.title = `${content.querySelector("h1")?.textContent || "Console"} · Tollgate`;
    // How long the page took from the click (or, for the first page, from the navigation
    // itself) until it was shown: User Timing, visible in the browser's developer tools.
    performance.measure(`tollgate:${name || "overview"}`, { start: firstPage ? 0 : started });
    firstPage = false;
  } catch (error) {
    if (error.status === 401) return;
    clear(view);
    view.append(errorBox(error));
  }
}

async function start() {
  onUnauthorized((error) => {
    clearToken();
    const expired = /expired/i.test(error.message);
    showSignIn(expired ? `Your token has expired. Sign in again. (${error.message})` : `The gateway refused the token: ${error.message}`);
  });
  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    setToken($("token-input").value);
    $("token-input").value = "";
    await begin();
  });
  $("sign-out").addEventListener("click", () => {
    clearToken();
    showSignIn("Signed out.");
  });
  window.addEventListener("hashchange", () => {
    if (location.hash.startsWith("#token=")) {
      takeTokenFromFragment();
      begin();
    } else {
      route();
    }
  });
  takeTokenFromFragment();
  await begin();
}

async function begin() {
  if (!token()) return showSignIn();
  try {
    await signedIn();
  } catch (error) {
    if (error.status !== 401) showSignIn(error.message);
    return;
  }
  await route();
}

start();
