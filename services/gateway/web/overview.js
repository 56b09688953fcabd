// Overview: figures and charts of the catalogue (from GET /v1/stats where the server has it),
// and the exports.

import { api, ApiError } from "./api.js";
import { barChart } from "./charts.js";
import { h, replace, errorBox, notice, speciesName } from "./dom.js";

const EXPORTS = [
  ["encounters.csv", "Encounters (CSV)"],
  ["dataset.zip", "Photos, a folder per individual (ZIP)"],
  ["dwca.zip", "Darwin Core Archive for GBIF/OBIS (ZIP)"],
];

async function download(name, status) {
  replace(status, h("p", { class: "busy", role: "status" }, `Preparing ${name}…`));
  try {
    const response = await api.download(`/v1/exports/${name}`);
    const url = URL.createObjectURL(await response.blob());
    const link = h("a", { href: url, download: name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    replace(status);
  } catch (error) {
    replace(status, errorBox(error));
  }
}

const MONTHS_SHOWN = 18;

// The months, the earlier ones summed into one bar and the undated in their own, so that the bars
// add up to the encounters counted above them.
export function monthRows(stats) {
  const months = stats.encounters_by_month || [];
  const shown = months.slice(-MONTHS_SHOWN).map((m) => ({ label: m.month, value: m.count }));
  const earlier = months.slice(0, -MONTHS_SHOWN).reduce((n, m) => n + m.count, 0);
  return [
    ...(earlier ? [{ label: `Before ${shown[0].label}`, value: earlier }] : []),
    ...shown,
    ...(stats.encounters_undated ? [{ label: "Undated", value: stats.encounters_undated }] : []),
  ];
}

const sum = (rows) => rows.reduce((n, r) => n + r.value, 0);

function figure(term, value, key) {
  return h("div", { dataset: { figure: key } }, h("dt", {}, term), h("dd", {}, String(value ?? "–")));
}

function charts(stats) {
  const bySpecies = Object.entries(stats.individuals_by_species || {})
    .sort((a, b) => b[1] - a[1]).map(([k, v]) => ({ label: speciesName(k), value: v }));
  const byMonth = monthRows(stats);
  const byDecision = Object.entries(stats.identifications_by_decision || {})
    .map(([k, v]) => ({ label: speciesName(k), value: v }));
  return [
    h("dl", { class: "figures" },
      figure("Individuals", sum(bySpecies), "individuals"),
      figure("Encounters", stats.encounters, "encounters"),
      figure("Undated encounters", stats.encounters_undated ?? 0, "undated"),
      figure("Photos", stats.media, "media"),
      figure("Waiting for review", (stats.identifications_by_decision || {}).pending ?? 0, "pending")),
    h("div", { class: "two-up" },
      barChart(bySpecies, "Individuals by species"),
      barChart(byDecision, "Identifications by decision")),
    barChart(byMonth, "Encounters by month (and undated)"),
    h("p", { class: "hint" }, `The bars add up to ${sum(byMonth)} of ${stats.encounters} encounters. `,
      h("a", { href: "#/sightings" }, "All sightings on the map"), "."),
  ];
}

export async function overviewView() {
  const figures = h("div");
  try {
    replace(figures, charts(await api.get("/v1/stats")));
  } catch (error) {
    replace(figures, error instanceof ApiError && error.status === 404
      ? notice("Charts appear here once this server offers statistics (GET /v1/stats).")
      : errorBox(error));
  }
  const status = h("div", { "aria-live": "polite" });
  return h("section", {},
    h("h1", {}, "Overview"),
    figures,
    h("h2", {}, "Exports"),
    h("ul", { class: "exports" }, EXPORTS.map(([name, label]) => h("li", {},
      h("button", { type: "button", onclick: () => download(name, status) }, label)))),
    status);
}
