// Bulk upload over the ingest jobs API: a folder of photos, or a CSV manifest with its photos,
// becomes a job (POST /v1/ingest/jobs with the manifest; the page writes one for a bare folder), each
// photo is uploaded on its own (PUT .../files/{image}: a retried upload replaces, never duplicates),
// and the job's progress, rate, ETA and per-photo failures are shown while the workers run it. A job
// whose upload was interrupted is resumed: the photos are chosen again and the missing ones sent.

import { api, idempotencyKey } from "./api.js";
import { h, replace, errorBox, busy, notice, formatDate } from "./dom.js";

const UPLOADS_AT_ONCE = 3;
const POLL_MS = 1000;
const FAILURES_SHOWN = 200;
const UPLOADED = "finprint.bulk-uploaded.";  // + job id: the photos this browser has sent already
const FINISHED = new Set(["completed", "failed", "cancelled"]);
const SHARED_COLUMNS = ["observed_at", "location", "latitude", "longitude", "observer", "species"];
const IMAGE = /\.(jpe?g|png|webp)$/i;

function remembered(jobId) {
  try {
    return new Set(JSON.parse(localStorage.getItem(UPLOADED + jobId)) || []);
  } catch {
    return new Set();
  }
}

function remember(jobId, sent) {
  localStorage.setItem(UPLOADED + jobId, JSON.stringify([...sent]));
}

function csvField(value) {
  const text = String(value ?? "");
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

// A manifest for photos without one: a row per photo, the form's shared fields on every row.
export function folderManifest(keys, shared) {
  const columns = ["image", ...SHARED_COLUMNS.filter((c) => shared[c])];
  const rows = keys.map((key) => columns.map((c) => csvField(c === "image" ? key : shared[c])).join(","));
  return `${columns.join(",")}\n${rows.join("\n")}\n`;
}

// The image column of a manifest (its first line names the columns). Quoted fields are allowed.
function manifestImages(text) {
  const rows = [];
  let row = [""];
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const char = text[i];
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') { row[row.length - 1] += '"'; i += 1; }
      else if (char === '"') quoted = false;
      else row[row.length - 1] += char;
    } else if (char === '"') quoted = true;
    else if (char === ",") row.push("");
    else if (char === "\n" || char === "\r") {
      if (char === "\r" && text[i + 1] === "\n") i += 1;
      rows.push(row);
      row = [""];
    } else row[row.length - 1] += char;
  }
  rows.push(row);
  const [header, ...body] = rows.filter((r) => r.some((v) => v.trim()));
  const column = (header || []).map((v) => v.replace(/^\uFEFF/, "").trim()).indexOf("image");
  return column < 0 ? [] : body.map((r) => (r[column] || "").trim()).filter(Boolean);
}

// A chosen photo and its manifest key: its path inside the chosen folder, else its name.
function entry(file, key) {
  const path = file.webkitRelativePath || "";
  return { file, key: key || (path.includes("/") ? path.split("/").slice(1).join("/") : file.name),
    folder: path.includes("/") ? path.split("/")[0] : null };
}

// Which chosen file each key names: by path in the folder, else by file name alone.
function filesFor(keys, chosen) {
  const byKey = new Map(chosen.map((c) => [c.key, c.file]));
  const byName = new Map(chosen.map((c) => [c.file.name, c.file]));
  return new Map(keys.map((key) => [key, byKey.get(key) || byName.get(key.split("/").pop())]).filter(([, f]) => f));
}

function readEntries(reader) {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

// The files under a dropped folder (FileSystemEntry), keyed by their path inside it.
async function folderFiles(directory, prefix = "") {
  const reader = directory.createReader();
  const found = [];
  for (let batch = await readEntries(reader); batch.length; batch = await readEntries(reader)) {
    for (const item of batch) {
      if (item.isDirectory) found.push(...await folderFiles(item, `${prefix}${item.name}/`));
      else found.push(entry(await new Promise((resolve, reject) => item.file(resolve, reject)), prefix + item.name));
    }
  }
  return found;
}

// What was dropped: folders (walked), photos, and a CSV manifest.
async function droppedFiles(dataTransfer) {
  const found = [];
  const items = [...(dataTransfer.items || [])].filter((item) => item.kind === "file");
  for (const item of items) {
    const fsEntry = item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
    if (fsEntry && fsEntry.isDirectory) {
      found.push(...(await folderFiles(fsEntry)).map((c) => ({ ...c, folder: fsEntry.name })));
    } else {
      const file = item.getAsFile();
      if (file) found.push(entry(file));
    }
  }
  return found;
}

async function uploadAll(jobId, files, onProgress) {
  const sent = remembered(jobId);
  const queue = [...files].filter(([key]) => !sent.has(key));
  const failures = [];
  let uploaded = files.size - queue.length;
  onProgress(uploaded, files.size);
  async function worker() {
    while (queue.length) {
      const [key, file] = queue.shift();
      try {
        const path = key.split("/").map(encodeURIComponent).join("/");
        await api.put(`/v1/ingest/jobs/${encodeURIComponent(jobId)}/files/${path}`, file,
          { "Content-Type": file.type || "application/octet-stream" });
        sent.add(key);
        remember(jobId, sent);
        uploaded += 1;
        onProgress(uploaded, files.size);
      } catch (error) {
        failures.push(`${key}: ${error.message}`);
      }
    }
  }
  await Promise.all(Array.from({ length: UPLOADS_AT_ONCE }, worker));
  return failures;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${s % 60} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

function statusText(job) {
  if (job.status === "pending") return "waiting for its photos";
  return job.status;
}

// A job's progress, refreshed every second until it is finished; then its failures and results.
function jobPanel(jobId, onFinished) {
  const heading = h("h2", { id: `job-${jobId}` }, "Job");
  const bar = h("progress", { max: 1, value: 0, "aria-labelledby": `job-${jobId}` });
  const counts = h("dl", { class: "figures job-counts" });
  const rate = h("p", { class: "hint job-rate" });
  const failures = h("div", { class: "job-failures" });
  const actions = h("div", { class: "actions" });
  const status = h("div", { "aria-live": "polite" });
  const panel = h("section", { class: "card job", "aria-labelledby": `job-${jobId}`, dataset: { jobId } },
    heading, bar, counts, rate, actions, failures, status);
  let stopped = false;
  let attached = false;  // polling ends once the panel has left the page

  async function showFailures(total) {
    if (!total) {
      replace(failures);
      return;
    }
    const page = await api.get(`/v1/ingest/jobs/${encodeURIComponent(jobId)}/items`,
      { status: "failed", limit: FAILURES_SHOWN });
    replace(failures, h("h3", {}, `Failed photos (${page.total})`),
      h("div", { class: "table-scroll", tabindex: 0, role: "region", "aria-label": "Failed photos" }, h("table", { class: "failures" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Photo"), h("th", { scope: "col" }, "Reason"))),
        h("tbody", {}, page.items.map((item) => h("tr", {}, h("td", {}, item.image), h("td", {}, item.reason || "–")))))));
  }

  async function results() {
    try {
      const response = await api.download(`/v1/ingest/jobs/${encodeURIComponent(jobId)}/results.csv`);
      const url = URL.createObjectURL(await response.blob());
      const link = h("a", { href: url, download: `ingest-${jobId}.csv` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (error) {
      replace(status, errorBox(error));
    }
  }

  async function refresh() {
    attached = attached || panel.isConnected;
    if (stopped || (attached && !panel.isConnected)) return;
    try {
      const job = await api.get(`/v1/ingest/jobs/${encodeURIComponent(jobId)}`);
      const finished = job.done + job.failed + job.duplicates;
      replace(heading, `${job.name}: ${statusText(job)}`);
      panel.dataset.status = job.status;
      bar.max = Math.max(job.total, 1);
      bar.value = finished;
      replace(counts, [["Photos", job.total, "total"], ["Catalogued", job.done, "done"],
        ["Already catalogued", job.duplicates, "duplicates"], ["Failed", job.failed, "failed"],
        ["Waiting", job.pending + job.running, "waiting"]].map(([term, value, key]) =>
        h("div", { dataset: { count: key } }, h("dt", {}, term), h("dd", {}, String(value)))));
      replace(rate, FINISHED.has(job.status)
        ? `Finished ${formatDate(job.finished_at)}${job.images_per_second ? `, ${job.images_per_second} photos/s` : ""}.`
        : job.status === "pending" ? "Upload its photos to start it."
          : `${finished} of ${job.total} done · ${job.images_per_second ?? "–"} photos/s · about ${duration(job.eta_s)} left`);
      if (FINISHED.has(job.status)) {
        replace(actions, h("button", { type: "button", onclick: results }, "Download results (CSV)"));
        await showFailures(job.failed);
        onFinished();
        return;
      }
      await showFailures(job.failed);
      setTimeout(refresh, POLL_MS);
    } catch (error) {
      replace(status, errorBox(error));
    }
  }
  panel.stop = () => { stopped = true; };
  refresh();
  return panel;
}

function photoInputs(onChange) {
  const folder = h("input", { id: "bulk-folder", type: "file", webkitdirectory: true, multiple: true,
    "aria-describedby": "bulk-folder-hint" });
  const photos = h("input", { id: "bulk-photos", type: "file", multiple: true, accept: "image/jpeg,image/png,image/webp" });
  const manifest = h("input", { id: "bulk-manifest", type: "file", accept: ".csv,text/csv",
    "aria-describedby": "bulk-manifest-hint" });
  let dropped = [];
  for (const input of [folder, photos, manifest]) input.addEventListener("change", onChange);
  const chosen = () => [...[...folder.files, ...photos.files].map((f) => entry(f)), ...dropped]
    .filter((c) => IMAGE.test(c.file.name));
  const manifestFile = () => manifest.files[0] || (dropped.find((c) => /\.csv$/i.test(c.file.name)) || {}).file;
  // Dropping is the quick way; the inputs are the keyboard's way to the same.
  const zone = h("div", { class: "dropzone", dataset: { drop: "bulk" } },
    h("strong", {}, "Drop a folder, photos or a CSV manifest here"), h("span", {}, "or choose them below"));
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    dropped = [...dropped, ...await droppedFiles(event.dataTransfer)];
    onChange();
  });
  const clear = () => { dropped = []; };
  return { folder, photos, manifest, chosen, manifestFile, clear, zone, fields: [
    h("div", { class: "field" }, h("label", { for: "bulk-folder" }, "A folder of photos"), folder,
      h("p", { class: "hint", id: "bulk-folder-hint" }, "Every JPEG, PNG or WebP in it and its subfolders.")),
    h("div", { class: "field" }, h("label", { for: "bulk-photos" }, "Or photos"), photos),
    h("div", { class: "field" }, h("label", { for: "bulk-manifest" }, "CSV manifest (optional)"), manifest,
      h("p", { class: "hint", id: "bulk-manifest-hint" }, "Columns: image (the photo's path or name), observed_at, "
        + "latitude, longitude, location, observer, species, individual_id.")),
  ] };
}

export async function bulkView() {
  const jobs = h("div", { class: "jobs" });
  const current = h("div", { class: "current-job" });
  const status = h("div", { "aria-live": "polite" });
  const summary = h("p", { class: "hint", "aria-live": "polite" });
  let resuming = null;  // a job waiting for its photos, chosen from the list
  let key = idempotencyKey();

  const inputs = photoInputs(() => {
    key = idempotencyKey();  // other files are another job
    const files = inputs.chosen();
    const manifest = inputs.manifestFile();
    replace(summary, files.length || manifest ? `${files.length} photo(s) chosen${manifest
      ? ` and the manifest ${manifest.name}` : ""}.` : "");
  });
  const field = (id, label, attrs) => h("div", { class: "field" }, h("label", { for: id }, label),
    h("input", { id, name: id.replace("bulk-", ""), ...attrs }));
  const form = h("form", { class: "card bulk", "aria-labelledby": "bulk-title", onsubmit: (event) => {
    event.preventDefault();
    submit(new FormData(form)).catch((error) => replace(status, errorBox(error)));
  } },
  h("h2", { id: "bulk-title" }, "New job"),
  inputs.zone,
  h("div", { class: "grid-fields" }, inputs.fields),
  field("bulk-name", "Job name (optional)", { maxlength: 200, placeholder: "e.g. Survey 2024-06" }),
  h("fieldset", {}, h("legend", {}, "For every photo of a folder without a manifest (optional)"),
    h("div", { class: "grid-fields" },
      field("bulk-observed_at", "Date", { type: "date" }),
      field("bulk-location", "Location", { maxlength: 200 }),
      field("bulk-observer", "Observer", { maxlength: 200 }))),
  summary,
  h("button", { type: "submit", class: "primary" }, "Upload and start"),
  status);

  function show(jobId) {
    const old = current.querySelector(".job");
    if (old) old.stop();
    replace(current, jobPanel(jobId, () => listJobs()));
    current.scrollIntoView({ block: "nearest" });
  }

  async function submit(data) {
    const files = inputs.chosen();
    const manifestFile = inputs.manifestFile();
    if (!files.length) throw new Error("Choose a folder or photos first.");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      let jobId = resuming && resuming.id;
      let keys;
      if (resuming) {
        keys = await pendingKeys(jobId);
      } else {
        let text;
        if (manifestFile) {
          text = await manifestFile.text();
        } else {
          const shared = Object.fromEntries(SHARED_COLUMNS.map((c) => [c, String(data.get(c) || "").trim()]));
          if (shared.observed_at) shared.observed_at = `${shared.observed_at}T12:00:00Z`;
          text = folderManifest(files.map((c) => c.key), shared);
        }
        keys = manifestImages(text);
        const body = new FormData();
        body.append("manifest", new File([text], manifestFile ? manifestFile.name : "folder.csv", { type: "text/csv" }));
        const name = String(data.get("name") || "").trim()
          || files[0].folder
          || (manifestFile ? manifestFile.name.replace(/\.csv$/i, "") : `Upload ${new Date().toISOString().slice(0, 16)}`);
        body.append("name", name);
        replace(status, busy("Creating the job…"));
        jobId = (await api.upload("/v1/ingest/jobs", body, { "Idempotency-Key": key })).id;
      }
      const matched = filesFor(keys, files);
      const missing = keys.filter((k) => !matched.has(k));
      const progress = h("progress", { max: Math.max(matched.size, 1), value: 0, "aria-label": "Photos uploaded" });
      const line = h("span", {});
      replace(status, h("p", { class: "busy", role: "status" }, line), progress);
      const failures = await uploadAll(jobId, matched, (done, total) => {
        progress.value = done;
        replace(line, `Uploading photos: ${done} of ${total}…`);
      });
      if (failures.length) {
        replace(status, errorBox(new Error(`${failures.length} photo(s) were not uploaded; choose them again and `
          + `press the button to resume. ${failures.slice(0, 3).join("; ")}`)));
        resuming = { id: jobId };
        await listJobs();
        return;
      }
      await api.post(`/v1/ingest/jobs/${encodeURIComponent(jobId)}:start`, {});
      localStorage.removeItem(UPLOADED + jobId);
      replace(status, missing.length ? notice(`${missing.length} photo(s) of the manifest were not chosen; they fail `
        + `with their reason: ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? "…" : ""}`) : []);
      resuming = null;
      key = idempotencyKey();
      form.reset();
      inputs.clear();
      replace(summary);
      show(jobId);
      await listJobs();
    } finally {
      button.disabled = false;
    }
  }

  async function pendingKeys(jobId) {
    const keys = [];
    let cursor;
    do {
      const page = await api.get(`/v1/ingest/jobs/${encodeURIComponent(jobId)}/items`,
        { status: "pending", limit: 500, cursor });
      keys.push(...page.items.map((item) => item.image));
      cursor = page.next_cursor;
    } while (cursor);
    return keys;
  }

  function resume(job) {
    resuming = job;
    replace(status, notice(`Resuming “${job.name}”: choose its photos again (the folder or the photos), then `
      + "press “Upload and start”; the photos already sent are not sent again."));
    inputs.folder.focus();
  }

  async function listJobs() {
    try {
      const page = await api.get("/v1/ingest/jobs", { limit: 20 });
      replace(jobs, page.items.length ? h("div", { class: "table-scroll", tabindex: 0, role: "region", "aria-label": "Recent jobs" }, h("table", { class: "job-list" },
        h("caption", { class: "visually-hidden" }, "Recent jobs, newest first"),
        h("thead", {}, h("tr", {}, ["Job", "Status", "Photos", "Done", "Failed", "Created", ""].map((t) =>
          h("th", { scope: "col" }, t)))),
        h("tbody", {}, page.items.map((job) => h("tr", { dataset: { jobId: job.id } },
          h("td", {}, job.name), h("td", {}, statusText(job)), h("td", { class: "num" }, String(job.total)),
          h("td", { class: "num" }, String(job.done + job.duplicates)), h("td", { class: "num" }, String(job.failed)),
          h("td", {}, formatDate(job.created_at)),
          h("td", {}, job.status === "pending"
            ? h("button", { type: "button", onclick: () => resume(job), "aria-label": `Resume upload of ${job.name}` },
              "Resume upload")
            : h("button", { type: "button", onclick: () => show(job.id), "aria-label": `Show ${job.name}` },
              "Show"))))))) : h("p", { class: "hint" }, "No job yet."));
    } catch (error) {
      replace(jobs, errorBox(error));
    }
  }

  await listJobs();
  return h("section", {},
    h("h1", {}, "Bulk upload"),
    h("p", { class: "lead" }, "A folder or a whole survey at once: the photos with a catalogue code in the manifest "
      + "are filed under it, the others wait in the review queue. You can leave the page; the job goes on."),
    form, current, h("h2", {}, "Recent jobs"), jobs);
}
