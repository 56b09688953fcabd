// Individuals: search and filter the catalogue; one individual's timeline of sightings with the
// resighting intervals, its map, its photos, its details (editable) and their audit trail.

import { api, forgetIndividual } from "./api.js";
import { sightingsMap } from "./maps.js";
import { filterBar } from "./filters.js";
import { h, s as svg, replace, errorBox, busy, notice, mediaImage, photoLink, formatDate, daysBetween, sightingDate, sightingTitle,
  speciesName } from "./dom.js";

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
  let generation = 0;

  async function load(filters, cursor) {
    const mine = cursor ? generation : ++generation;
    try {
      const page = await api.get("/v1/individuals", { limit: 48, cursor, ...filters });
      if (mine !== generation) return;  // a later search has replaced this one
      if (!cursor) grid.replaceChildren();
      grid.append(...page.items.map(individualCard));
      const filtered = Object.keys(filters).length > 0;
      replace(status, grid.children.length ? h("p", { class: "hint" }, `${page.total} individual(s)`
        + (filtered ? " match" : ""))
        : notice(filtered ? (filters.q ? `No individual matches “${filters.q}”.` : "No individual matches these filters.")
          : "The catalogue is empty: upload an encounter."));
      replace(more, page.next_cursor
        ? h("button", { type: "button", onclick: () => load(filters, page.next_cursor) }, "Show more") : []);
    } catch (error) {
      replace(status, errorBox(error));
    }
  }

  const filters = await filterBar("individuals", ["q", "species", "sex", "location", "since", "until"],
    (params) => load(params));
  await load({});
  return h("section", {},
    h("h1", {}, "Individuals"),
    h("p", { class: "lead" }, "Place and period keep the individuals sighted there and then."),
    filters.element, status, grid, more);
}

// Oldest first, as a life history reads; the undated after the dated (they have no place in time).
function chronological(sightings) {
  const dated = sightings.filter((s) => s.occurred_at).sort((a, b) => a.occurred_at.localeCompare(b.occurred_at));
  return { dated, undated: sightings.filter((s) => !s.occurred_at) };
}

function photoStrip(ids, code) {
  return ids.length ? h("ul", { class: "timeline-photos" }, ids.slice(0, 6).map((id, i) => h("li", {},
    photoLink(id, `Photo ${i + 1} of this sighting of ${code}`)))) : null;
}

function sightingEntry(s, code) {
  const position = Number.isFinite(s.latitude) ? `${s.latitude.toFixed(4)}, ${s.longitude.toFixed(4)}` : null;
  return h("li", { class: "timeline-entry", dataset: { encounterId: s.id } },
    h("h3", {}, sightingDate(s.occurred_at, { time: true }) || "Undated"),
    h("p", { class: "timeline-place" }, [s.location_name || "Place not recorded", position, s.observer]
      .filter(Boolean).join(" · ")),
    h("p", { class: "hint" }, `${(s.media_ids || []).length} photo(s)`),
    photoStrip(s.media_ids || [], code));
}

// Intervals between consecutive dated sightings, in days.
export function resightingIntervals(dated) {
  return dated.slice(1).map((s, i) => daysBetween(dated[i].occurred_at, s.occurred_at));
}

const STRIP_WIDTH = 600;
const STRIP_HEIGHT = 46;
const STRIP_MARGIN = 14;

// The sightings as dots on a line of years, from the first sighting's year to the last one's.
function timelineStrip(dated) {
  const day = (iso) => Date.UTC(Number(iso.slice(0, 4)), Number(iso.slice(5, 7)) - 1, Number(iso.slice(8, 10)));
  const first = Number(dated[0].occurred_at.slice(0, 4));
  const last = Number(dated[dated.length - 1].occurred_at.slice(0, 4));
  const start = Date.UTC(first, 0, 1);
  const end = Date.UTC(last + 1, 0, 1);
  const x = (t) => STRIP_MARGIN + ((t - start) / (end - start)) * (STRIP_WIDTH - 2 * STRIP_MARGIN);
  const years = Array.from({ length: last - first + 2 }, (_, i) => first + i);
  const range = `${sightingDate(dated[0].occurred_at)} to ${sightingDate(dated[dated.length - 1].occurred_at)}`;
  return svg("svg", { class: "timeline-strip", viewBox: `0 0 ${STRIP_WIDTH} ${STRIP_HEIGHT}`, role: "img",
    "aria-label": `${dated.length} dated sighting(s), ${range}` },
  svg("line", { class: "strip-axis", x1: STRIP_MARGIN, x2: STRIP_WIDTH - STRIP_MARGIN, y1: 18, y2: 18 }),
  years.map((year) => {
    const at = x(Date.UTC(year, 0, 1));
    return svg("g", {}, svg("line", { class: "strip-tick", x1: at, x2: at, y1: 12, y2: 24 }),
      year <= last ? svg("text", { class: "strip-label", x: at + 3, y: 38 }, String(year)) : null);
  }),
  dated.map((sighting) => svg("circle", { class: "strip-dot", cx: x(day(sighting.occurred_at)), cy: 18, r: 5 },
    svg("title", {}, sightingTitle(sighting.occurred_at, sighting.location_name)))));
}

function timeline(sightings, code) {
  const { dated, undated } = chronological(sightings);
  const intervals = resightingIntervals(dated);
  const entries = [];
  dated.forEach((s, i) => {
    if (i > 0) {
      entries.push(h("li", { class: "timeline-gap", "aria-label": `${intervals[i - 1]} days later` },
        `${intervals[i - 1]} days later`));
    }
    entries.push(sightingEntry(s, code));
  });
  const sorted = [...intervals].sort((a, b) => a - b);
  const median = sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)] : null;
  return h("div", { class: "timeline-block" },
    dated.length ? timelineStrip(dated) : null,
    h("p", { class: "resightings" }, intervals.length
      ? `Resighted ${intervals.length} time(s); intervals ${intervals.join(", ")} days`
        + ` (shortest ${sorted[0]}, median ${median}, longest ${sorted[sorted.length - 1]}).`
      : "Not resighted yet (fewer than two dated sightings)."),
    h("ol", { class: "timeline", "aria-label": `Sightings of ${code}, oldest first` }, entries),
    undated.length ? [h("h3", {}, `Undated (${undated.length})`),
      h("ul", { class: "timeline undated" }, undated.map((s) => sightingEntry(s, code)))] : null);
}

function describeChange(entry) {
  const { before = {}, after = {} } = entry.details || {};
  const fields = Object.keys(after);
  if (!fields.length) return "";
  return fields.map((f) => `${f}: ${before[f] ?? "–"} → ${after[f] ?? "–"}`).join("; ");
}

// Who made a change: a user as the server names them, an API key by the start of its id.
function actorName(actor) {
  if (!actor) return "unknown";
  return actor.startsWith("key:") ? `API key ${actor.slice(4, 12)}` : actor;
}

async function auditTrail(code, list) {
  try {
    const history = await api.get(`/v1/individuals/${encodeURIComponent(code)}/history`);
    replace(list, history.length ? [...history].reverse().map((entry) => h("li", { class: "audit-entry" },
      h("span", { class: "audit-action" }, entry.action.replaceAll("_", " ")), " ", describeChange(entry),
      h("span", { class: "hint" }, ` · ${actorName(entry.actor)} · ${formatDate(entry.created_at)}`)))
      : h("li", { class: "hint" }, "No change recorded yet."));
  } catch (error) {
    replace(list, h("li", {}, errorBox(error)));
  }
}

// Name, sex and notes, saved with PATCH (only what changed); the audit trail shows each change.
function editForm(found, onSaved) {
  const status = h("div", { "aria-live": "polite" });
  const name = h("input", { id: "edit-name", name: "name", maxlength: 200, value: found.name || "",
    autocomplete: "off" });
  const sex = h("select", { id: "edit-sex", name: "sex" }, ["unknown", "female", "male"].map((v) =>
    h("option", { value: v, selected: found.sex === v }, v[0].toUpperCase() + v.slice(1))));
  const notes = h("textarea", { id: "edit-notes", name: "notes", rows: 3, maxlength: 5000 });
  notes.value = found.notes || "";
  const form = h("form", { class: "card edit-individual", "aria-labelledby": "edit-title", onsubmit: async (event) => {
    event.preventDefault();
    const wanted = { name: name.value.trim() || null, sex: sex.value, notes: notes.value.trim() || null };
    const changes = Object.fromEntries(Object.entries(wanted).filter(([k, v]) => (found[k] ?? null) !== v));
    if (!Object.keys(changes).length) {
      replace(status, h("p", { class: "hint", role: "status" }, "Nothing has changed."));
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    replace(status, busy("Saving…"));
    try {
      const saved = await api.patch(`/v1/individuals/${encodeURIComponent(found.catalogue_code)}`, changes);
      Object.assign(found, saved);
      forgetIndividual(found.catalogue_code);
      replace(status, h("p", { class: "ok", role: "status" }, "Saved."));
      onSaved(saved);
    } catch (error) {
      replace(status, errorBox(error));
    } finally {
      button.disabled = false;
    }
  } },
  h("h2", { id: "edit-title" }, "Details"),
  h("div", { class: "grid-fields" },
    h("div", { class: "field" }, h("label", { for: "edit-name" }, "Name"), name),
    h("div", { class: "field" }, h("label", { for: "edit-sex" }, "Sex"), sex)),
  h("div", { class: "field" }, h("label", { for: "edit-notes" }, "Notes"), notes),
  h("button", { type: "submit", class: "primary" }, "Save details"),
  status);
  return form;
}

export async function individualView(code) {
  const found = await api.get(`/v1/individuals/${encodeURIComponent(code)}`);
  const { dated, undated } = chronological(found.sightings);
  const newestFirst = [...dated].reverse().concat(undated);
  const photos = newestFirst.flatMap((s) => s.media_ids || []).slice(0, PHOTOS_SHOWN);
  const points = dated.concat(undated).map((s) => ({ ...s, label: sightingTitle(s.occurred_at, s.location_name) }));
  const heading = h("h1", {});
  const showHeading = () => replace(heading, found.catalogue_code, found.name ? ` · ${found.name}` : "");
  showHeading();
  const facts = h("dl", { class: "inline" });
  const showFacts = () => replace(facts, [
    ["Species", speciesName(found.species)],
    ["Sex", found.sex || "unknown"],
    ["First seen", sightingDate(dated[0] && dated[0].occurred_at) || "–"],
    ["Last seen", sightingDate(dated.length && dated[dated.length - 1].occurred_at) || "–"],
    ["Sightings", String(found.sightings_total)],
    found.status !== "active" ? ["Status", found.status] : null,
  ].filter(Boolean).map(([term, value]) => h("div", {}, h("dt", {}, term), h("dd", {}, value))));
  showFacts();
  const history = h("ol", { class: "audit", "aria-label": `Changes to ${found.catalogue_code}, newest first` });
  auditTrail(found.catalogue_code, history);
  return h("section", { class: "individual-detail" },
    h("p", {}, h("a", { href: "#/individuals" }, "← All individuals")),
    heading, facts,
    h("div", { class: "two-up" },
      h("div", {}, h("h2", {}, "Timeline"), found.sightings.length ? timeline(found.sightings, found.catalogue_code)
        : notice("No sighting yet.")),
      h("div", {}, h("h2", {}, "Map"), sightingsMap(points, `Map of the sightings of ${found.catalogue_code}`),
        h("p", {}, h("a", { href: `#/sightings?individual=${encodeURIComponent(found.catalogue_code)}` },
          `${found.catalogue_code}'s sightings in the catalogue's map`)),
        editForm(found, () => {
          showHeading();
          showFacts();
          auditTrail(found.catalogue_code, history);
        }),
        h("h2", {}, "History"), history)),
    h("h2", {}, "Photos"),
    photos.length ? h("ul", { class: "photo-grid" }, photos.map((id, i) => h("li", {},
      photoLink(id, `Photo ${i + 1} of ${found.catalogue_code}`)))) : notice("No photo yet."));
}
