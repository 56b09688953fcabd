// The compare view of the review queue: the photo under review and one candidate's photo side by
// side at full resolution, zoomed and panned together (a trailing edge or a fin's nicks are checked
// at the same place in both), with a mirror flip, a contrast boost, the candidate's other photos,
// and keyboard shortcuts for the decision.

import { api, individual, mediaUrl } from "./api.js";
import { h, s, replace, errorBox, busy, boxCorners, sightingTitle } from "./dom.js";

const ZOOM_STEP = 1.25;
const ZOOM_MIN = 0.25;  // 1 fits the photo to its pane; below, a small photo at 1:1
const ZOOM_MAX = 40;

export const SHORTCUTS = [
  ["ArrowRight", "next candidate"], ["ArrowLeft", "previous candidate"], ["p", "candidate's next photo"],
  ["c", "confirm this candidate"], ["n", "new individual"], ["r", "reject"],
  ["a", "zoom to the animal"], ["w", "why this match (heatmaps)"], ["f", "flip the photo under review"], ["h", "high contrast"], ["+ / -", "zoom"], ["0", "fit"], ["Esc", "close"],
];

// One pane: a stage (the photo at its own pixel size, the box and the explanation's heatmap over
// it) moved by a transform.
function pane(label) {
  const img = h("img", { class: "compare-photo", alt: label, draggable: "false" });
  const overlay = h("img", { class: "compare-overlay", alt: "", hidden: true, draggable: "false" });
  const stage = h("div", { class: "compare-stage" }, img, overlay);
  const viewport = h("div", { class: "compare-viewport", role: "img", "aria-label": label, tabindex: 0 }, stage);
  const caption = h("p", { class: "compare-caption" });
  return { img, overlay, stage, viewport, caption,
    element: h("figure", { class: "compare-pane" }, viewport, caption) };
}

function loadImage(img, url) {
  return new Promise((resolve, reject) => {
    img.addEventListener("load", resolve, { once: true });
    img.addEventListener("error", () => reject(new Error("The photo could not be loaded.")), { once: true });
    img.src = url;
  });
}

const loadInto = (p, url) => loadImage(p.img, url);

// ``item`` is an identification of the review queue (``media_id``, ``box``, ``candidates``, its
// sighting), or a photo being identified (``photo_url`` instead of ``media_id``); ``decide(code)``,
// ``declareNew()`` and ``reject()`` are its card's decisions, left out where nothing is decided.
// Resolves when the dialog closes.
export function openCompare(item, { decide, declareNew, reject, start = 0 } = {}) {
  const deciding = Boolean(decide);
  const view = { zoom: 1, panX: 0, panY: 0, flipped: false, contrast: false };
  const candidates = item.candidates;
  let index = Math.min(start, Math.max(0, candidates.length - 1));
  let photos = [];      // the shown candidate's photos (media ids), its representative first
  let photoIndex = 0;
  let loading = 0;      // a candidate shown after a newer one was asked for is dropped

  const query = pane("The photo under review, full resolution");
  const other = pane("The candidate's photo, full resolution");
  const status = h("div", { class: "compare-status", "aria-live": "polite" });
  const title = h("h2", { id: "compare-title" });
  const zoomLabel = h("output", { class: "compare-zoom", "aria-live": "off" });
  const strip = h("ul", { class: "compare-strip", "aria-label": "The candidate's photos" });

  const toggle = (name, label, key, onclick) => h("button", { type: "button", "aria-pressed": "false",
    "aria-keyshortcuts": key, dataset: { toggle: name }, onclick }, label);
  const flipButton = toggle("flip", "Flip", "f", () => { view.flipped = !view.flipped; apply(); });
  const contrastButton = toggle("contrast", "Contrast", "h", () => { view.contrast = !view.contrast; apply(); });
  // Why this match: only a stored identification has explanations (GET .../explanations/{code}).
  const whyButton = item.id ? toggle("why", "Why this match", "w", () => {
    explaining = !explaining;
    explain();
  }) : null;
  const whyStatus = h("p", { class: "hint compare-why", "aria-live": "polite" });
  const explanations = new Map();  // candidate code → the API's answer (a promise)
  let explaining = false;
  let explained = null;            // the answer shown now
  const button = (label, key, onclick, className) => h("button", { type: "button", "aria-keyshortcuts": key,
    class: className, onclick }, label);

  const confirmButton = button("Confirm", "c", () => confirmShown(), "primary");
  const dialog = h("dialog", { class: "compare", "aria-labelledby": "compare-title", tabindex: -1 },
    h("div", { class: "compare-head" }, title,
      button("Close", "Escape", () => dialog.close(), "compare-close")),
    h("p", { class: "hint" }, (item.photo_url ? "Your photo" : sightingTitle(item.occurred_at, item.location_name))
      + " · drag to pan, wheel or +/- to zoom; both photos move together."),
    h("div", { class: "compare-panes" }, query.element, other.element),
    h("div", { class: "compare-tools", role: "toolbar", "aria-label": "View" },
      button("−", "-", () => zoomBy(1 / ZOOM_STEP)), zoomLabel, button("+", "+", () => zoomBy(ZOOM_STEP)),
      button("Fit", "0", () => reset()), button("1:1", "1", () => actualPixels()),
      button("Animal", "a", () => toAnimal()), flipButton, contrastButton, whyButton,
      button("← Previous", "ArrowLeft", () => show(index - 1)), button("Next →", "ArrowRight", () => show(index + 1)),
      button("Next photo", "p", () => showPhoto(photoIndex + 1))),
    whyStatus,
    strip,
    deciding ? h("div", { class: "actions compare-decide" }, confirmButton,
      button("New individual…", "n", () => finish(declareNew)), button("Reject", "r", () => finish(reject), "danger"))
      : null,
    status,
    h("details", { class: "hint" }, h("summary", {}, "Keyboard shortcuts"),
      h("dl", { class: "shortcuts" }, SHORTCUTS.map(([key, what]) => [h("dt", {}, h("kbd", {}, key)), h("dd", {}, what)]))));

  // Each photo is first scaled to fit its pane; the shared zoom and pan (in pane pixels) then apply
  // to both, so the same fraction of each photo is in view.
  function place(p, mirrored) {
    const width = p.img.naturalWidth;
    const height = p.img.naturalHeight;
    const { clientWidth: vw, clientHeight: vh } = p.viewport;
    if (!width || !vw) return;
    const fit = Math.min(vw / width, vh / height);
    const k = fit * view.zoom;
    const tx = (vw - width * k) / 2 + view.panX;
    const ty = (vh - height * k) / 2 + view.panY;
    p.stage.style.width = `${width}px`;
    p.stage.style.height = `${height}px`;
    p.stage.style.transform = mirrored ? `translate(${tx + width * k}px, ${ty}px) scale(${-k}, ${k})`
      : `translate(${tx}px, ${ty}px) scale(${k})`;
    p.stage.dataset.scale = k.toFixed(4);
  }

  function apply() {
    place(query, view.flipped);
    place(other, false);
    for (const p of [query, other]) p.img.classList.toggle("contrast", view.contrast);
    flipButton.setAttribute("aria-pressed", String(view.flipped));
    contrastButton.setAttribute("aria-pressed", String(view.contrast));
    zoomLabel.value = `${Math.round(view.zoom * 100)} %`;
    dialog.dataset.zoom = view.zoom.toFixed(4);
    dialog.dataset.pan = `${Math.round(view.panX)},${Math.round(view.panY)}`;
  }

  function zoomBy(factor, at) {
    const next = Math.max(ZOOM_MIN, Math.min(ZOOM_MAX, view.zoom * factor));
    const applied = next / view.zoom;
    // Zooming about a point of the pane (the pointer) keeps that point still; default: the centre.
    const [cx, cy] = at || [0, 0];
    view.panX = cx - (cx - view.panX) * applied;
    view.panY = cy - (cy - view.panY) * applied;
    view.zoom = next;
    if (view.zoom === 1) { view.panX = 0; view.panY = 0; }
    apply();
  }

  function reset() {
    Object.assign(view, { zoom: 1, panX: 0, panY: 0 });
    apply();
  }

  // The photo under review at one screen pixel per photo pixel.
  function actualPixels() {
    const fit = Number(query.stage.dataset.scale) / view.zoom;
    if (fit) zoomBy(1 / fit / view.zoom);
  }

  // The detected animal of the photo under review filling its pane (its box, with a margin).
  function toAnimal() {
    const box = boxCorners(item.box);
    const width = query.img.naturalWidth;
    const height = query.img.naturalHeight;
    const { clientWidth: vw, clientHeight: vh } = query.viewport;
    if (!box || !width || !vw) return;
    const [x0, y0, x1, y1] = box;
    const fit = Math.min(vw / width, vh / height);
    const k = 0.9 * Math.min(vw / Math.max(1, x1 - x0), vh / Math.max(1, y1 - y0));
    view.zoom = Math.max(ZOOM_MIN, Math.min(ZOOM_MAX, k / fit));
    const scale = fit * view.zoom;
    const offsetX = ((x0 + x1) / 2 - width / 2) * scale;
    view.panX = view.flipped ? offsetX : -offsetX;
    view.panY = -((y0 + y1) / 2 - height / 2) * scale;
    apply();
  }

  // One finger (or the mouse) pans; two fingers pinch to zoom about their midpoint, on a phone.
  for (const p of [query, other]) {
    const pointers = new Map();
    let pinch = null;
    const centred = (x, y) => {
      const box = p.viewport.getBoundingClientRect();
      return [x - box.left - box.width / 2, y - box.top - box.height / 2];
    };
    const spread = () => {
      const [a, b] = [...pointers.values()];
      return { distance: Math.hypot(a.x - b.x, a.y - b.y), mid: centred((a.x + b.x) / 2, (a.y + b.y) / 2) };
    };
    p.viewport.addEventListener("pointerdown", (event) => {
      pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
      pinch = pointers.size === 2 ? spread() : null;
      try {
        p.viewport.setPointerCapture(event.pointerId);  // the drag goes on outside the pane
      } catch {
        // a pointer the browser no longer tracks: nothing to capture
      }
    });
    p.viewport.addEventListener("pointermove", (event) => {
      const last = pointers.get(event.pointerId);
      if (!last) return;
      if (pointers.size === 1) {
        view.panX += event.clientX - last.x;
        view.panY += event.clientY - last.y;
      }
      pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
      if (pointers.size === 2 && pinch) {
        const now = spread();
        if (pinch.distance > 0) zoomBy(now.distance / pinch.distance, now.mid);
        pinch = now;
        return;
      }
      apply();
    });
    const release = (event) => {
      pointers.delete(event.pointerId);
      pinch = null;
    };
    p.viewport.addEventListener("pointerup", release);
    p.viewport.addEventListener("pointercancel", release);
    p.viewport.addEventListener("wheel", (event) => {
      event.preventDefault();
      zoomBy(event.deltaY < 0 ? ZOOM_STEP : 1 / ZOOM_STEP, centred(event.clientX, event.clientY));
    }, { passive: false });
  }

  function boxOver(p, box) {
    const [x0, y0, x1, y1] = box;
    p.stage.append(s("svg", { class: "box-overlay", viewBox: `0 0 ${p.img.naturalWidth} ${p.img.naturalHeight}`,
      preserveAspectRatio: "none", "aria-hidden": "true" },
    s("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0, "vector-effect": "non-scaling-stroke" })));
  }

  async function showPhoto(i) {
    if (!photos.length) return;
    photoIndex = ((i % photos.length) + photos.length) % photos.length;
    const mediaId = photos[photoIndex];
    other.viewport.dataset.mediaId = mediaId;
    for (const [n, li] of [...strip.children].entries()) {
      li.querySelector("button").setAttribute("aria-current", n === photoIndex ? "true" : "false");
    }
    replace(other.caption, `Photo ${photoIndex + 1} of ${photos.length} of ${codeOf(index)}`);
    // The heatmap belongs to the photo that was explained, not to the candidate's other photos.
    other.overlay.hidden = !(explaining && explained && explained.candidate.media_id === mediaId);
    try {
      await loadInto(other, await mediaUrl(mediaId));
      apply();
    } catch (error) {
      replace(status, errorBox(error));
    }
  }

  const codeOf = (i) => candidates[i].catalogue_code || candidates[i].individual_id;

  async function show(i) {
    if (!candidates.length) return;
    index = ((i % candidates.length) + candidates.length) % candidates.length;
    const mine = ++loading;
    const code = codeOf(index);
    const candidate = candidates[index];
    replace(title, `Compare with ${code}`, h("span", { class: "hint" },
      ` · candidate ${index + 1} of ${candidates.length} · similarity ${candidate.score.toFixed(3)}`));
    confirmButton.textContent = `Confirm ${code}`;
    dialog.dataset.candidate = code;
    try {
      const found = await individual(code);
      if (mine !== loading) return;
      const all = (found.sightings || []).flatMap((sighting) => sighting.media_ids || []);
      const first = found.representative_media_id;
      photos = first ? [first, ...all.filter((id) => id !== first)] : all;
      showStrip(code);
      if (!photos.length) replace(other.caption, `${code} has no photo yet.`);
      await showPhoto(0);
      if (explaining) await explain();
    } catch (error) {
      replace(status, errorBox(error));
    }
  }

  function showStrip(code) {
    replace(strip, photos.map((id, n) => h("li", {}, h("button", { type: "button", class: "thumb",
      "aria-label": `Photo ${n + 1} of ${code}`, onclick: () => showPhoto(n) }, thumb(id)))));
  }

  // The embedder's heatmaps over both photos, the candidate's pane on the photo that was explained
  // (the one that gave the score). Computed by the server the first time (seconds), kept after.
  async function explain() {
    whyButton.setAttribute("aria-pressed", String(explaining));
    explained = null;
    delete dialog.dataset.explained;
    for (const p of [query, other]) p.overlay.hidden = true;
    if (!explaining || !candidates.length) {
      replace(whyStatus);
      return;
    }
    const code = codeOf(index);
    const mine = loading;
    replace(whyStatus, busy("Working out why this match (a few seconds the first time)…"));
    try {
      if (!explanations.has(code)) {
        explanations.set(code, api.get(`/v1/identifications/${encodeURIComponent(item.id)}/explanations/`
          + encodeURIComponent(code)).catch((error) => {
          explanations.delete(code);
          throw error;
        }));
      }
      const found = await explanations.get(code);
      if (mine !== loading || !explaining) return;
      let at = photos.indexOf(found.candidate.media_id);
      if (at < 0) {  // a photo the individual's page does not list (e.g. since moved): shown anyway
        photos = [found.candidate.media_id, ...photos];
        showStrip(code);
        at = 0;
      }
      explained = found;
      await Promise.all([loadImage(query.overlay, found.query.overlay_url),
        loadImage(other.overlay, found.candidate.overlay_url), showPhoto(at)]);
      if (mine !== loading || !explaining) return;
      query.overlay.hidden = false;
      other.overlay.hidden = false;
      dialog.dataset.explained = code;
      replace(whyStatus, "The model's view of both photos, tinted red where hiding a part lowers the similarity "
        + `most (cosine ${found.similarity.toFixed(3)}, ${found.model_version}); w again shows the photos.`);
    } catch (error) {
      replace(whyStatus, errorBox(error));
    }
  }

  function thumb(mediaId) {
    const img = h("img", { alt: "", decoding: "async" });
    mediaUrl(mediaId).then((url) => { img.src = url; }).catch(() => {});
    return img;
  }

  function confirmShown() {
    if (candidates.length && deciding) finish(() => decide(codeOf(index)));
  }

  function finish(action) {
    if (!action) return;  // nothing is decided here (a photo being identified)
    dialog.close();
    action();
  }

  dialog.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea, select") || event.ctrlKey || event.metaKey || event.altKey) return;
    const actions = {
      ArrowRight: () => show(index + 1), j: () => show(index + 1), ArrowLeft: () => show(index - 1),
      k: () => show(index - 1), p: () => showPhoto(photoIndex + 1), c: confirmShown,
      n: () => finish(declareNew), r: () => finish(reject), f: () => flipButton.click(), h: () => contrastButton.click(),
      a: toAnimal, w: () => whyButton && whyButton.click(), "+": () => zoomBy(ZOOM_STEP), "=": () => zoomBy(ZOOM_STEP), "-": () => zoomBy(1 / ZOOM_STEP), 0: reset,
      1: actualPixels,
    };
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  });
  const onResize = () => apply();
  window.addEventListener("resize", onResize);

  document.body.append(dialog);
  dialog.showModal();
  dialog.focus();
  replace(query.caption, "Photo under review");
  (item.photo_url ? Promise.resolve(item.photo_url) : mediaUrl(item.media_id))
    .then((url) => loadInto(query, url))
    .then(() => {
      const box = boxCorners(item.box);
      if (box) boxOver(query, box);
      replace(query.caption, `Photo under review · ${query.img.naturalWidth} × ${query.img.naturalHeight} px`);
      apply();
    })
    .catch((error) => replace(status, errorBox(error)));
  if (candidates.length) show(index);
  else replace(other.caption, "No candidate: nothing similar is catalogued.");

  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      window.removeEventListener("resize", onResize);
      dialog.remove();
      resolve();
    }, { once: true });
  });
}
