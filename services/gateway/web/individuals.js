// Individuals: search and browse the catalogue; one individual's photos, sightings and their map.

import { api } from "./api.js";
import { sightingsMap } from "./charts.js";
import { h, replace, errorBox, notice, mediaImage, formatDate, speciesName } from "./dom.js";

const SEARCH_DELAY_MS = 250;
const PHOTOS_SHOWN = 24;

function individualCard(item) {
  const code = item.catalogue_code;
  return h("li", { class: "card individual" },
    h("a", { href: `#/individuals/${encodeURIComponent(code)}`, "aria-label": `${code}${item.name ? `, ${item.name}` : ""}` },
      mediaImage(item.representative_media_id, `Photo of ${code}`),
      h("span", { class: "code" }, code),
      item.name ? h("span", { class: "name" }, item.name) : null,
      h("span", { class: "hint" }, speciesName(item.species)),
      h("span", { class: "hint" }, `last seen ${formatDate(item.last_seen)}`)));
}

export async function individualsView() {
  const grid = h("ul", { class: "individual-grid", "aria-live": "polite" });
  const more = h("div");
  const status = h("div");
  let timer = null;
  let generation = 0;

  async function load(query, cursor) {
    const mine = cursor ? generation : ++generation;
    try {
      const page = await api.get("/v1/individuals", { q: query || undefined, limit: 48, cursor });
      if (mine !== generation) return;  // a later search has replaced this one
      if (!cursor) grid.replaceChildren();
      grid.append(...page.items.map(individualCard));
      replace(status, grid.children.length ? h("p", { class: "hint" }, `${page.total} individual(s)`)
        : notice(query ? `No individual matches “${query}”.` : "The catalogue is empty: upload an encounter."));
      replace(more, page.next_cursor
        ? h("button", { type: "button", onclick: () => load(query, page.next_cursor) }, "Show more") : []);
    } catch (error) {
      replace(status, errorBox(error));
    }
  }

  const search = h("input", { id: "individual-search", type: "search", placeholder: "Catalogue code or name",
    autocomplete: "off", maxlength: 100 });
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => load(search.value.trim()), SEARCH_DELAY_MS);
  });
  await load("");
  return h("section", {},
    h("h1", {}, "Individuals"),
    h("form", { role: "search", class: "search", onsubmit: (e) => { e.preventDefault(); load(search.value.trim()); } },
      h("label", { for: "individual-search" }, "Search"), search),
    status, grid, more);
}

function sightingRows(sightings) {
  return sightings.map((s) => h("tr", {},
    h("td", {}, formatDate(s.occurred_at)),
    h("td", {}, s.location_name || "–"),
    h("td", { class: "num" }, Number.isFinite(s.latitude) ? `${s.latitude.toFixed(4)}, ${s.longitude.toFixed(4)}` : "–"),
    h("td", {}, s.observer || "–"),
    h("td", { class: "num" }, String((s.media_ids || []).length))));
}

export async function individualView(code) {
  const found = await api.get(`/v1/individuals/${encodeURIComponent(code)}`);
  // Newest first; a sighting without a date (e.g. a photo identified and stored as is) last.
  const sightings = [...found.sightings].sort((a, b) => (b.occurred_at || "").localeCompare(a.occurred_at || ""));
  const photos = sightings.flatMap((s) => s.media_ids || []).slice(0, PHOTOS_SHOWN);
  const points = sightings.map((s) => ({ ...s, label: `${formatDate(s.occurred_at)} ${s.location_name || ""}`.trim() }));
  return h("section", { class: "individual-detail" },
    h("p", {}, h("a", { href: "#/individuals" }, "← All individuals")),
    h("h1", {}, found.catalogue_code, found.name ? ` · ${found.name}` : ""),
    h("dl", { class: "inline" }, [
      ["Species", speciesName(found.species)],
      ["Sex", found.sex || "unknown"],
      ["First seen", formatDate(found.first_seen)],
      ["Last seen", formatDate(found.last_seen)],
      ["Sightings", String(found.sightings_total)],
      found.status !== "active" ? ["Status", found.status] : null,
    ].filter(Boolean).map(([term, value]) => h("div", {}, h("dt", {}, term), h("dd", {}, value)))),
    found.notes ? h("p", {}, found.notes) : null,
    h("h2", {}, "Photos"),
    photos.length ? h("ul", { class: "photo-grid" }, photos.map((id, i) => h("li", {},
      mediaImage(id, `Photo ${i + 1} of ${found.catalogue_code}`)))) : notice("No photo yet."),
    h("div", { class: "two-up" },
      h("div", {}, h("h2", {}, "Sightings"),
        sightings.length ? h("div", { class: "table-scroll" }, h("table", { class: "sightings" },
          h("caption", { class: "visually-hidden" }, `Sightings of ${found.catalogue_code}, newest first`),
          h("thead", {}, h("tr", {}, ["Date", "Location", "Position", "Observer", "Photos"].map((t) =>
            h("th", { scope: "col" }, t)))),
          h("tbody", {}, sightingRows(sightings)))) : notice("No sighting yet.")),
      h("div", {}, h("h2", {}, "Map"), sightingsMap(points, `Map of the sightings of ${found.catalogue_code}`))));
}

