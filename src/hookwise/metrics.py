"""Prometheus metrics, on a registry of our own so several apps can share a process.

When `serve` leaves runs to worker processes of its own (`worker.processes`), the
children count the run-side metrics in prometheus_client's multiprocess files, in a
folder `serve` makes for them, and `serve`'s `/metrics` reads them from there.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Awaitable, Generator, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from pydantic import BaseModel

from hookwise.actions import ActionContext, ActionSpec
from hookwise.errors import EgressDenied, PermanentFailure
from hookwise.hookspecs import hookimpl


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_accepted = Counter(
            "hookwise_events_accepted_total",
            "Deliveries accepted (duplicates included, labelled).",
            ["source", "duplicate"],
            registry=self.registry,
        )
        self.events_rejected = Counter(
            "hookwise_events_rejected_total",
            "Deliveries refused, by reason.",
            ["source", "reason"],
            registry=self.registry,
        )
        self.action_attempts = Counter(
            "hookwise_action_attempts_total",
            "Action attempts, by action and outcome.",
            ["action", "status"],
            registry=self.registry,
        )
        self.runs_finished = Counter(
            "hookwise_runs_finished_total",
            "Runs that reached a final status.",
            ["rule", "status"],
            registry=self.registry,
        )
        self.action_duration = Histogram(
            "hookwise_action_duration_seconds",
            "Time one action attempt took.",
            ["action"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.pruned = Counter(
            "hookwise_pruned_total",
            "Events and runs deleted by retention.",
            ["what"],
            registry=self.registry,
        )
        for what in ("events", "runs"):
            self.pruned.labels(what)
        self.queue_depth = Gauge(
            "hookwise_queue_depth",
            "Runs waiting to be executed or retried.",
            registry=self.registry,
        )
        # The console's overview, for alerts: the same store query answers both.
        self.dead_runs = Gauge(
            "hookwise_dead_runs",
            "Dead runs in the history: the dead letters, until retried or pruned.",
            registry=self.registry,
        )
        self.oldest_active_age = Gauge(
            "hookwise_oldest_active_run_age_seconds",
            "Age of the oldest run not finished yet (pending, waiting, retrying); 0 if none.",
            registry=self.registry,
        )

    def counted_in(self, folder: str) -> None:
        """Report the run-side metrics as worker processes count them in `folder`,
        instead of this process's, which then executes no runs."""
        run_side = (self.action_attempts, self.runs_finished, self.action_duration)
        names = {family.name for metric in run_side for family in metric.collect()}
        for metric in run_side:
            self.registry.unregister(metric)
        self.registry.register(ChildMetrics(folder, names))


class ChildMetrics(Collector):
    """Counters and histograms from other processes' multiprocess files, summed.

    Only the families in `names`: the children count everything a process does, and
    what `serve` counts itself must not appear twice. Files of children that died
    stay, so their counts do not go back down.
    """

    def __init__(self, folder: str, names: Iterable[str]) -> None:
        self.folder = folder
        self.names = frozenset(names)

    def collect(self) -> Iterator[Metric]:
        files = [
            path
            for kind in ("counter", "histogram")
            for path in glob.glob(os.path.join(glob.escape(self.folder), f"{kind}_*.db"))
        ]
        for family in MultiProcessCollector.merge(files):  # type: ignore[no-untyped-call]
            if family.name in self.names:
                yield family


class ActionMetrics:
    """Times every action attempt and counts its outcome, for every plugin's actions:
    a wrapper around `hookwise_invoke_action`, registered by the service."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    @hookimpl(wrapper=True)
    def hookwise_invoke_action(
        self, spec: ActionSpec, params: BaseModel, context: ActionContext
    ) -> Generator[None, Awaitable[Any], Awaitable[Any]]:
        attempt = yield
        return self._measured(spec.name, attempt)

    async def _measured(self, action: str, attempt: Awaitable[Any]) -> Any:
        started, outcome = time.monotonic(), "retry"
        try:
            output = await attempt
            outcome = "succeeded"
            return output
        except (PermanentFailure, EgressDenied):
            outcome = "dead"
            raise
        finally:  # any other end is retried: an error, a timeout, a shutdown
            self.metrics.action_duration.labels(action).observe(time.monotonic() - started)
            self.metrics.action_attempts.labels(action, outcome).inc()
