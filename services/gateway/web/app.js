// Finprint's web page: a hash router over the views; every view needs credentials but sign-in.

import { credentials, signOut } from "./api.js";
import { autoAcceptedView } from "./autoaccepted.js";
import { bulkView } from "./bulk.js";
import { duplicatesView } from "./duplicates.js";
import { h, replace, errorBox } from "./dom.js";
import { identifyView } from "./identify.js";
import { individualsView, individualView } from "./individuals.js";
import { overviewView } from "./overview.js";
import { reviewView } from "./review.js";
import { sightingsView } from "./sightings.js";
import { signInView } from "./signin.js";
import { uploadView } from "./upload.js";

const ROUTES = [
  { pattern: /^\/identify$/, view: identifyView, title: "Identify" },
  { pattern: /^\/review$/, view: reviewView, title: "Review queue" },
  { pattern: /^\/review\/duplicates$/, view: duplicatesView, title: "Possible duplicates" },
  { pattern: /^\/review\/auto-accepted$/, view: autoAcceptedView, title: "Auto-accepted matches" },
  { pattern: /^\/individuals$/, view: individualsView, title: "Individuals" },
  { pattern: /^\/individuals\/(.+)$/, view: individualView, title: "Individual" },
  { pattern: /^\/sightings(?:\?.*)?$/, view: sightingsView, title: "Sightings" },
  { pattern: /^\/upload$/, view: uploadView, title: "Upload encounter" },
  { pattern: /^\/bulk$/, view: bulkView, title: "Bulk upload" },
  { pattern: /^\/overview$/, view: overviewView, title: "Overview" },
];

const main = () => document.getElementById("main");
let signInShown = false;
let renders = 0;  // a view that finishes after a newer render (or a sign-out) is dropped

function currentPath() {
  return decodeURIComponent(location.hash.replace(/^#/, "")) || "/identify";
}

function showWho() {
  const who = credentials();
  document.getElementById("nav").hidden = !who;
  const label = who ? (who.email || "API key") : "";
  replace(document.getElementById("who"), who
    ? [h("span", { class: "who-name" }, label),
      h("button", { type: "button", class: "link", onclick: () => signOut() }, "Sign out")]
    : []);
}

function markCurrentLink(fullPath) {
  const path = fullPath.split("?")[0];
  for (const link of document.querySelectorAll("#nav a")) {
    const target = link.getAttribute("href").slice(1);
    if (path === target || path.startsWith(`${target}/`)) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function render() {
  const mine = ++renders;
  showWho();
  const path = currentPath();
  const container = main();
  signInShown = !credentials();
  if (signInShown) {
    document.title = "Sign in · Finprint";
    replace(container, signInView(() => render()));
    return;
  }
  const route = ROUTES.find((r) => r.pattern.test(path));
  markCurrentLink(path);
  if (!route) {
    replace(container, h("h1", {}, "Not found"), h("p", {}, "This page does not exist. "),
      h("a", { href: "#/identify" }, "Identify a photo"));
    return;
  }
  document.title = `${route.title} · Finprint`;
  const params = path.match(route.pattern).slice(1);
  let content;
  try {
    content = await route.view(...params);
  } catch (error) {
    content = [h("h1", {}, route.title), errorBox(error)];
  }
  if (mine !== renders) return;
  replace(container, content);
  container.focus({ preventScroll: true });
}

window.addEventListener("hashchange", render);
document.addEventListener("finprint:credentials", () => {
  // Signing out (or a session that ended) leaves whatever view for the sign-in form.
  if (!credentials() && !signInShown) render();
  else showWho();
});
render();
