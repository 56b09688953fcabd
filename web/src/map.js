// The page's map toolkit, bundled into services/gateway/web/vendor/map.js: Leaflet with
// Leaflet.markercluster, and topojson-client to turn the Natural Earth TopoJSON into GeoJSON.
import L from "./leaflet-global.js";
import "leaflet.markercluster";
import { feature, mesh } from "topojson-client";

export { L, feature, mesh };
