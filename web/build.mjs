// Builds the web page's third-party code and data into services/gateway/web/vendor/ (make web):
//   map.js      Leaflet, Leaflet.markercluster and topojson-client as one ES module (esbuild)
//   map.css     their style sheets, with Leaflet's images beside them in assets/
//   natural-earth/  Natural Earth land (1:110m, 1:50m, 1:10m) and country borders (1:50m) as
//                   TopoJSON, from the world-atlas package (Natural Earth is public domain)
//   licenses/       each bundled package's licence
//   versions.json   what was bundled, package by package, from package-lock.json (written last:
//                   the Makefile's target)
// Everything comes from node_modules as `npm ci` installed it from package-lock.json; nothing is
// fetched at run time, so the page's maps work offline.

import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");
const out = join(here, "..", "services", "gateway", "web", "vendor");
const NATURAL_EARTH = ["land-110m.json", "land-50m.json", "land-10m.json", "countries-50m.json"];
const LICENCES = { leaflet: "LICENSE", "leaflet.markercluster": "MIT-LICENCE.txt", "topojson-client": "LICENSE",
  "world-atlas": "LICENSE" };
const BUNDLED = Object.keys(LICENCES);

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "natural-earth"), { recursive: true });

await build({
  entryPoints: { map: join(here, "src", "map.js") },
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  legalComments: "linked",  // map.js.LEGAL.txt: the bundled packages' licence headers
  outdir: out,
  logLevel: "warning",
});
await build({
  entryPoints: { map: join(here, "src", "map.css") },
  bundle: true,
  minify: true,
  loader: { ".png": "file" },
  assetNames: "assets/[name]-[hash]",
  outdir: out,
  logLevel: "warning",
});

for (const name of NATURAL_EARTH) {
  copyFileSync(join(modules, "world-atlas", name), join(out, "natural-earth", name));
}
mkdirSync(join(out, "licenses"));
for (const [name, file] of Object.entries(LICENCES)) {
  copyFileSync(join(modules, name, file), join(out, "licenses", `${name}.txt`));
}

const lock = JSON.parse(readFileSync(join(here, "package-lock.json"), "utf8"));
const versions = Object.fromEntries(BUNDLED.map((name) => {
  const entry = lock.packages[`node_modules/${name}`];
  const installed = JSON.parse(readFileSync(join(modules, name, "package.json"), "utf8"));
  if (!entry || entry.version !== installed.version) {
    throw new Error(`${name}: node_modules has ${installed.version}, package-lock.json ${entry && entry.version}; run npm ci`);
  }
  return [name, { version: entry.version, license: installed.license }];
}));
writeFileSync(join(out, "versions.json"), `${JSON.stringify(versions, null, 2)}\n`);
console.log(`web vendor bundle in ${out}: ${BUNDLED.map((n) => `${n} ${versions[n].version}`).join(", ")}`);
