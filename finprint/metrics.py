"""Prometheus metrics: one registry per service app.

Each app owns a :class:`ServiceMetrics` so that, when the five apps share one process (the
embedded default), each ``/metrics`` still shows its own service. Request count and latency are
labelled by route template (not raw path: ids would explode the label set) and status.
Services add their own domain metrics with :meth:`ServiceMetrics.counter` and friends.
Every registry also carries the standard ``process_*`` metrics (CPU seconds, resident memory, open
files) of the process serving it; in the embedded default the five apps report the same process.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST as PROMETHEUS_CONTENT_TYPE

__all__ = ["ServiceMetrics", "PROMETHEUS_CONTENT_TYPE"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServiceMetrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "finprint_http_requests_total",
            "HTTP requests handled, by route template, method and status.",
            ["service", "route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "finprint_http_request_duration_seconds",
            "HTTP request latency, by route template and method.",
            ["service", "route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(self.service, route, method, str(status)).inc()
        self.latency.labels(self.service, route, method).observe(seconds)

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(name, doc, list(labels), registry=self.registry)

    def gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, list(labels), registry=self.registry)

    def histogram(
        self, name: str, doc: str, labels: tuple[str, ...] = (), buckets: tuple[float, ...] = LATENCY_BUCKETS
    ) -> Histogram:
        return Histogram(name, doc, list(labels), buckets=buckets, registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
