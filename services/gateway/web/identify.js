// Identify: drop a photo, see the animal's box, its species, and the catalogued individuals it
// may be (their photos side by side with the query), then keep it for review if wanted.

import { api, idempotencyKey, individual } from "./api.js";
import { openCompare } from "./compare.js";
import { h, replace, errorBox, busy, notice, mediaImage, boxOverlay, cropView, percent, scoreBar, speciesName }
  from "./dom.js";

export function photoPicker(id, label, { multiple = false, onFiles }) {
  const input = h("input", { id, name: id, type: "file", accept: "image/jpeg,image/png,image/webp",
    multiple, class: "visually-hidden-file" });
  input.addEventListener("change", () => input.files.length && onFiles(Array.from(input.files)));
  const zone = h("label", { for: id, class: "dropzone" },
    h("strong", {}, label), h("span", {}, "Drop here, or press to choose (JPEG, PNG or WebP)"));
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const files = Array.from(e.dataTransfer.files).filter((f) => f.type.startsWith("image/"));
    if (files.length) onFiles(multiple ? files : files.slice(0, 1));
  });
  return h("div", { class: "picker" }, zone, input);
}

function candidateCard(candidate, rank) {
  const photo = h("div", { class: "candidate-photo" }, busy("Loading photo…"));
  individual(candidate.individual_id)
    .then((found) => replace(photo, mediaImage(found.representative_media_id,
      `Catalogued photo of ${candidate.individual_id}`)))
    .catch((error) => replace(photo, errorBox(error)));
  return h("li", { class: "candidate card" },
    photo,
    h("div", { class: "candidate-text" },
      h("span", { class: "rank" }, `#${rank}`),
      h("a", { href: `#/individuals/${encodeURIComponent(candidate.individual_id)}`, class: "code" },
        candidate.individual_id),
      candidate.name ? h("span", { class: "name" }, candidate.name) : null,
      h("span", { class: "score" }, `similarity ${candidate.score.toFixed(3)}`),
      scoreBar(candidate.score, `Similarity of ${candidate.individual_id}`)));
}

function resultSection(result, index, photoUrl) {
  const [top] = result.species;
  const species = h("ol", { class: "species-list" }, result.species.slice(0, 3).map((sp) =>
    h("li", {}, h("span", {}, speciesName(sp.species)), scoreBar(sp.score, speciesName(sp.species)),
      h("span", { class: "num" }, percent(sp.score)))));
  const query = h("li", { class: "candidate card query" },
    h("div", { class: "candidate-photo" }, cropView(photoUrl, result.box, `Animal ${index + 1} cut from your photo`)),
    h("div", { class: "candidate-text" }, h("strong", {}, "Your photo"),
      h("span", {}, `${speciesName(result.view)} view`)));
  const candidates = result.candidates.length
    ? result.candidates.map((c, i) => candidateCard(c, i + 1))
    : [h("li", { class: "card empty" }, "No catalogued individual of this species is similar yet.")];
  const compare = result.candidates.length ? h("button", { type: "button", class: "compare-open", onclick: () =>
    openCompare({ photo_url: photoUrl, box: result.box, candidates: result.candidates.map((c) => ({
      individual_id: c.individual_id, catalogue_code: c.individual_id, score: c.score })) }) },
  "Compare side by side") : null;
  return h("section", { class: "result", "aria-labelledby": `result-${index}` },
    h("h2", { id: `result-${index}` }, `Animal ${index + 1}: ${speciesName(top && top.species)}`),
    h("div", { class: "facts" },
      h("div", {}, h("h3", {}, "Species"), species),
      h("dl", {},
        h("dt", {}, "View"), h("dd", {}, speciesName(result.view)),
        h("dt", {}, "Detection"), h("dd", {}, percent(result.detection_score)),
        h("dt", {}, "New individual"), h("dd", { class: "new-individual" }, percent(result.new_individual)),
        h("dt", {}, "Ranking"), h("dd", {}, result.ranking.join(", ")))),
    h("h3", {}, "Candidates, best first"),
    h("ul", { class: "candidates", "aria-label": `Candidates for animal ${index + 1}` }, query, candidates),
    compare ? h("div", { class: "actions" }, compare) : null);
}

function encounterSection(answer) {
  const { fused } = answer;
  const candidates = fused.candidates.length
    ? fused.candidates.map((c, i) => candidateCard(c, i + 1))
    : [h("li", { class: "card empty" }, "No catalogued individual of this species is similar yet.")];
  const perPhoto = h("ol", { class: "encounter-photos", "aria-label": "Each photo on its own" },
    answer.photos.map((p) => h("li", {}, h("span", { class: "code" }, p.filename), ": ",
      p.result ? `${p.result.ranking.slice(0, 3).join(", ")}` : "no whale or dolphin found (left out)")));
  return h("section", { class: "result", "aria-labelledby": "encounter-result" },
    h("h2", { id: "encounter-result" },
      `The encounter's animal (${fused.photos_used} photo${fused.photos_used === 1 ? "" : "s"}): `
      + speciesName(fused.species[0] && fused.species[0].species)),
    h("dl", {},
      h("dt", {}, "New individual"), h("dd", { class: "new-individual" }, percent(fused.new_individual)),
      h("dt", {}, "Ranking"), h("dd", { class: "fused-ranking" }, fused.ranking.join(", "))),
    h("h3", {}, "Candidates from all the photos together, best first"),
    h("ul", { class: "candidates", "aria-label": "Candidates for the encounter" }, candidates),
    h("h3", {}, "Each photo on its own"), perPhoto);
}

export async function identifyView() {
  const preview = h("div", { class: "preview" });
  const results = h("div", { class: "results", "aria-live": "polite" });
  let photoUrl = null;

  async function identify(file) {
    if (photoUrl) URL.revokeObjectURL(photoUrl);
    photoUrl = URL.createObjectURL(file);
    const img = h("img", { src: photoUrl, alt: `Your photo ${file.name}`, class: "photo" });
    replace(preview, h("figure", { class: "photo-frame" }, img));
    replace(results, busy("Identifying…"));
    const form = new FormData();
    form.append("image", file);
    try {
      const answer = await api.upload("/v1/identify", form);
      const draw = () => answer.results.forEach((r) => img.parentElement.append(boxOverlay(img, r.box)));
      if (img.complete) draw(); else img.addEventListener("load", draw, { once: true });
      showResults(file, answer);
    } catch (error) {
      replace(results, errorBox(error));
    }
  }

  async function identifyEncounter(files) {
    if (photoUrl) URL.revokeObjectURL(photoUrl);
    photoUrl = null;
    replace(preview, h("p", {}, `${files.length} photos of one encounter: ${files.map((f) => f.name).join(", ")}`));
    replace(results, busy("Identifying the encounter…"));
    const form = new FormData();
    files.forEach((f) => form.append("images", f));
    try {
      const answer = await api.upload("/v1/encounters:identify", form);
      replace(results, answer.fused ? encounterSection(answer)
        : notice("No whale or dolphin was found in these photos."));
    } catch (error) {
      replace(results, errorBox(error));
    }
  }

  function showResults(file, answer) {
    if (!answer.results.length) {
      replace(results, notice(answer.reason === "no_cetacean"
        ? "No whale or dolphin was found in this photo."
        : `Nothing was identified (${answer.reason || "no result"}).`));
      return;
    }
    const key = idempotencyKey();  // the same key on a retry: the photo is stored once
    const storeStatus = h("div", { "aria-live": "polite" });
    const store = h("button", { type: "button", class: "primary" }, "Store for review");
    store.addEventListener("click", async () => {
      store.disabled = true;
      replace(storeStatus, busy("Storing…"));
      const form = new FormData();
      form.append("image", file);
      try {
        const stored = await api.upload("/v1/identify?store=true", form, { "Idempotency-Key": key });
        const count = stored.results.filter((r) => r.identification_id).length;
        replace(storeStatus, h("p", { class: "ok", role: "status" },
          `Stored: ${count} identification${count === 1 ? "" : "s"} waiting in the `,
          h("a", { href: "#/review" }, "review queue"), "."));
      } catch (error) {
        store.disabled = false;
        replace(storeStatus, errorBox(error));
      }
    });
    replace(results, answer.results.map((r, i) => resultSection(r, i, photoUrl)),
      h("div", { class: "actions" }, store, storeStatus));
  }

  return h("section", {},
    h("h1", {}, "Identify a photo"),
    h("p", { class: "lead" }, "Which species, and which catalogued individual? Nothing is kept unless you store it. "
      + "Several photos of one animal from one encounter are identified together, which ranks it much better."),
    h("div", { class: "identify-layout" },
      h("div", {}, photoPicker("identify-photo", "Photo to identify, or several of one encounter", {
        multiple: true,
        onFiles: (files) => (files.length > 1 ? identifyEncounter(files) : identify(files[0])),
      }), preview),
      results));
}
