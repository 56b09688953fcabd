// Small helpers to build the page from data without innerHTML (no markup injection from data).

import { mediaUrl } from "./api.js";

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function replace(node, ...children) {
  node.replaceChildren();
  return fill(node, {}, children);
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error.message || String(error));
}

export function notice(text) {
  return h("p", { class: "notice", role: "status" }, text);
}

export function busy(text) {
  return h("p", { class: "busy", role: "status" }, text);
}

// A catalogued photo: the <img> gets its presigned link when it is fetched.
export function mediaImage(mediaId, alt, { box, className } = {}) {
  const img = h("img", { alt, class: "photo", decoding: "async" });
  const frame = h("figure", { class: ["photo-frame", className].filter(Boolean).join(" ") }, img);
  if (!mediaId) {
    frame.classList.add("missing");
    frame.append(h("figcaption", {}, "No photo"));
    return frame;
  }
  mediaUrl(mediaId)
    .then((url) => {
      img.src = url;
    })
    .catch(() => {
      frame.classList.add("missing");
      frame.append(h("figcaption", {}, "Photo unavailable"));
    });
  if (box) img.addEventListener("load", () => frame.append(boxOverlay(img, box)), { once: true });
  return frame;
}

// The detected animal's box drawn over a photo, in the photo's own pixel coordinates.
export function boxOverlay(img, [x0, y0, x1, y1]) {
  const width = img.naturalWidth || 1;
  const height = img.naturalHeight || 1;
  return s("svg", { class: "box-overlay", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none",
    "aria-hidden": "true" },
  s("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0, "vector-effect": "non-scaling-stroke" }));
}

export function percent(value) {
  return value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)} %`;
}

export function scoreBar(value, label) {
  const bar = h("span", { class: "bar-fill" });
  bar.style.width = `${Math.max(0, Math.min(1, value || 0)) * 100}%`;
  return h("span", { class: "bar", role: "img", "aria-label": `${label}: ${percent(value)}` }, bar);
}

export function speciesName(key) {
  return (key || "unknown").replaceAll("_", " ");
}

export function formatDate(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
}

// A box as [x0, y0, x1, y1], from either the identify answer's list or a catalogue annotation's object.
export function boxCorners(box) {
  if (!box) return null;
  if (Array.isArray(box)) return box;
  return [box.x, box.y, box.x + box.width, box.y + box.height];
}

// The animal cut out of a photo: an SVG whose viewBox is the box, so no canvas or copy is needed.
// The photo is laid out at its own pixel size once known (boxes are in the photo's pixels).
export function cropView(url, box, alt) {
  const [x0, y0, x1, y1] = box;
  const image = s("image", { href: url, x: 0, y: 0, width: 0, height: 0, preserveAspectRatio: "none" });
  const probe = new Image();
  probe.addEventListener("load", () => {
    image.setAttribute("width", probe.naturalWidth);
    image.setAttribute("height", probe.naturalHeight);
  }, { once: true });
  probe.src = url;
  return s("svg", { class: "crop", viewBox: `${x0} ${y0} ${x1 - x0} ${y1 - y0}`, role: "img", "aria-label": alt },
    image);
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

// A sighting's date as it was recorded there (the API gives it with the sighting's own offset, so
// the browser's time zone must not shift it to another day).
export function sightingDate(iso, { time = false } = {}) {
  const match = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}))?/.exec(iso || "");
  if (!match) return null;
  const [, year, month, day, hour, minute] = match;
  const date = `${Number(day)} ${MONTHS[Number(month) - 1]} ${year}`;
  return time && hour ? `${date}, ${hour}:${minute}` : date;
}

// How a sighting is named: its local date and its place ("Undated" when it has no date).
export function sightingTitle(occurredAt, place) {
  return [sightingDate(occurredAt) || "Undated", place].filter(Boolean).join(" · ");
}

// Whole days between two ISO dates (their local calendar days).
export function daysBetween(earlier, later) {
  const day = (iso) => Date.UTC(...iso.slice(0, 10).split("-").map((v, i) => Number(v) - (i === 1 ? 1 : 0)));
  return Math.round((day(later) - day(earlier)) / 86_400_000);
}

// A catalogued photo that opens at full resolution in a new tab (its presigned link).
export function photoLink(mediaId, alt) {
  const link = h("a", { class: "photo-link", target: "_blank", rel: "noopener" }, mediaImage(mediaId, alt));
  mediaUrl(mediaId).then((url) => {
    link.setAttribute("href", url);
    link.setAttribute("aria-label", `${alt}, full size`);  // a link only once it leads somewhere
  }).catch(() => {});
  return link;
}
