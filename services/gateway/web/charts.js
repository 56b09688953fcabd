// Bar charts drawn in SVG (the maps are maps.js).

import { h, s } from "./dom.js";

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
