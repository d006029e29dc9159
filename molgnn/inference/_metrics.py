"""The HTTP server's ``/metrics``: request counts, latencies and molecules, for Prometheus.

Every count lives in the server process (the event loop), never in the workers, so one
``CollectorRegistry`` per application holds them and no multiprocess mode is needed. A request
is counted just before the last part of its response is sent: a client that has its answer
always finds its request in the next ``/metrics``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE_LATEST", "LATENCY_BUCKETS", "MetricsMiddleware", "ServerMetrics"]

#: Upper bounds (s) of the latency histogram's buckets: from a cached small molecule to a
#: request near the default time limit.
LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, float("inf"),
)  # fmt: skip

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ServerMetrics:
    """The counters of one application, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "molgnn_serve_requests",
            "HTTP requests answered, by endpoint and status code",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "molgnn_serve_request_duration_seconds",
            "Seconds from a request's arrival to its answer, by endpoint",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.molecules = Counter(
            "molgnn_serve_molecules",
            "Molecules of answered /predict requests, by outcome: predicted (a value) or failed "
            "(an error of their own)",
            ["outcome"],
            registry=self.registry,
        )
        self.busy = Gauge(
            "molgnn_serve_workers_busy",
            "Worker processes computing a request now",
            registry=self.registry,
        )
        for outcome in ("predicted", "failed"):  # both series exist from the start
            self.molecules.labels(outcome)

    def count_molecules(self, predicted: int, failed: int) -> None:
        """Count the molecules of one answered ``/predict`` request."""
        self.molecules.labels("predicted").inc(predicted)
        self.molecules.labels("failed").inc(failed)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def exposition(self) -> bytes:
        """Everything in Prometheus's text format."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """ASGI middleware counting each HTTP request of ``endpoints`` (others as ``"other"``)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics, endpoints: Collection[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.endpoints = frozenset(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        endpoint = path if path in self.endpoints else "other"
        start = time.perf_counter()
        status = 500
        counted = False

        async def counting_send(message: Message) -> None:
            nonlocal status, counted
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Counted before it is sent: a client cannot see its answer uncounted.
                counted = True
                self.metrics.observe(endpoint, status, time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            if not counted:  # no complete answer (an error, a client that went away)
                self.metrics.observe(endpoint, status, time.perf_counter() - start)
