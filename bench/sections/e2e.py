"""End to end (issue 9): identify through the gateway of the five separate services, and the
embedded default's memory with a 100k gallery (bench_e2e)."""

from __future__ import annotations

from bench.markdown import table, x
from bench.targets import EMBEDDED_MEMORY, IDENTIFY_LATENCY, IDENTIFY_THROUGHPUT, Target

TITLE = "End to end: identify through the gateway, and the embedded default's memory (issue 9)"
MIB = 2**20
MEMORY_TARGET_BYTES = 1.5e9
STAGES = ("decode", "detector", "embedder", "matcher", "catalog", "gateway + network")


def render(data: dict, targets: list[Target], full: bool) -> str:
    parts = []
    separate = data.get("separate")
    if separate:
        parts.append(e2e_latency(data, separate))
        parts.append(e2e_stages(separate))
        parts.append(e2e_cpu(separate))
        parts.append(e2e_throughput(separate))
        e2e_targets(separate, targets)
    else:
        targets += [Target.of(goal, "not measured", None) for goal in (IDENTIFY_LATENCY, IDENTIFY_THROUGHPUT)]
    memory = data.get("embedded_memory")
    if memory:
        parts.append(e2e_memory(memory, targets))
    else:
        targets.append(Target.of(EMBEDDED_MEMORY, "not measured", None))
    return "\n\n".join(parts)


def e2e_latency(data: dict, separate: dict) -> str:
    classes = separate.get("photo_classes", {})
    enrolment = separate.get("enrolment", {})
    about = "; ".join(
        f"`{name}`: {c['photos']} photos, mean {c['mean_megapixels']:.2f} MP, {c['source']}"
        for name, c in classes.items()
    )
    rows = [
        [
            lv["photos"],
            lv["concurrency"],
            lv["requests"],
            lv["ok"],
            lv["with_animal"],
            lv.get("with_candidates"),
            lv["throughput_per_s"],
            lv["p50_ms"],
            lv["p95_ms"],
            lv["p99_ms"],
            lv.get("p50_ms_with_animal"),
            lv.get("p99_ms_with_animal"),
            ", ".join(f"{k}: {v}" for k, v in lv["errors"].items()) or "none",
        ]
        for lv in separate["levels"]
    ]
    return (
        "**Identify latency and throughput** through the gateway, the five services as separate processes "
        f"on PostgreSQL + the S3 server (SeaweedFS), all on 127.0.0.1. Gallery: {enrolment.get('photos')} real "
        f"photos of {enrolment.get('individuals')} individuals enrolled with their catalogue codes (indexed), "
        f"at {enrolment.get('photos_per_s', 0):.1f} photos/s. Model services' settings: "
        f"{', '.join(f'`{k}={v}`' for k, v in separate.get('model_settings', {}).items()) or 'defaults'} "
        "(the two share the 2 cores, as two pods of one CPU each would). Load: a fixed number of requests per level "
        f"(httpx, on the same cores as the services). Photos: {about}. `with animal`: answers with at least "
        "one detection (the others stop after "
        "the detector, so they are faster); `whole pipeline` percentiles are over those answers only; "
        "`with candidates`: answers naming catalogued individuals.\n\n"
        + table(
            [
                "photos",
                "concurrency",
                "requests",
                "200 OK",
                "with animal",
                "with candidates",
                "identify/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "p50 ms whole pipeline",
                "p99 ms whole pipeline",
                "errors",
            ],
            rows,
        )
    )


def e2e_stages(separate: dict) -> str:
    rows = []
    for lv in separate["levels"]:
        if lv["concurrency"] not in (1, 8):
            continue
        total = lv["stages_ms"].get("identify (gateway total)")
        rows.append(
            [
                lv["photos"],
                lv["concurrency"],
                total,
                *[f"{lv['stages_ms'].get(s, 0):.1f} ({lv['stage_shares'].get(s, 0):.0%})" for s in STAGES],
            ]
        )
    return (
        "**Time per stage**, ms per identify request (share of the gateway's request time), from the services' "
        "own Prometheus metrics scraped before and after each level: `decode` = the gateway's decoding of the "
        "photo into the models' input (`finprint_gateway_decode_seconds`) plus the detector's and the "
        "embedder's request time outside model inference (reading the pixels, or decoding the photo where "
        "they get its bytes); "
        "`detector`/`embedder` = `finprint_detector_inference_seconds` / `finprint_embedder_inference_seconds` "
        "(one embedder observation per micro-batch); `matcher` = its `/v1/search` requests; `catalog` = its "
        "requests outside the matcher's change-log polling; `gateway + network` = the gateway's request time "
        "outside its calls. At concurrency 8 the inference figures include the wait for the single inference "
        "thread, and `decode` the wait for a micro-batch.\n\n"
        + table(["photos", "concurrency", "identify ms", *STAGES], rows)
    )


CPU_SERVICES = ("gateway", "detector", "embedder", "matcher", "catalog")


def _model_cpu(level: dict) -> tuple[float, float]:
    """CPU ms per identify of the detector and the embedder, and their share of all services' CPU."""
    cpu = level["cpu_ms"]
    services = sum(cpu.get(s, 0.0) for s in CPU_SERVICES)
    models = cpu.get("detector", 0.0) + cpu.get("embedder", 0.0)
    return models, models / services if services else 0.0


def e2e_cpu(separate: dict) -> str:
    levels = [lv for lv in separate["levels"] if lv.get("cpu_ms")]
    if not levels:
        return "**CPU per identify**: not measured in this run (its results predate the CPU figures)."
    rows = []
    for lv in levels:
        cpu = lv["cpu_ms"]
        models, share = _model_cpu(lv)
        rows.append(
            [
                lv["photos"],
                lv["concurrency"],
                *[cpu.get(s) for s in (*CPU_SERVICES, "load generator", "other processes")],
                sum(cpu.values()),
                f"{models:.1f} ({share:.0%})",
            ]
        )
    return (
        "**CPU per identify**, ms of CPU time per request by process: each service's "
        "`process_cpu_seconds_total` (its own `/metrics`), the load generator's own CPU time, and the "
        "rest of the machine's busy time from `/proc/stat` (`other processes`: the database, the S3 "
        "server, other tenants of this shared machine). On 2 cores, 2,000 ms of CPU per second is all "
        "there is, so this, not the wall time per stage, says which process limits throughput. The "
        "gateway decodes each photo once and sends both models its pixels (`FINPRINT_GATEWAY_DECODE_ONCE`), so "
        "the photo's size shows in the gateway's CPU (compare `crops` with `2mp`).\n\n"
        + table(
            [
                "photos",
                "concurrency",
                *CPU_SERVICES,
                "load generator",
                "other processes",
                "total",
                "detector + embedder (share of services)",
            ],
            rows,
        )
    )


def e2e_throughput(separate: dict) -> str:
    raw = separate.get("raw_onnxruntime", {})
    rows = [
        [
            lv["photos"],
            lv["throughput_per_s"],
            raw.get("embedder_best_images_per_s"),
            x(lv.get("ratio_to_raw_embedder")),
            raw.get("models_only_photos_per_s"),
            x(lv.get("ratio_to_raw_models")),
        ]
        for lv in separate["levels"]
        if lv["concurrency"] == 8
    ]
    return (
        "**Throughput at concurrency 8 against the raw model**, measured in the same run: the embedder's ONNX "
        f"(`{raw.get('onnx')}`, {raw.get('embedder_model')}, {raw.get('embedder_input')} px) with onnxruntime "
        "directly on decoded inputs and the services' session options: "
        f"{raw.get('embedder_b1_images_per_s', 0):.1f} images/s at batch 1, "
        f"{raw.get('embedder_b8_images_per_s', 0):.1f} at batch 8 (the better is the peer); the detector's "
        f"ONNX ({raw.get('detector_model')}, {raw.get('detector_input')} px) at batch 1: "
        f"{raw.get('detector_b1_images_per_s', 0):.1f} images/s. An identify runs both models, so `detector + "
        "embedder` (1 / (1/detector + 1/embedder)) is the most the models alone allow.\n\n"
        + table(
            [
                "photos",
                "identify/s at c=8",
                "raw embedder images/s",
                "ratio",
                "raw detector + embedder photos/s",
                "ratio",
            ],
            rows,
        )
    )


def _level(separate: dict, photos: str, concurrency: int) -> dict | None:
    return next(
        (lv for lv in separate["levels"] if lv["photos"] == photos and lv["concurrency"] == concurrency), None
    )


def _largest_stages(level: dict) -> str:
    shares = sorted(((v, k) for k, v in level["stage_shares"].items()), reverse=True)[:2]
    return ", ".join(f"{k} {level['stages_ms'][k]:.0f} ms ({v:.0%})" for v, k in shares)


def _failures(level: dict) -> str:
    """The requests of a level that did not answer 200, as a reason; "" when all did."""
    errors = level.get("errors") or {}
    if not errors:
        return ""
    listed = ", ".join(f"{count} x {status}" for status, count in errors.items())
    return f"{sum(errors.values())} of {level['requests']} requests failed ({listed})"


def e2e_targets(separate: dict, targets: list[Target]) -> None:
    c1 = _level(separate, "2mp", 1)
    if c1 is None:
        targets.append(Target.of(IDENTIFY_LATENCY, "not measured", None))
    else:
        # Requests whose photo got no detection skip three stages: the whole pipeline's figures count.
        whole = c1.get("p50_ms_with_animal") is not None
        p50 = c1["p50_ms_with_animal"] if whole else c1["p50_ms"]
        p99 = c1["p99_ms_with_animal"] if whole else c1["p99_ms"]
        failed = _failures(c1)
        ok = p50 <= 150 and p99 <= 400 and not failed
        counted = (
            f"{c1['with_animal']} requests that ran the whole pipeline" if whole else f"{c1['ok']} requests"
        )
        measured = f"p50 {p50:.0f} ms, p99 {p99:.0f} ms ({counted} of {c1['requests']})"
        reason = failed or ("" if ok else f"largest stages: {_largest_stages(c1)}")
        targets.append(Target.of(IDENTIFY_LATENCY, measured, ok, reason))
    c8 = _level(separate, "2mp", 8)
    if c8 is None or c8.get("ratio_to_raw_embedder") is None:
        targets.append(Target.of(IDENTIFY_THROUGHPUT, "not measured", None))
        return
    value = c8["ratio_to_raw_embedder"]
    raw = separate["raw_onnxruntime"]
    reason = (
        f"every identify also runs the detector ({raw['detector_b1_images_per_s']:.1f} images/s raw): the two "
        f"models alone allow {raw['models_only_photos_per_s']:.1f} photos/s = "
        f"{raw['models_only_photos_per_s'] / raw['embedder_best_images_per_s']:.2f}x the embedder's rate, and "
        f"the identify rate is {c8['ratio_to_raw_models']:.2f}x of that; largest stages at c=8: "
        f"{_largest_stages(c8)}"
    )
    if c8.get("cpu_ms"):
        cpu = c8["cpu_ms"]
        reason += (
            f"; CPU per identify at c=8, {sum(cpu.values()):.0f} ms in all on 2 cores: detector "
            f"{cpu.get('detector', 0):.0f} ms, embedder {cpu.get('embedder', 0):.0f} ms, gateway "
            f"{cpu.get('gateway', 0):.0f} ms (decoding the photo included), catalog {cpu.get('catalog', 0):.0f} ms, "
            f"matcher {cpu.get('matcher', 0):.0f} ms"
        )
    reason = "; ".join(r for r in (_failures(c8), reason) if r)
    ok = value >= 0.8 and not _failures(c8)
    measured = f"{value:.2f}x ({c8['throughput_per_s']:.1f} identify/s vs {raw['embedder_best_images_per_s']:.1f} images/s)"
    targets.append(Target.of(IDENTIFY_THROUGHPUT, measured, ok, "" if ok else reason))


def e2e_memory(memory: dict, targets: list[Target]) -> str:
    gallery = memory["gallery"]
    ready, after = memory["rss_at_ready"], memory["rss_after_identify"]
    level = memory["identify_2mp_c1"]
    peak_bytes = max(ready["vm_hwm_mib"], after["vm_hwm_mib"], after["tree_rss_mib"]) * MIB
    ok = peak_bytes < MEMORY_TARGET_BYTES
    measured = f"peak {peak_bytes / 1e9:.2f} GB (VmHWM) with {gallery['images']:,} images"
    reason = "" if ok else "see the RSS figures: models, FAISS indexes and the rebuild's pages"
    targets.append(Target.of(EMBEDDED_MEMORY, measured, ok if gallery["images"] >= 100_000 else None, reason))
    rows = [
        ["after the matcher's rebuild (ready)", ready["vm_rss_mib"], ready["vm_hwm_mib"]],
        [f"after {level['ok']} identify requests", after["vm_rss_mib"], after["vm_hwm_mib"]],
    ]
    return (
        f"**Memory of the embedded default** (`finprint up` as a process: five apps, SQLite, local files): "
        f"{gallery['images']:,} images of {gallery['individuals']:,} individuals "
        f"({', '.join(gallery['species'])}) with **synthetic** vectors ({memory['vectors']}) written straight into "
        "its SQLite through the catalog's own migrations and models, then `finprint up` on that data "
        f"directory; ready (matcher rebuilt from the catalogue) after {memory['ready_s']:.0f} s. Identify "
        f"through it at concurrency 1 on 2-MP photos: p50 {level['p50_ms']:.0f} ms, p99 {level['p99_ms']:.0f} ms "
        f"({level['ok']} requests, {level.get('with_candidates', '?')} answered with candidates from the "
        "synthetic gallery).\n\n"
        + table(["when", "VmRSS MiB", "VmHWM (peak) MiB"], rows)
        + "\n\nThe target counts 1.5 GB as 1.5e9 bytes, against the peak (VmHWM) of the `finprint up` process."
    )
