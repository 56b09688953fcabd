// The review queue: each pending identification's photo next to its candidates' photos, the
// compare view (compare.js) at full resolution, and the decision (confirm a candidate, declare a new
// individual, reject), with a comment thread. Filters narrow the queue by species, period and place.

import { api, forgetIndividual, individual, mediaUrl, withQuery } from "./api.js";
import { openCompare } from "./compare.js";
import { h, replace, errorBox, busy, notice, mediaImage, boxCorners, cropView, formatDate, percent, scoreBar,
  sightingDate, speciesName } from "./dom.js";
import { filterBar, knownSpecies as species } from "./filters.js";

export function queryPhoto(item) {
  const frame = h("div", { class: "candidate-photo" });
  if (!item.media_id) {
    frame.append(notice("This server does not say which photo this identification came from."));
    return frame;
  }
  const box = boxCorners(item.box);
  if (!box) return replace(frame, mediaImage(item.media_id, "The photo under review"));
  mediaUrl(item.media_id)
    .then((url) => replace(frame, cropView(url, box, "The animal under review, cut from its photo")))
    .catch((error) => replace(frame, errorBox(error)));
  return frame;
}

export function candidatePhoto(code) {
  const frame = h("div", { class: "candidate-photo" }, busy("Loading photo…"));
  individual(code)
    .then((found) => replace(frame, mediaImage(found.representative_media_id, `Catalogued photo of ${code}`)))
    .catch((error) => replace(frame, errorBox(error)));
  return frame;
}

function commentItem(comment) {
  return h("li", { class: "comment" },
    h("p", { class: "comment-meta" }, `${comment.author} · ${formatDate(comment.created_at)}`),
    h("p", {}, comment.body),
    comment.replies && comment.replies.length ? h("ul", {}, comment.replies.map(commentItem)) : null);
}

function commentThread(identificationId) {
  const list = h("ul", { class: "comments" });
  const status = h("div", { "aria-live": "polite" });
  const inputId = `comment-${identificationId}`;
  const textarea = h("textarea", { id: inputId, name: "body", rows: 2, required: true, maxlength: 5000 });

  async function load() {
    try {
      const comments = await api.get(withQuery("/v1/comments", { identification_id: identificationId }));
      replace(list, comments.length ? comments.map(commentItem) : h("li", { class: "hint" }, "No comments yet."));
    } catch (error) {
      replace(list, h("li", {}, errorBox(error)));
    }
  }

  const form = h("form", {
    class: "comment-form",
    onsubmit: async (event) => {
      event.preventDefault();
      status.replaceChildren();
      try {
        await api.post("/v1/comments", { identification_id: identificationId, body: textarea.value.trim() });
        textarea.value = "";
        await load();
      } catch (error) {
        status.replaceChildren(errorBox(error));
      }
    },
  }, h("label", { for: inputId }, "Add a comment"), textarea, h("button", { type: "submit" }, "Comment"), status);
  load();
  return h("details", { class: "thread" }, h("summary", {}, "Comments"), list, form);
}

// Asks for the new individual's catalogue code and species in a modal dialog; null when cancelled.
export async function askNewIndividual(suggestedSpecies) {
  const known = await species();
  const code = h("input", { id: "new-code", name: "code", required: true, maxlength: 64, autocomplete: "off",
    placeholder: "e.g. HW-0501" });
  const select = h("select", { id: "new-species", name: "species", required: true },
    known.filter((sp) => sp.is_cetacean).map((sp) =>
      h("option", { value: sp.key, selected: sp.key === suggestedSpecies }, sp.common_name)));
  const dialog = h("dialog", { class: "card", "aria-labelledby": "new-title" },
    h("form", { method: "dialog" },
      h("h2", { id: "new-title" }, "Declare a new individual"),
      h("div", { class: "field" }, h("label", { for: "new-code" }, "Catalogue code"), code),
      h("div", { class: "field" }, h("label", { for: "new-species" }, "Species"), select),
      h("div", { class: "actions" },
        h("button", { type: "submit", value: "ok", class: "primary" }, "Create"),
        h("button", { type: "submit", value: "cancel", formnovalidate: true }, "Cancel"))));
  document.body.append(dialog);
  dialog.showModal();
  code.focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const answer = dialog.returnValue === "ok" ? { catalogue_code: code.value.trim(), species: select.value } : null;
      dialog.remove();
      resolve(answer);
    }, { once: true });
  });
}

// An identification's card title: its photo's sighting (date and place), or when the photo was stored.
export function reviewTitle(item) {
  const date = sightingDate(item.occurred_at, { time: true });
  return item.encounter_id
    ? [date ? `Sighting of ${date}` : "Undated sighting", item.location_name].filter(Boolean).join(" · ")
    : `Photo stored ${formatDate(item.created_at)}`;
}

function reviewCard(item, onDecided) {
  const status = h("div", { "aria-live": "polite" });
  const card = h("article", { class: "review card", "aria-labelledby": `review-${item.id}`,
    dataset: { identificationId: item.id } });

  async function decide(body, done) {
    for (const button of card.querySelectorAll("button.decide")) button.disabled = true;
    replace(status, busy("Saving the decision…"));
    try {
      await api.post(`/v1/identifications/${encodeURIComponent(item.id)}:decide`, body);
      onDecided(card, done);
    } catch (error) {
      for (const button of card.querySelectorAll("button.decide")) button.disabled = false;
      replace(status, errorBox(error));
    }
  }

  const confirm = (code) => decide({ decision: "confirmed", individual_id: code }, () => {
    forgetIndividual(code);
    return h("span", {}, "Confirmed as ", h("a", { href: `#/individuals/${encodeURIComponent(code)}` }, code), ".");
  });
  const declareNew = async () => {
    const top = item.candidates[0];
    const suggested = item.species || (top ? (await individual(top.catalogue_code).catch(() => ({}))).species : null);
    const answer = await askNewIndividual(suggested);
    if (answer) {
      decide({ decision: "new_individual", new_individual: answer }, () => h("span", {}, "Catalogued as new individual ",
        h("a", { href: `#/individuals/${encodeURIComponent(answer.catalogue_code)}` }, answer.catalogue_code), "."));
    }
  };
  const reject = () => decide({ decision: "rejected" }, () => h("span", {}, "Rejected."));
  const compare = (start) => openCompare(item, { decide: confirm, declareNew, reject, start });

  const candidates = item.candidates.map((c, rank) => {
    const code = c.catalogue_code || c.individual_id;
    return h("li", { class: "candidate card" },
      candidatePhoto(code),
      h("div", { class: "candidate-text" },
        h("a", { class: "code", href: `#/individuals/${encodeURIComponent(code)}` }, code),
        h("span", { class: "score" }, `similarity ${c.score.toFixed(3)}`),
        scoreBar(c.score, `Similarity of ${code}`),
        h("button", { type: "button", class: "decide primary", onclick: () => confirm(code) }, `Confirm ${code}`),
        h("button", { type: "button", class: "link", onclick: () => compare(rank),
          "aria-label": `Compare with ${code} side by side` }, "Compare")));
  });

  return replace(card,
    h("h2", { id: `review-${item.id}` }, reviewTitle(item)),
    h("p", { class: "hint" }, `New individual: ${percent(item.new_individual_probability)}`,
      item.species ? ` · ${speciesName(item.species)}` : "", ` · stored ${formatDate(item.created_at)}`),
    h("ul", { class: "candidates", "aria-label": "The photo and its candidates" },
      h("li", { class: "candidate card query" }, queryPhoto(item),
        h("div", { class: "candidate-text" }, h("strong", {}, "Photo under review"))),
      candidates.length ? candidates : h("li", { class: "card empty" }, "No candidate: nothing similar is catalogued.")),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "primary compare-open", onclick: () => compare(0) },
        "Compare side by side"),
      h("button", { type: "button", class: "decide", onclick: declareNew }, "New individual…"),
      h("button", { type: "button", class: "decide danger", onclick: reject }, "Reject")),
    status,
    commentThread(item.id));
}

// The review queue's tabs (links, so each has its address): identifications, possible duplicates,
// and the matches auto-accepted without review.
export function reviewTabs(current) {
  const tab = (key, href, text) => h("a", { href, "aria-current": key === current ? "page" : null }, text);
  return h("nav", { class: "tabs", "aria-label": "Review" },
    tab("identifications", "#/review", "Identifications"),
    tab("duplicates", "#/review/duplicates", "Possible duplicates"),
    tab("auto-accepted", "#/review/auto-accepted", "Auto-accepted"));
}

export async function reviewView() {
  const status = h("div", { "aria-live": "polite" });
  const list = h("div", { class: "review-list" });
  const more = h("div");
  const count = h("p", { class: "lead", "aria-live": "polite" });
  let generation = 0;

  function decided(card, describe) {
    card.replaceWith(h("p", { class: "ok", role: "status" }, describe()));
  }

  async function loadPage(filters, cursor) {
    const mine = cursor ? generation : ++generation;
    const page = await api.get("/v1/identifications", { decision: "pending", limit: 20, cursor, ...filters });
    if (mine !== generation) return page;  // a later filter has replaced this one
    if (!cursor) list.replaceChildren();
    list.append(...page.items.map((item) => reviewCard(item, decided)));
    const filtered = Object.keys(filters).length > 0;
    replace(status, list.children.length ? [] : notice(filtered ? "Nothing waiting for review matches these filters."
      : "Nothing is waiting for review."));
    replace(count, `${page.total ?? page.items.length} identification(s) waiting${filtered ? " that match" : ""}. `
      + "Compare the photo with each candidate, then confirm one, declare a new individual, or reject.");
    replace(more, page.next_cursor
      ? h("button", { type: "button", onclick: () => loadPage(filters, page.next_cursor)
        .catch((e) => replace(more, errorBox(e))) }, "Show more")
      : []);
    return page;
  }

  const filters = await filterBar("review", ["species", "location", "since", "until", "dated"],
    (params) => loadPage(params).catch((error) => replace(status, errorBox(error))));
  await loadPage({});
  return h("section", {},
    reviewTabs("identifications"),
    h("h1", {}, "Review queue"),
    count, filters.element, status, list, more);
}
