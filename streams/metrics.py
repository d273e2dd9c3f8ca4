"""Pipeline health: counters per domain, end-to-end latency, consumer lag.

One `PipelineMetrics` per worker. The ingest agent records what each committed batch did; a timer
writes a window of it to `pipeline_stats` every few seconds (`take_window`), and the worker's
`/metrics` page serves the cumulative figures through prometheus-client (`exposition`): each
`PipelineMetrics` has its own `CollectorRegistry` (not the process-wide default one, so several
apps or tests in one process do not collide) holding one collector that reads these counters
when scraped, on the event loop that also records the batches. Recording a batch stays plain
counting: no client-library objects, no locks.

Latency is event time -> database commit, per event. A window keeps a bounded random sample
(reservoir) for exact p50/p95/p99; Prometheus gets a cumulative histogram.

What a scrape shows (names and labels are the interface of dashboards and alerts):
- `ioc_events_total{domain, outcome}` counter; outcome `received` counts every record read, and
  `stored`, `duplicates`, `rejected` split it, so do not sum over `outcome`;
- `ioc_events_rejected_total{domain, reason}` counter, dead letters by reason;
- `ioc_consumer_lag{topic, partition}` gauge, messages behind the end of each partition;
- `ioc_end_to_end_latency_seconds{domain}` histogram, event time to database commit.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

LATENCY_BUCKETS_S = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    3600.0,
)
RESERVOIR = 20_000


@dataclass
class DomainWindow:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    latency_sample: list[float] = field(default_factory=list)
    latency_seen: int = 0

    def add_latencies(self, values: Iterable[float], rng: random.Random) -> None:
        sample = self.latency_sample
        for value in values:
            self.latency_seen += 1
            if len(sample) < RESERVOIR:
                sample.append(value)
            else:
                slot = rng.randrange(self.latency_seen)
                if slot < RESERVOIR:
                    sample[slot] = value

    def quantiles(self) -> tuple[float | None, float | None, float | None]:
        if not self.latency_sample:
            return None, None, None
        ordered = sorted(self.latency_sample)
        return tuple(quantile(ordered, q) for q in (0.5, 0.95, 0.99))  # type: ignore[return-value]


def quantile(ordered: list[float], q: float) -> float:
    """Nearest-rank quantile of an already sorted list."""
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


@dataclass
class StatsRow:
    """One row of `pipeline_stats` for one domain and one window."""

    domain: str
    received: int
    stored: int
    duplicates: int
    rejected: int
    rejected_by_reason: dict[str, int]
    lag: int
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_p99_s: float | None


class PipelineMetrics:
    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._window: dict[str, DomainWindow] = defaultdict(DomainWindow)
        self.totals: dict[str, Counter[str]] = defaultdict(Counter)
        self.rejected_totals: Counter[tuple[str, str]] = Counter()
        self.latency_buckets: dict[str, list[int]] = defaultdict(
            lambda: [0] * (len(LATENCY_BUCKETS_S) + 1)
        )
        self.latency_sum: Counter[str] = Counter()
        self.lag: dict[tuple[str, int], int] = {}
        self.topic_domain: dict[str, str] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(PrometheusCollector(self))

    def record_batch(
        self,
        domain: str,
        *,
        received: int,
        stored: int,
        duplicates: int,
        rejected: Iterable[str],
        latencies_s: Iterable[float],
    ) -> None:
        window = self._window[domain]
        reasons = Counter(rejected)
        window.received += received
        window.stored += stored
        window.duplicates += duplicates
        window.rejected += sum(reasons.values())
        window.rejected_by_reason.update(reasons)
        totals = self.totals[domain]
        totals.update(
            received=received, stored=stored, duplicates=duplicates, rejected=sum(reasons.values())
        )
        for reason, count in reasons.items():
            self.rejected_totals[(domain, reason)] += count
        values = list(latencies_s)
        window.add_latencies(values, self._rng)
        buckets = self.latency_buckets[domain]
        for value in values:
            buckets[bisect.bisect_left(LATENCY_BUCKETS_S, value)] += 1
        self.latency_sum[domain] += sum(values)

    def record_lag(self, topic: str, partition: int, lag: int) -> None:
        self.lag[(topic, partition)] = max(0, lag)

    def lag_by_domain(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (topic, _partition), lag in self.lag.items():
            out[self.topic_domain.get(topic, topic)] += lag
        return dict(out)

    def take_window(self) -> list[StatsRow]:
        """The rows for this window (one per domain seen), and start a new window."""
        window, self._window = self._window, defaultdict(DomainWindow)
        lags = self.lag_by_domain()
        rows = []
        for domain in sorted(set(window) | set(lags)):
            w = window.get(domain, DomainWindow())
            p50, p95, p99 = w.quantiles()
            rows.append(
                StatsRow(
                    domain,
                    w.received,
                    w.stored,
                    w.duplicates,
                    w.rejected,
                    dict(w.rejected_by_reason),
                    lags.get(domain, 0),
                    p50,
                    p95,
                    p99,
                )
            )
        return rows

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The `/metrics` body and its content type, in the format the scraper's Accept header
        asks for (Prometheus text 0.0.4 by default, OpenMetrics when asked)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class PrometheusCollector:
    """prometheus-client collector over one PipelineMetrics' cumulative counters."""

    def __init__(self, metrics: PipelineMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return self._families()

    def collect(self) -> list[Metric]:
        m = self.metrics
        events, rejected, lag, latency = self._families()
        for domain, totals in sorted(m.totals.items()):
            for outcome in ("received", "stored", "duplicates", "rejected"):
                events.add_metric([domain, outcome], totals[outcome])
        for (domain, reason), count in sorted(m.rejected_totals.items()):
            rejected.add_metric([domain, reason], count)
        for (topic, partition), behind in sorted(m.lag.items()):
            lag.add_metric([topic, str(partition)], behind)
        for domain, counts in sorted(m.latency_buckets.items()):
            bounds = [*(str(bound) for bound in LATENCY_BUCKETS_S), "+Inf"]
            cumulative = list(itertools.accumulate(counts))
            latency.add_metric(
                [domain], list(zip(bounds, cumulative, strict=True)), m.latency_sum[domain]
            )
        return [events, rejected, lag, latency]

    @staticmethod
    def _families() -> list[Metric]:
        return [
            CounterMetricFamily(
                "ioc_events",
                "Events by domain and outcome since the worker started (received = stored + "
                "duplicates + rejected).",
                labels=["domain", "outcome"],
            ),
            CounterMetricFamily(
                "ioc_events_rejected",
                "Events sent to the dead-letter topic, by reason.",
                labels=["domain", "reason"],
            ),
            GaugeMetricFamily(
                "ioc_consumer_lag",
                "Messages behind the end of each partition.",
                labels=["topic", "partition"],
            ),
            HistogramMetricFamily(
                "ioc_end_to_end_latency_seconds",
                "Event time to database commit.",
                labels=["domain"],
            ),
        ]
