"""The inference service's Prometheus metrics and its feature-drift gauge."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from indmlops.inference.parse import ERROR_KINDS
from indmlops.simulator.model import SIGNALS

# Latency buckets from 50 µs to 2 s: the service itself takes tens of µs; MQTT hops add ~100 µs each.
BUCKETS = (5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0, 2.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.messages = Counter("indmlops_inference_messages", "Readings handled", ["source", "outcome"], registry=r)
        self.errors = Counter("indmlops_inference_errors", "Rejected readings by kind", ["kind"], registry=r)
        self.latency = Histogram("indmlops_inference_latency_seconds", "Receive to prediction published",
                                 ["source"], buckets=BUCKETS, registry=r)
        # The reading's age when its prediction leaves: publisher clock to ours (same host here; NTP-synced nodes on
        # Kubernetes). It is the Prometheus view of the latency suite's mqtt:e2e (fixtures/slo.yaml).
        self.e2e = Histogram("indmlops_inference_e2e_seconds", "Reading published (its ts_ns) to prediction published",
                             buckets=BUCKETS, registry=r)
        self.model = Gauge("indmlops_inference_model_info", "Loaded model (value 1)", ["name", "version", "flavor"],
                           registry=r)
        self.answered_again = Counter("indmlops_inference_answered_again",
                                      "Readings that arrived again (re-sent by their publisher) and got their first "
                                      "prediction again", registry=r)
        self.swaps = Counter("indmlops_inference_model_swaps", "Model versions hot-swapped in", registry=r)
        self.drift = Gauge("indmlops_inference_feature_drift",
                           "EWMA of mean |z| of the signals against the first 2,000 readings after start", registry=r)
        for kind in ERROR_KINDS:  # export zeros, so a dashboard shows a flat line rather than no data
            self.errors.labels(kind)
        # Label lookups take a lock and a dict probe; the per-message path uses children bound once here.
        self.predicted = {s: self.messages.labels(s, "predicted") for s in ("mqtt", "http")}
        self.rejected = {s: self.messages.labels(s, "error") for s in ("mqtt", "http")}
        self.latency_of = {s: self.latency.labels(s) for s in ("mqtt", "http")}


class Drift:
    """Mean absolute z-score of the signals against a baseline of the first `n` readings, smoothed by an EWMA."""

    def __init__(self, n: int = 2000, alpha: float = 0.01) -> None:
        self.n, self.alpha = n, alpha
        self.sums = [0.0] * len(SIGNALS)
        self.sq = [0.0] * len(SIGNALS)
        self.count = 0
        self.stats: list[tuple[float, float]] | None = None
        self.value = 0.0

    def update(self, features: dict[str, float]) -> float:
        xs = [features[s] for s in SIGNALS]
        if self.stats is None:
            self.count += 1
            for i, x in enumerate(xs):
                self.sums[i] += x
                self.sq[i] += x * x
            if self.count == self.n:
                self.stats = [(s / self.n, max(1e-9, (q / self.n - (s / self.n) ** 2)) ** 0.5)
                              for s, q in zip(self.sums, self.sq)]
            return self.value
        # Capped: one extreme reading (a float32-sized value over a noise-sized sd is ~1e47) would hold the gauge
        # far above any real drift for thousands of readings; 100 σ already says "far out".
        z = min(100.0, sum(abs(x - m) / sd for x, (m, sd) in zip(xs, self.stats)) / len(xs))
        self.value += self.alpha * (z - self.value)
        return self.value


