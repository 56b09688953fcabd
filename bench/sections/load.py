"""Load (issue 20): mixed traffic at twice the c=8 identify throughput, through locust (bench_load)."""

from __future__ import annotations

from typing import Any

from bench.markdown import table
from bench.targets import MIXED_LOAD, Target

TITLE = "Load: mixed traffic at twice the c=8 identify throughput (issue 20)"


def verdict(data: dict[str, Any]) -> tuple[str, bool, str]:
    """(measured, met, reason) of the load test's target."""
    load = data["load"]
    media = load["media"]
    problems = []
    if load["server_errors"]:
        problems.append(f"{load['server_errors']} answers were 5xx")
    if load["transport_errors"]:
        problems.append(f"{load['transport_errors']} requests got no answer (transport error or timeout)")
    if load["other_429"]:
        problems.append(f"{load['other_429']} 429s were not the rate limiter's problem")
    if media["after"] != media["expected"]:
        problems.append(f"the catalogue holds {media['after']} media, the answers stored {media['expected']}")
    if not load["rate_limited_429"]:
        problems.append("the partner key over its quota got no 429 (was the rate limiter on?)")
    measured = (
        f"{load['achieved_rate_per_s']:.1f} of {load['target_rate_per_s']:.1f} requests/s offered "
        f"(2 x {data['c8']['throughput_per_s']:.1f} identify/s at c=8) for {load['wall_s']:.0f} s, "
        f"{load['requests']} requests: 5xx {load['server_errors']}, no answer {load['transport_errors']}, "
        f"429 {load['rate_limited_429']} (all from the rate limiter: {'yes' if not load['other_429'] else 'no'}), "
        f"media {media['after']} = {media['expected']} expected"
    )
    return measured, not problems, "; ".join(problems)


def render(data: dict[str, Any], targets: list[Target], full: bool) -> str:
    load, c8 = data["load"], data["c8"]
    measured, met, reason = verdict(data)
    targets.append(Target.of(MIXED_LOAD, measured, met, reason))
    page = c8.get("page") or {}
    reference = (f"; the newest e2e benchmark's c=8 on this machine: {page.get('crops', 0):.1f}/s crops, "
                 f"{page.get('2mp', 0):.1f}/s 2-MP (`{page.get('file')}`)" if page else "")
    rows = [
        [row["route"], row["requests"], row["rate_per_s"], row["p50_ms"], row["p95_ms"], row["p99_ms"],
         ", ".join(f"{n} x {s}" for s, n in row["by_status"].items())]
        for row in load["routes"]
    ]
    return (
        f"{data['mode'].capitalize()} mode. Locust (headless, its Python API, `FastHttpUser`) on 127.0.0.1 against the five services as separate "
        "processes on PostgreSQL + the S3 server, with the deployment's default rate limits "
        f"({data['rate_limits']['default']}, identify and enrol {data['rate_limits']['identify and enrol']}). "
        f"Gallery: {data['gallery']['photos']} real photos of {data['gallery']['individuals']} individuals. "
        f"**c=8 first, in the same run**: 8 users sending identify back to back for {c8['wall_s']:.0f} s with "
        f"held-out photos of the gallery's individuals: **{c8['throughput_per_s']:.1f} identify/s** (p50 "
        f"{c8['p50_ms']:.0f} ms, p99 {c8['p99_ms']:.0f} ms){reference}. "
        f"**Then {load['target_rate_per_s']:.1f} requests/s offered (twice that) for {data['duration_s']:.0f} s**: "
        f"{load['researchers']} researchers at {load['per_researcher_rate_per_s']:.2f} requests/s each "
        f"(`constant_throughput`; their requests rotate over {load['lab_keys']} reviewer keys), mix by weight "
        + ", ".join(f"{k} {v}" for k, v in data["mix"].items())
        + f"; and {load['partner_users']} partner users on ONE key at {load['partner_rate_per_s']:.1f} identify/s, "
        "twice its quota. A closed-loop generator: a user whose request takes longer than its interval sends the "
        f"next at once, so the answered rate ({load['achieved_rate_per_s']:.1f}/s) is what the system delivered. "
        "Latency percentiles are over the 2xx answers; 429s are counted as the rate limiter's only when they are "
        "its problem+json (`type` `.../rate-limited`) with Retry-After. Enrolments of photos with no detected "
        "cetacean answer 422 (the photo is refused, nothing stored).\n\n"
        + table(["route", "requests", "per s", "p50 ms", "p95 ms", "p99 ms", "answers"], rows)
        + f"\n\nTotals: {load['requests']} requests, 5xx **{load['server_errors']}**, no answer "
        f"**{load['transport_errors']}**, 429 from the rate limiter **{load['rate_limited_429']}**, other 429 "
        f"**{load['other_429']}**. Photos stored by the answers (enrolment 201s, stored identifies): "
        f"{load['media']['stored_by_answers']}; media in the catalogue {load['media']['before']} before, "
        f"{load['media']['after']} after (expected {load['media']['expected']})."
    )
