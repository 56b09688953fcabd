// Leaflet.markercluster is a UMD script that extends the global `L`: it must exist before the
// plugin runs, so it is set in this module, which map.js imports first.
import L from "leaflet";

globalThis.L = L;
export default L;
