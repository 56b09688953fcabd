"""Bytes on the wire per photo (issue 21): what the gateway sends each internal service, before and
after the photos moved once (bench_wire)."""

from __future__ import annotations

from typing import Any

from bench.markdown import table
from bench.targets import WIRE_BYTES, Target

TITLE = "Bytes on the wire per photo (issue 21)"
SERVICES = ("detector", "embedder", "matcher", "catalog")
HEADLINE = ("decode once", "full-size")
"""The default deployment's setting and photos as taken: the figures of the targets table."""


def kb(value: float | None) -> str:
    return "–" if value is None else f"{value / 1000:,.1f} KB"


def total(services: dict[str, Any]) -> float:
    return sum(services[s]["bytes"] for s in SERVICES)


def change(before: float | None, after: float | None) -> str:
    """``before → after``, with the ratio where they differ by more than a header's worth."""
    text = f"{kb(before)} → {kb(after)}"
    if before and after is not None and abs(after - before) > 100:
        text += f" ({after / before:.2f}x)"
    return text


def _steps(figures: dict[str, Any], mode: str, kind: str) -> dict[str, Any]:
    return figures.get(mode, {}).get(kind, {})


def _bytes(step: dict[str, Any] | None, service: str | None = None) -> float | None:
    if step is None:
        return None
    services = step["services"]
    return total(services) if service is None else services[service]["bytes"]


def headline(data: dict[str, Any]) -> str:
    mode, kind = HEADLINE
    before, after = (_steps(data[side]["figures"], mode, kind) for side in ("before", "after"))
    parts = []
    for name, step in after.items():
        services = ", ".join(f"{s} {change(_bytes(before.get(name), s), _bytes(step, s))}" for s in SERVICES)
        parts.append(f"{name} (photos of {kb(step['photo_bytes'])}): {services}")
    return f"{kind} photos, {mode}, per photo: " + "; ".join(parts)


def render(data: dict[str, Any], targets: list[Target], full: bool) -> str:
    before, after = data["before"], data["after"]
    targets.append(Target.of(WIRE_BYTES, headline(data), True, figure_only=True))
    rows = []
    for mode, kinds in after["figures"].items():
        for kind, steps in kinds.items():
            old_steps = _steps(before["figures"], mode, kind)
            for name, step in steps.items():
                old = old_steps.get(name)
                rows.append([mode, kind, name, kb(step["photo_bytes"]),
                             *[change(_bytes(old, s), _bytes(step, s)) for s in SERVICES],
                             change(_bytes(old), _bytes(step))])
    return (
        f"{data['mode'].capitalize()} mode. The five apps in one process (SQLite, local objects, the shipped models); "
        "every request the gateway sends a service is counted as httpx sends it (request line, headers, body; "
        "not the services' own calls), divided by the photos of the step. Real photos, `crops` from "
        "kaggle_humpback2019 and `full-size` from curvrank_examples as taken: "
        f"{data['individuals_per_kind']} individuals per kind, each enrolled with its code (up to 3 photos, "
        "`POST /v1/encounters`), then one held-out photo each identified (`POST /v1/identify`) and identified "
        "and stored (`?store=true`). `decode once`: the gateway decodes and sends the detector and the embedder "
        "the model's input (256x256 RGB pixels, whatever the photo's size); `bytes to each service` "
        "(`FINPRINT_GATEWAY_DECODE_ONCE=false`): each gets the photo's bytes. "
        f"**Before**: `{before['revision']}`; **after**: `{after['revision']}`, measured in the same run.\n\n"
        + table(["decoding", "photos", "path", "photo", *SERVICES, "all four"], rows)
    )
