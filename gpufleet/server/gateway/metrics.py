"""Prometheus metrics of the gateway, in a registry of its own (one per server runtime)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gpufleet_gateway_requests",
            "Requests answered by the gateway, by model, route and HTTP status",
            ["model", "route", "code"],
            registry=self.registry,
        )
        self.errors = Counter(
            "gpufleet_gateway_errors",
            "Requests answered with an error status (4xx/5xx), by model and status",
            ["model", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gpufleet_gateway_request_duration_seconds",
            "Time from receiving a request to its last byte, by model and route",
            ["model", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.first_token = Histogram(
            "gpufleet_gateway_time_to_first_token_seconds",
            "Streamed requests: time from receiving the request to the engine's first bytes",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "gpufleet_gateway_tokens",
            "Tokens reported by the engines, by model and kind (prompt|completion)",
            ["model", "kind"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "gpufleet_gateway_in_flight_requests",
            "Requests being served now, by model",
            ["model"],
            registry=self.registry,
        )
        self.queued = Gauge(
            "gpufleet_gateway_queued_requests",
            "Requests waiting for a free slot or an instance to load, by model (this server)",
            ["model"],
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "gpufleet_gateway_queue_wait_seconds",
            "Time requests waited in a model's line before an instance took them, by model",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.cold_start = Histogram(
            "gpufleet_gateway_cold_start_seconds",
            "Requests that arrived with no instance running: time from arrival to the first byte, by model",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.scaling = Counter(
            "gpufleet_model_scaling_events",
            "Loads, unloads, scale-ups, scale-downs and evictions decided by this server, by model and kind",
            ["model", "kind"],
            registry=self.registry,
        )

        # Labelled children by (metric, labels): ``labels()`` takes a lock and validates each time,
        # and every request needs half a dozen of them.
        self._children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}

    def child(self, metric: MetricWrapperBase, *labels: str) -> Any:
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def answered(self, model: str, route: str, status: int, seconds: float) -> None:
        code = str(status)
        self.child(self.requests, model, route, code).inc()
        if status >= 400:
            self.child(self.errors, model, code).inc()
        self.child(self.latency, model, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
