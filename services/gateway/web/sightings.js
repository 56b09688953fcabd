// Sightings: the catalogue's encounters on a map and in a table, narrowed by individual, species,
// place, period and whether they are dated (the API's filters of GET /v1/encounters).

import { api, ApiError } from "./api.js";
import { h, replace, errorBox, notice, sightingDate, sightingTitle } from "./dom.js";
import { filterBar } from "./filters.js";
import { sightingsMap } from "./maps.js";

const MAPPED_MAX = 500;  // the API's largest page; a bigger catalogue is narrowed with the filters

// Encounters name their individuals by id; the page shows catalogue codes (one list, once per view).
async function codesById() {
  const page = await api.get("/v1/individuals", { limit: MAPPED_MAX });
  return new Map(page.items.map((i) => [i.id, i.catalogue_code]));
}

function individualLinks(ids, codes) {
  if (!ids.length) return "–";
  return ids.map((id, n) => {
    const code = codes.get(id);
    return [n ? ", " : "", code ? h("a", { href: `#/individuals/${encodeURIComponent(code)}` }, code) : "(merged)"];
  });
}

function row(s, codes) {
  return h("tr", { dataset: { encounterId: s.id } },
    h("td", {}, sightingDate(s.occurred_at, { time: true }) || "Undated"),
    h("td", {}, s.location_name || "–"),
    h("td", { class: "num" }, Number.isFinite(s.latitude) ? `${s.latitude.toFixed(3)}, ${s.longitude.toFixed(3)}` : "–"),
    h("td", {}, s.observer || "–"),
    h("td", { class: "num" }, String((s.media_ids || []).length)),
    h("td", {}, individualLinks(s.individual_ids || [], codes)));
}

export async function sightingsView() {
  const mapSlot = h("div");
  // Focusable: a table wider than a phone scrolls sideways, and the keyboard must reach it too.
  const tableSlot = h("div", { class: "table-scroll", tabindex: 0, role: "region", "aria-label": "Sightings table" });
  const count = h("p", { class: "hint", "aria-live": "polite" });
  let generation = 0;

  const codes = codesById();
  async function load(filters) {
    const mine = ++generation;
    try {
      const [page, known] = await Promise.all([api.get("/v1/encounters", { limit: MAPPED_MAX, ...filters }), codes]);
      if (mine !== generation) return;
      const filtered = Object.keys(filters).length > 0;
      replace(count, `${page.total} sighting(s)${filtered ? " match" : ""}`
        + (page.total > page.items.length ? `; the first ${page.items.length} are shown.` : "."));
      const points = page.items.map((s) => {
        const named = (s.individual_ids || []).map((id) => known.get(id)).filter(Boolean);
        return { ...s, label: [sightingTitle(s.occurred_at, s.location_name), named.join(", ")].filter(Boolean)
          .join(" · "), href: named.length === 1 ? `#/individuals/${encodeURIComponent(named[0])}` : undefined,
        linkText: named.length === 1 ? `Open ${named[0]}` : undefined };
      });
      replace(mapSlot, sightingsMap(points, filtered ? "Map of the sightings that match" : "Map of all sightings"));
      replace(tableSlot, page.items.length ? h("table", { class: "sightings" },
        h("caption", { class: "visually-hidden" }, "Sightings, newest first, the undated last"),
        h("thead", {}, h("tr", {}, ["Date", "Place", "Position", "Observer", "Photos", "Individuals"].map((t) =>
          h("th", { scope: "col" }, t)))),
        h("tbody", {}, page.items.map((s) => row(s, known)))) : notice("No sighting matches."));
    } catch (error) {
      if (mine !== generation) return;
      const unknown = error instanceof ApiError && error.status === 404;
      replace(count, unknown ? notice(error.message) : errorBox(error));
      replace(mapSlot);
      replace(tableSlot);
    }
  }

  const filters = await filterBar("sightings", ["individual", "species", "location", "since", "until", "dated"],
    (params) => load(params));
  const initial = {};
  const wanted = new URLSearchParams(location.hash.split("?")[1] || "").get("individual");
  if (wanted) {
    filters.controls.individual.value = wanted;
    initial.individual = wanted;
  }
  await load(initial);
  return h("section", {},
    h("h1", {}, "Sightings"),
    h("p", { class: "lead" }, "Every encounter of the catalogue; the map clusters nearby sightings until you zoom in."),
    filters.element, count,
    h("div", { class: "sightings-layout" }, mapSlot, tableSlot));
}
