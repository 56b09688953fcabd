// Drawings made of SVG only: a map of sightings on a plain graticule (no map tiles exist offline)
// and bar charts.

import { h, s } from "./dom.js";

const MAP_WIDTH = 640;
const MAP_HEIGHT = 360;
const MAP_MARGIN = 36;
const GRID_STEPS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 45, 90];
const MIN_GRID_GAP_PX = { lat: 40, lon: 80 };  // longitude labels are wider than latitude ones
const LABEL_ROOM_PX = { top: 14, right: 56, bottom: 20 };  // labels this close to an edge would be cut

function gridStep(pixelsPerDegree, minGap) {
  return GRID_STEPS.find((step) => step * pixelsPerDegree >= minGap) || 90;
}

function degrees(value, positive, negative) {
  const rounded = Math.abs(value) < 1e-9 ? 0 : Number(value.toFixed(2));
  return `${Math.abs(rounded)}°${rounded === 0 ? "" : rounded > 0 ? positive : negative}`;
}

// Equirectangular around the points, longitudes shrunk by cos(latitude) so shapes look right; the
// frame then fills the whole drawing.
function frame(points) {
  const lats = points.map((p) => p.latitude);
  const lons = points.map((p) => p.longitude);
  const [south, north] = [Math.min(...lats), Math.max(...lats)];
  const [west, east] = [Math.min(...lons), Math.max(...lons)];
  const pad = Math.max(0.25, (north - south) * 0.1, (east - west) * 0.1);
  const cx = (west + east) / 2;
  const cy = (north + south) / 2;
  const squash = Math.cos((cy * Math.PI) / 180) || 1;
  const scale = Math.min((MAP_WIDTH - 2 * MAP_MARGIN) / ((east - west + 2 * pad) * squash),
    (MAP_HEIGHT - 2 * MAP_MARGIN) / (north - south + 2 * pad));
  const xScale = squash * scale;
  return {
    project: (lon, lat) => [MAP_WIDTH / 2 + (lon - cx) * xScale, MAP_HEIGHT / 2 - (lat - cy) * scale],
    bounds: { west: cx - MAP_WIDTH / 2 / xScale, east: cx + MAP_WIDTH / 2 / xScale,
      south: cy - MAP_HEIGHT / 2 / scale, north: cy + MAP_HEIGHT / 2 / scale },
    latStep: gridStep(scale, MIN_GRID_GAP_PX.lat),
    lonStep: gridStep(xScale, MIN_GRID_GAP_PX.lon),
  };
}

function graticule({ project, bounds, latStep, lonStep }) {
  const lines = [];
  for (let lat = Math.ceil(bounds.south / latStep) * latStep; lat <= bounds.north; lat += latStep) {
    const [, y] = project(bounds.west, lat);
    lines.push(s("line", { class: "graticule", x1: 0, y1: y, x2: MAP_WIDTH, y2: y }));
    if (y > LABEL_ROOM_PX.top && y < MAP_HEIGHT - LABEL_ROOM_PX.bottom) {
      lines.push(s("text", { class: "grid-label", x: 4, y: y - 3 }, degrees(lat, "N", "S")));
    }
  }
  for (let lon = Math.ceil(bounds.west / lonStep) * lonStep; lon <= bounds.east; lon += lonStep) {
    const [x] = project(lon, bounds.north);
    lines.push(s("line", { class: "graticule", x1: x, y1: 0, x2: x, y2: MAP_HEIGHT }));
    if (x < MAP_WIDTH - LABEL_ROOM_PX.right) {
      lines.push(s("text", { class: "grid-label", x: x + 3, y: MAP_HEIGHT - 6 }, degrees(lon, "E", "W")));
    }
  }
  return lines;
}

export function sightingsMap(sightings, title) {
  const points = sightings.filter((p) => Number.isFinite(p.latitude) && Number.isFinite(p.longitude));
  if (!points.length) return h("p", { class: "notice" }, "No sighting has a position yet.");
  const view = frame(points);
  const dots = points.map((p) => {
    const [x, y] = view.project(p.longitude, p.latitude);
    const label = `${p.label}: ${p.latitude.toFixed(4)}, ${p.longitude.toFixed(4)}`;
    return s("circle", { class: "sighting", cx: x, cy: y, r: 6, tabindex: 0, role: "img", "aria-label": label },
      s("title", {}, label));
  });
  return s("svg", { class: "map", viewBox: `0 0 ${MAP_WIDTH} ${MAP_HEIGHT}`, role: "group", "aria-label": title },
    s("rect", { class: "sea", x: 0, y: 0, width: MAP_WIDTH, height: MAP_HEIGHT }), graticule(view), dots);
}

const BAR_HEIGHT = 22;
const LABEL_WIDTH = 210;
const CHART_WIDTH = 560;

// Horizontal bars: [{label, value}], longest first as given.
export function barChart(rows, title) {
  if (!rows.length) return h("p", { class: "notice" }, "Nothing to chart yet.");
  const most = Math.max(...rows.map((r) => r.value), 1);
  const room = CHART_WIDTH - LABEL_WIDTH - 50;
  const bars = rows.map((row, i) => {
    const y = i * (BAR_HEIGHT + 6);
    const width = Math.max(2, (row.value / most) * room);
    return s("g", { role: "listitem", "aria-label": `${row.label}: ${row.value}` },
      s("text", { class: "bar-label", x: LABEL_WIDTH - 8, y: y + 16, "text-anchor": "end" }, row.label),
      s("rect", { class: "bar-rect", x: LABEL_WIDTH, y, width, height: BAR_HEIGHT, rx: 3 }),
      s("text", { class: "bar-value", x: LABEL_WIDTH + width + 6, y: y + 16 }, String(row.value)));
  });
  const height = rows.length * (BAR_HEIGHT + 6);
  return h("figure", { class: "chart" }, h("figcaption", {}, title),
    s("svg", { viewBox: `0 0 ${CHART_WIDTH} ${height}`, role: "list", "aria-label": title }, bars));
}
