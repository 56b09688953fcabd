// The filter bar of the lists (individuals, sightings, review queue): each field is a query
// parameter of the API's list, so what the page shows is what the API answers for it.

import { api } from "./api.js";
import { h } from "./dom.js";

const FILTER_DELAY_MS = 250;
let speciesList = null;

export function knownSpecies() {
  speciesList = speciesList || api.get("/v1/species").catch((error) => {
    speciesList = null;
    throw error;
  });
  return speciesList;
}

// A date field's day as the API's bounds: `since` from that day's start, `until` before the next
// day's (so "until 30 June" includes 30 June).
function dayBound(value, next) {
  if (!value) return undefined;
  const day = new Date(`${value}T00:00:00Z`);
  if (next) day.setUTCDate(day.getUTCDate() + 1);
  return day.toISOString().replace(".000Z", "Z");
}

export const FIELDS = {
  q: { label: "Search", type: "search", placeholder: "Catalogue code or name" },
  individual: { label: "Individual", type: "search", placeholder: "Catalogue code" },
  species: { label: "Species", type: "species" },
  sex: { label: "Sex", type: "select", options: [["", "Any"], ["female", "Female"], ["male", "Male"],
    ["unknown", "Unknown"]] },
  location: { label: "Place", type: "search", placeholder: "Part of the place's name" },
  since: { label: "From", type: "date" },
  until: { label: "Until", type: "date" },
  dated: { label: "Date known", type: "select", options: [["", "Dated or not"], ["true", "Dated only"],
    ["false", "Undated only"]] },
};

// ``names``: keys of FIELDS; ``onChange(params)`` runs on every change (typing waits a moment).
export async function filterBar(id, names, onChange) {
  const controls = {};
  let timer = null;
  const changed = (delay) => {
    clearTimeout(timer);
    timer = setTimeout(() => onChange(params()), delay);
  };
  const species = names.includes("species") ? await knownSpecies() : [];
  const fields = names.map((name) => {
    const spec = FIELDS[name];
    const fieldId = `${id}-${name}`;
    let control;
    if (spec.type === "select" || spec.type === "species") {
      const options = spec.type === "species"
        ? [["", "Any species"], ...species.filter((sp) => sp.is_cetacean).map((sp) => [sp.key, sp.common_name])]
        : spec.options;
      control = h("select", { id: fieldId, name }, options.map(([value, label]) => h("option", { value }, label)));
      control.addEventListener("change", () => changed(0));
    } else {
      control = h("input", { id: fieldId, name, type: spec.type, placeholder: spec.placeholder, autocomplete: "off",
        maxlength: spec.type === "date" ? undefined : 100 });
      control.addEventListener(spec.type === "date" ? "change" : "input", () => changed(spec.type === "date" ? 0
        : FILTER_DELAY_MS));
    }
    controls[name] = control;
    return h("div", { class: "field" }, h("label", { for: fieldId }, spec.label), control);
  });

  function params() {
    const values = {};
    for (const [name, control] of Object.entries(controls)) {
      const value = control.value.trim();
      if (!value) continue;
      if (name === "since") values.since = dayBound(value, false);
      else if (name === "until") values.until = dayBound(value, true);
      else values[name] = value;
    }
    return values;
  }

  const clear = h("button", { type: "button", onclick: () => {
    for (const control of Object.values(controls)) control.value = "";
    changed(0);
  } }, "Clear filters");
  const element = h("form", { class: "filters", role: "search", "aria-label": "Filters",
    onsubmit: (event) => { event.preventDefault(); changed(0); } }, fields, h("div", { class: "field" }, clear));
  return { element, params, controls };
}
