// Possible duplicates (the review queue's second tab): two individuals of one species whose galleries
// the matcher finds closer than the species' calibrated cut, side by side with their photos (the two
// closest first), merged into either code or dismissed. `POST /v1/duplicates:scan` files the pairs
// (the nightly job does too); `POST /v1/duplicates/{id}:decide` decides one.

import { api, forgetIndividual, individual } from "./api.js";
import { h, replace, errorBox, busy, notice, photoLink, scoreBar, speciesName } from "./dom.js";
import { reviewTabs } from "./review.js";

const codeOf = (side) => side.catalogue_code || side.id;

function sightingsCount(code) {
  const value = h("dd", {}, "…");
  individual(code)
    .then((found) => replace(value, String((found.sightings || []).length)))
    .catch(() => replace(value, "–"));
  return value;
}

function individualSide(side, other, key, species) {
  const code = codeOf(side);
  const headingId = `duplicate-side-${key}`;
  return h("section", { class: "duplicate-side", "aria-labelledby": headingId,
    dataset: { individualId: side.id, code } },
  h("h3", { id: headingId }, h("a", { href: `#/individuals/${encodeURIComponent(code)}` }, code)),
  h("dl", { class: "inline" },
    h("div", {}, h("dt", {}, "Name"), h("dd", {}, side.name || "–")),
    h("div", {}, h("dt", {}, "Species"), h("dd", {}, speciesName(species))),
    h("div", {}, h("dt", {}, "Sightings"), sightingsCount(code))),
  side.photos.length
    ? h("ul", { class: "duplicate-gallery", "aria-label": `Photos of ${code}, the closest to ${other} first` },
      side.photos.map((mediaId, i) => h("li", { dataset: { mediaId } }, photoLink(mediaId,
        i === 0 ? `Photo of ${code} closest to ${other}` : `Photo ${i + 1} of ${code}`))))
    : h("p", { class: "hint" }, "No photo catalogued."));
}

function pairCard(pair, onDecided) {
  // Shown in the codes' order, whichever the matcher named first (a stable page; the merge says which stays).
  const [first, second] = [pair.a, pair.b].sort((x, y) =>
    codeOf(x).localeCompare(codeOf(y), undefined, { numeric: true }));
  const [a, b] = [codeOf(first), codeOf(second)];
  const status = h("div", { "aria-live": "polite" });
  const card = h("article", { class: "duplicate-pair card", "aria-labelledby": `duplicate-${pair.id}`,
    dataset: { pairId: pair.id } });

  async function decide(body, describe) {
    const buttons = card.querySelectorAll("button.decide");
    for (const button of buttons) button.disabled = true;
    replace(status, busy("Saving the decision…"));
    try {
      await api.post(`/v1/duplicates/${encodeURIComponent(pair.id)}:decide`, body);
      forgetIndividual(a);  // their sightings and photos have changed hands
      forgetIndividual(b);
      onDecided(card, describe());
    } catch (error) {
      for (const button of buttons) button.disabled = false;
      replace(status, errorBox(error));
    }
  }

  const merge = (keep, gone) => decide({ decision: "merged", keep }, () => h("span", {}, `Merged ${gone} into `,
    h("a", { href: `#/individuals/${encodeURIComponent(keep)}` }, keep),
    `: its sightings and photos are now ${keep}'s.`));
  const dismiss = () => decide({ decision: "dismissed" },
    () => `Not the same animal: ${a} and ${b} stay two individuals, and this pair is not filed again.`);

  return replace(card,
    h("h2", { id: `duplicate-${pair.id}` }, `${a} and ${b}`),
    h("p", { class: "hint" }, `${speciesName(pair.species)} · gallery score ${pair.score.toFixed(3)}`,
      ` · model ${pair.model_version}`),
    scoreBar(pair.score, `Gallery score of ${a} and ${b}`),
    h("div", { class: "duplicate-sides" }, individualSide(first, b, `${pair.id}-a`, pair.species),
      individualSide(second, a, `${pair.id}-b`, pair.species)),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "decide primary", onclick: () => merge(a, b) }, `Merge into ${a}`),
      h("button", { type: "button", class: "decide primary", onclick: () => merge(b, a) }, `Merge into ${b}`),
      h("button", { type: "button", class: "decide", onclick: dismiss }, "Not the same animal")),
    status);
}

export async function duplicatesView() {
  const status = h("div", { "aria-live": "polite" });
  const scanStatus = h("div", { "aria-live": "polite" });
  const list = h("div", { class: "review-list" });
  const more = h("div");
  const count = h("p", { class: "lead" });
  let waiting = 0;

  function showCount() {
    replace(count, `${waiting} pair(s) waiting, closest first. Look at both galleries, then merge the two `
      + "into one code (the other's sightings and photos move to it) or say they are not the same animal.");
  }

  // The decided pair leaves the list; its message takes its place and the focus, so the keyboard
  // goes on from there to the next pair.
  function decided(card, describe) {
    const message = h("p", { class: "ok", role: "status", tabindex: -1 }, describe);
    card.replaceWith(message);
    message.focus();
    waiting = Math.max(0, waiting - 1);
    showCount();
  }

  async function loadPage(cursor) {
    const page = await api.get("/v1/duplicates", { status: "pending", limit: 20, cursor });
    if (!cursor) list.replaceChildren();
    list.append(...page.items.map((pair) => pairCard(pair, decided)));
    waiting = page.total ?? list.querySelectorAll("article").length;
    showCount();
    replace(status, list.children.length ? [] : notice("No possible duplicate is waiting for review."));
    replace(more, page.next_cursor
      ? h("button", { type: "button", onclick: () => loadPage(page.next_cursor)
        .catch((e) => replace(more, errorBox(e))) }, "Show more")
      : []);
  }

  const scanButton = h("button", { type: "button", class: "scan", onclick: async () => {
    scanButton.disabled = true;
    replace(scanStatus, busy("Comparing the catalogue's individuals…"));
    try {
      const scan = await api.post("/v1/duplicates:scan", {});
      const bySpecies = Object.values(scan.species);
      const filed = bySpecies.reduce((sum, s) => sum + s.filed, 0);
      const compared = bySpecies.reduce((sum, s) => sum + s.individuals, 0);
      await loadPage();
      replace(scanStatus, h("p", { class: "ok", role: "status" },
        `Scan done: ${compared} individual(s) compared, ${filed} new pair(s) filed.`));
    } catch (error) {
      replace(scanStatus, errorBox(error));
    } finally {
      scanButton.disabled = false;
    }
  } }, "Scan for duplicates");

  await loadPage();
  return h("section", {},
    reviewTabs("duplicates"),
    h("h1", {}, "Possible duplicates"),
    count,
    h("div", { class: "actions" }, scanButton,
      h("span", { class: "hint" }, "Reviewers only; the catalogue is also scanned every night.")),
    scanStatus, status, list, more);
}
