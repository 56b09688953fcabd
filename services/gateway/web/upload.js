// Upload an encounter: several photos and where, when and by whom they were taken, optionally
// filed under a known individual's catalogue code.

import { api, idempotencyKey } from "./api.js";
import { h, replace, errorBox, busy } from "./dom.js";
import { photoPicker } from "./identify.js";

function field(id, label, attrs, hint) {
  const hintId = hint ? `${id}-hint` : undefined;
  return h("div", { class: "field" },
    h("label", { for: id }, label),
    h("input", { id, name: id, "aria-describedby": hintId, ...attrs }),
    hint ? h("p", { class: "hint", id: hintId }, hint) : null);
}

function localNow() {
  const now = new Date();
  now.setMinutes(now.getMinutes() - now.getTimezoneOffset(), 0, 0);
  return now.toISOString().slice(0, 16);
}

function enrolledSummary(enrolled, code) {
  const pending = (enrolled.identifications || []).filter((i) => i.decision === "pending").length;
  const duplicates = (enrolled.duplicate_media_ids || []).length;
  return h("div", { class: "ok", role: "status" },
    h("p", {}, `Stored ${enrolled.media.length} photo(s) as one encounter`
      + (duplicates ? ` (${duplicates} already catalogued)` : "") + "."),
    code ? h("p", {}, "Filed under ", h("a", { href: `#/individuals/${encodeURIComponent(code)}` }, code), ".") : null,
    pending ? h("p", {}, `${pending} identification(s) wait in the `, h("a", { href: "#/review" }, "review queue"), ".")
      : null);
}

export async function uploadView() {
  let files = [];
  let key = idempotencyKey();
  const chosen = h("ul", { class: "file-list", "aria-live": "polite" });
  const status = h("div", { "aria-live": "polite" });

  function choose(list) {
    files = list;
    key = idempotencyKey();  // different photos are a different upload
    replace(chosen, files.map((f) => h("li", {}, `${f.name} (${Math.round(f.size / 1024)} kB)`)));
  }

  async function submit(event) {
    event.preventDefault();
    if (!files.length) {
      replace(status, errorBox(new Error("Choose at least one photo.")));
      return;
    }
    const form = new FormData();
    files.forEach((f) => form.append("images", f));
    const data = new FormData(event.target);
    const observed = data.get("observed_at");
    if (observed) form.append("observed_at", new Date(observed).toISOString());
    for (const name of ["latitude", "longitude", "location", "observer", "notes", "individual_id"]) {
      const value = String(data.get(name) || "").trim();
      if (value) form.append(name, value);
    }
    const button = event.target.querySelector("button[type=submit]");
    button.disabled = true;
    replace(status, busy(`Uploading and analysing ${files.length} photo(s)…`));
    try {
      const enrolled = await api.upload("/v1/encounters", form, { "Idempotency-Key": key });
      replace(status, enrolledSummary(enrolled, String(data.get("individual_id") || "").trim()));
      event.target.reset();
      choose([]);
    } catch (error) {
      replace(status, errorBox(error));  // same key kept: submitting again stores nothing twice
    } finally {
      button.disabled = false;
    }
  }

  // In the field the device knows where the boat is; the browser asks the user first.
  const whereStatus = h("span", { class: "hint", "aria-live": "polite" });
  const here = h("button", { type: "button", onclick: () => {
    if (!navigator.geolocation) {
      replace(whereStatus, "This browser cannot tell its position.");
      return;
    }
    replace(whereStatus, "Finding the position…");
    navigator.geolocation.getCurrentPosition((position) => {
      const form = here.closest("form");
      form.elements.latitude.value = position.coords.latitude.toFixed(5);
      form.elements.longitude.value = position.coords.longitude.toFixed(5);
      replace(whereStatus, `Position set (±${Math.round(position.coords.accuracy)} m).`);
    }, (error) => replace(whereStatus, `No position: ${error.message || "refused"}.`),
    { enableHighAccuracy: true, timeout: 20_000 });
  } }, "Use this device's position");

  return h("section", {},
    h("h1", {}, "Upload an encounter"),
    h("p", { class: "lead" }, "Photos of one sighting. Give a catalogue code when you know the animal "
      + "(a new code creates the individual); otherwise each photo waits in the review queue."),
    h("form", { class: "card upload", onsubmit: submit },
      photoPicker("encounter-photos", "Photos", { multiple: true, onFiles: choose }),
      chosen,
      h("div", { class: "grid-fields" },
        field("observed_at", "Observed at (local time)", { type: "datetime-local", value: localNow() }),
        field("location", "Location", { maxlength: 200, placeholder: "e.g. Stellwagen Bank" }),
        field("latitude", "Latitude", { type: "number", step: "any", min: -90, max: 90, inputmode: "decimal" }),
        field("longitude", "Longitude", { type: "number", step: "any", min: -180, max: 180, inputmode: "decimal" }),
        h("div", { class: "field where" }, here, whereStatus),
        field("observer", "Observer", { maxlength: 200 }),
        field("individual_id", "Catalogue code (optional)", { maxlength: 64, autocomplete: "off" },
          "Only when you know who this is.")),
      h("div", { class: "field" }, h("label", { for: "notes" }, "Notes"),
        h("textarea", { id: "notes", name: "notes", rows: 3, maxlength: 5000 })),
      h("button", { type: "submit", class: "primary" }, "Upload encounter"),
      status));
}
