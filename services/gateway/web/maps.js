// Maps of sightings that work offline: Leaflet (vendor/map.js, built from web/ by `make web`) over
// Natural Earth's land and coastlines (public domain, vendor/natural-earth/), no tile server; the
// sightings as markers clustered at low zoom.

import { h, replace } from "./dom.js";

const VENDOR = "./vendor/map.js";
const NATURAL_EARTH = "vendor/natural-earth";
// Natural Earth's scale by zoom: the whole world at 1:110m, closer at 1:50m. (The 1:10m land, 3 MB
// with a million points, is too heavy for an SVG map: Leaflet re-projects every point on each
// zoom, which took over a minute in a headless Chromium on two cores.)
const SCALES = [[4, "50m"], [-Infinity, "110m"]];
const BORDERS_ZOOM = 4;
const FIT_MAX_ZOOM = 7;   // a single sighting is shown with a coast around it
const CLUSTER_RADIUS_PX = 40;

let toolkit = null;
const layers = new Map();

function loadToolkit() {
  toolkit = toolkit || import(VENDOR).catch((error) => {
    toolkit = null;
    throw new Error(`The map library is missing (run \`make web\` on the server): ${error.message}`);
  });
  return toolkit;
}

// Natural Earth as GeoJSON, fetched once per page (the browser's cache keeps the files).
function naturalEarth(name, pick) {
  if (!layers.has(name)) {
    layers.set(name, Promise.all([loadToolkit(), fetch(`${NATURAL_EARTH}/${name}.json`)])
      .then(async ([kit, response]) => {
        if (!response.ok) throw new Error(`Natural Earth ${name} is missing (${response.status}).`);
        return pick(kit, await response.json());
      })
      .catch((error) => {
        layers.delete(name);
        throw error;
      }));
  }
  return layers.get(name);
}

const land = (scale) => naturalEarth(`land-${scale}`, (kit, topo) => kit.feature(topo, topo.objects.land));
const borders = () => naturalEarth("countries-50m", (kit, topo) =>
  kit.mesh(topo, topo.objects.countries, (a, b) => a !== b));

// Runs ``start`` once the element is in the page and laid out (Leaflet measures its container).
function whenShown(element, start) {
  const check = () => {
    if (!element.isConnected) {
      requestAnimationFrame(check);
      return;
    }
    if (element.offsetWidth > 0) start();
    else requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
}

function positioned(points) {
  return points.filter((p) => Number.isFinite(p.latitude) && Number.isFinite(p.longitude));
}

// ``points``: [{latitude, longitude, label, href?}]. The element carries ``leafletMap`` once drawn
// and data-markers (how many sightings are on it).
export function sightingsMap(points, title) {
  const shown = positioned(points);
  const host = h("div", { class: "leaflet-host" });
  const status = h("p", { class: "hint map-caption" }, shown.length === points.length
    ? `${shown.length} sighting(s) on the map.`
    : `${shown.length} of ${points.length} sighting(s) on the map; the others have no position.`);
  const frame = h("figure", { class: "map-frame", role: "region", "aria-label": title,
    dataset: { markers: String(shown.length) } }, host, status);
  whenShown(host, () => draw(frame, host, shown, status).catch((error) => {
    frame.classList.add("map-failed");
    replace(status, h("span", { class: "error", role: "alert" }, error.message));
  }));
  return frame;
}

async function draw(frame, host, points, status) {
  const { L } = await loadToolkit();
  const map = L.map(host, { worldCopyJump: true, minZoom: 1, maxZoom: 14, zoomSnap: 0.5 });
  map.attributionControl.setPrefix(false);
  map.attributionControl.addAttribution("Natural Earth · Leaflet");
  frame.leafletMap = map;
  const coast = { className: "land", interactive: false, weight: 1 };
  const drawn = { scale: null, land: null, borders: null, bordersLayer: null, pending: Promise.resolve() };
  // Runs on zoomend, before Leaflet's renderer redraws on moveend: a layer too fine for the new zoom
  // is removed at once, so the renderer never draws the whole world at 1:50m.
  function coastFor(zoom) {
    const scale = SCALES.find(([from]) => zoom >= from)[1];
    if (scale !== drawn.scale) {
      drawn.scale = scale;
      if (drawn.land) drawn.land.remove();
      drawn.land = null;
      drawn.pending = land(scale).then((geo) => {
        if (drawn.scale !== scale) return;  // zoomed elsewhere meanwhile
        if (drawn.land) drawn.land.remove();
        drawn.land = L.geoJSON(geo, coast).addTo(map);
        drawn.land.bringToBack();
        frame.dataset.coast = scale;
      });
    }
    // Borders only closer in: the whole world's at 1:50m would cost as much as its coasts.
    if (zoom >= BORDERS_ZOOM && !drawn.borders) {
      drawn.borders = borders().then((lines) => {
        drawn.bordersLayer = L.geoJSON(lines, { className: "border", interactive: false, weight: 0.6 });
        if (map.getZoom() >= BORDERS_ZOOM) drawn.bordersLayer.addTo(map);
      }).catch(() => null);
    }
    if (drawn.bordersLayer) {
      if (zoom >= BORDERS_ZOOM) drawn.bordersLayer.addTo(map);
      else drawn.bordersLayer.remove();
    }
    return drawn.pending;
  }
  map.on("zoomend", () => coastFor(map.getZoom()).catch(() => {}));

  // Without animation: a phone in the field is spared the work, and the markers are where the
  // sightings are as soon as the zoom has changed.
  const clusters = L.markerClusterGroup({ showCoverageOnHover: false, maxClusterRadius: CLUSTER_RADIUS_PX,
    spiderfyOnMaxZoom: true, animate: false });
  for (const p of points) {
    const marker = L.marker([p.latitude, p.longitude], {
      title: p.label, alt: p.label, keyboard: true,
      icon: L.divIcon({ className: "sighting-marker", iconSize: [16, 16] }),
    });
    const popup = h("div", {}, h("strong", {}, p.label),
      h("div", {}, `${p.latitude.toFixed(4)}, ${p.longitude.toFixed(4)}`),
      p.href ? h("a", { href: p.href }, p.linkText || "Open") : null);
    marker.bindPopup(popup);
    clusters.addLayer(marker);
  }
  map.addLayer(clusters);
  frame.clusters = clusters;
  if (points.length) {
    map.fitBounds(L.latLngBounds(points.map((p) => [p.latitude, p.longitude])).pad(0.3),
      { maxZoom: FIT_MAX_ZOOM, animate: false });
  } else {
    map.setView([20, 0], 1, { animate: false });
    replace(status, "No sighting with a position.");
  }
  await coastFor(map.getZoom());
  frame.dataset.ready = "true";
}
