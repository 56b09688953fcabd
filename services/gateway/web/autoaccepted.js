// Auto-accepted (the review queue's third tab): the matches confirmed without review because their
// calibrated probability cleared the species' cut for the organisation's precision target
// (`GET`/`PUT /v1/settings`), newest first, for a reviewer to check. "Not this animal" rejects one
// (the photo leaves the individual); the compare view confirms it as another or a new individual.
// Each is `POST /v1/identifications/{id}:decide`, audited under the reviewer's name.

import { api, forgetIndividual } from "./api.js";
import { openCompare } from "./compare.js";
import { h, replace, errorBox, busy, notice, formatDate, percent, scoreBar, speciesName } from "./dom.js";
import { askNewIndividual, candidatePhoto, queryPhoto, reviewTabs, reviewTitle } from "./review.js";

const AUTO_ACCEPT = "auto-accept";  // the identifications' decided_by (finprint.schemas.catalog)
const PAGE = 20;

// The setting as a sentence, and a form to change it (admins only: the API answers 403 to others,
// and the page knows nothing of roles, so the form says so when refused).
function settingsPanel() {
  const summary = h("div", { class: "auto-accept-summary" }, busy("Reading the organisation's setting…"));
  const status = h("div", { "aria-live": "polite" });
  const input = h("input", { id: "auto-accept-precision", name: "auto_accept_precision", type: "number",
    min: 0.5, max: 1, step: "any", inputmode: "decimal", placeholder: "e.g. 0.99",
    "aria-describedby": "auto-accept-help" });

  function show(settings) {
    const target = settings.auto_accept_precision;
    input.value = target ?? "";
    replace(summary, target === null || target === undefined
      ? [h("strong", {}, "Auto-accept is off"), ": every match waits for review."]
      : [h("strong", {}, `Auto-accept is on at a precision of ${percent(target)}`),
        `: a match whose calibrated probability clears its species' cut for this target is confirmed without `
        + "review, and listed here."]);
  }

  async function save(value) {
    replace(status, busy("Saving the setting…"));
    try {
      show(await api.put("/v1/settings", JSON.stringify({ auto_accept_precision: value }),
        { "Content-Type": "application/json" }));
      replace(status, h("p", { class: "ok", role: "status" }, value === null ? "Auto-accept turned off."
        : `Auto-accept set to a precision of ${percent(value)}.`));
    } catch (error) {
      replace(status, error.status === 403
        ? h("p", { class: "error", role: "alert" }, "Only an administrator of the organisation can change "
          + `this setting (${error.message})`)
        : errorBox(error));
    }
  }

  const form = h("form", { class: "auto-accept-form", onsubmit: (event) => {
    event.preventDefault();
    const text = input.value.trim();
    save(text === "" ? null : Number(text));
  } },
  h("div", { class: "field" }, h("label", { for: "auto-accept-precision" }, "Precision target"), input,
    h("p", { class: "hint", id: "auto-accept-help" }, "Between 0.5 and 1; empty turns auto-accept off. "
      + "Administrators only; audited.")),
  h("div", { class: "actions" },
    h("button", { type: "submit", class: "primary" }, "Save setting"),
    h("button", { type: "button", onclick: () => save(null) }, "Turn off")));

  api.get("/v1/settings").then(show).catch((error) => replace(summary, errorBox(error)));
  return h("section", { class: "auto-accept-setting card", "aria-labelledby": "auto-accept-setting" },
    h("h2", { id: "auto-accept-setting" }, "The organisation's setting"), summary,
    h("details", {}, h("summary", {}, "Change the setting"), form), status);
}

// The individual it was filed under: the candidate it was confirmed as (the first, for auto-accept).
function filedUnder(item) {
  const filed = item.candidates.find((c) => c.individual_id === item.individual_id) || item.candidates[0] || {};
  return { code: filed.catalogue_code || item.individual_id, probability: filed.probability ?? null };
}

function acceptedCard(item, onDecided) {
  const { code, probability } = filedUnder(item);
  const status = h("div", { "aria-live": "polite" });
  const card = h("article", { class: "review auto-accepted card", "aria-labelledby": `accepted-${item.id}`,
    dataset: { identificationId: item.id, code } });
  const link = (to) => h("a", { href: `#/individuals/${encodeURIComponent(to)}` }, to);

  async function decide(body, describe) {
    const buttons = card.querySelectorAll("button.decide, button.compare-open");
    for (const button of buttons) button.disabled = true;
    replace(status, busy("Saving the decision…"));
    try {
      await api.post(`/v1/identifications/${encodeURIComponent(item.id)}:decide`, body);
      forgetIndividual(code);  // its photos have changed
      onDecided(card, describe());
    } catch (error) {
      for (const button of buttons) button.disabled = false;
      replace(status, errorBox(error));
    }
  }

  const reject = () => decide({ decision: "rejected" }, () => h("span", {}, "Not ", link(code),
    ": the match is rejected and the photo no longer belongs to it."));
  const confirm = (other) => decide({ decision: "confirmed", individual_id: other }, () => {
    forgetIndividual(other);
    return h("span", {}, "Confirmed as ", link(other), other === code ? " (checked by you)." : ".");
  });
  const declareNew = async () => {
    const answer = await askNewIndividual(item.species);
    if (answer) {
      decide({ decision: "new_individual", new_individual: answer }, () => h("span", {},
        "Catalogued as new individual ", link(answer.catalogue_code), "."));
    }
  };
  const rank = Math.max(0, item.candidates.findIndex((c) => c.individual_id === item.individual_id));

  return replace(card,
    h("h2", { id: `accepted-${item.id}` }, reviewTitle(item)),
    h("p", { class: "hint" }, `Filed under ${code} · calibrated probability ${percent(probability)}`,
      item.species ? ` · ${speciesName(item.species)}` : "", ` · accepted ${formatDate(item.decided_at)}`),
    scoreBar(probability, `Calibrated probability that this is ${code}`),
    h("ul", { class: "candidates", "aria-label": `The photo and ${code}` },
      h("li", { class: "candidate card query" }, queryPhoto(item),
        h("div", { class: "candidate-text" }, h("strong", {}, "Photo accepted automatically"))),
      h("li", { class: "candidate card" }, candidatePhoto(code),
        h("div", { class: "candidate-text" }, h("a", { class: "code", href: `#/individuals/${encodeURIComponent(code)}` },
          code), h("span", { class: "score" }, "filed under, without review")))),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "decide danger", onclick: reject }, "Not this animal"),
      h("button", { type: "button", class: "compare-open", onclick: () => openCompare(item,
        { decide: confirm, declareNew, reject, start: rank }) }, "Open in compare")),
    status);
}

export async function autoAcceptedView() {
  const status = h("div", { "aria-live": "polite" });
  const list = h("div", { class: "review-list" });
  const more = h("div");
  const count = h("p", { class: "lead" });
  let items = [];
  let shown = 0;

  function showCount() {
    replace(count, `${items.length} match(es) confirmed without review, newest first. Check the photo `
      + "against the individual it was filed under; if it is not that animal, take it out.");
  }

  function showMore() {
    list.append(...items.slice(shown, shown + PAGE).map((item) => acceptedCard(item, decided)));
    shown = Math.min(items.length, shown + PAGE);
    replace(more, shown < items.length ? h("button", { type: "button", onclick: showMore }, "Show more") : []);
  }

  // The decided match leaves the list; its message takes its place and the focus.
  function decided(card, describe) {
    const message = h("p", { class: "ok", role: "status", tabindex: -1 }, describe);
    items = items.filter((item) => item.id !== card.dataset.identificationId);
    shown = Math.max(0, shown - 1);
    card.replaceWith(message);
    message.focus();
    showCount();
    if (!items.length) replace(status, notice("No other match has been confirmed without review."));
  }

  // The API pages oldest first; every page is read so the newest decisions come first.
  let cursor;
  do {
    const page = await api.get("/v1/identifications", { decision: "confirmed", decided_by: AUTO_ACCEPT,
      limit: 500, cursor });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  const when = (item) => Date.parse(item.decided_at || item.created_at) || 0;
  items.sort((a, b) => when(b) - when(a));
  showCount();
  showMore();
  replace(status, items.length ? [] : notice("No match has been confirmed without review."));
  return h("section", {},
    reviewTabs("auto-accepted"),
    h("h1", {}, "Auto-accepted matches"),
    settingsPanel(),
    count, status, list, more);
}
