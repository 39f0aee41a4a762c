"""Prometheus metrics of one Relay: a registry per instance (no global state), fed by the parts.

Reads nothing from config; relay/http.py serves it on http.listen (/metrics).
Names: relay_messages_total{direction,reason}, relay_deliveries_total{outcome,kind},
relay_queue_depth{state}, relay_queue_oldest_age_seconds, relay_delivery_latency_seconds,
relay_delivery_record_seconds (the duplicate window), relay_delivery_ambiguous_total,
relay_smtp_sessions_total{result},
relay_smtp_sessions_active, relay_stage_seconds{stage}, relay_config_reloads_total{result}.

With smtp.workers > 1 every worker writes its values to its own memory-mapped files under
<state_dir>/metrics (prometheus_client's multiprocess mode, switched on in the worker by
use_worker_files before its Metrics is made), and whichever worker serves /metrics reads them all:
counters and histograms are summed over every worker that ever ran since the start (a worker
replaced after a crash keeps its counts in); of the gauges, the shared ones — sessions open (from
the shared connection table), queue depth and age (from the store) — are the value the serving
worker just read (mode mostrecent), transactions are summed over the live workers, and the start
time is the earliest.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from relay.store.queue import QueueStats

#: accepted → delivered: seconds to days (retries back off up to delivery.retry_max)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400)
#: one stage's time on one message: policy checks and DKIM signing are milliseconds
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


def use_worker_files(directory: Path) -> None:
    """In a worker process, before its Metrics: values go to this process's files in `directory`."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    values.ValueClass = values.MultiProcessValue()


def reset_worker_files(directory: Path) -> None:
    """In the supervisor, before the workers start: counts begin at zero with the relay."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, mode=0o700)


def worker_gone(directory: Path, pid: int) -> None:
    """In the supervisor: a dead worker's live gauges stop counting (its counters stay in the sums)."""
    multiprocess.mark_process_dead(pid, str(directory))


class Metrics:
    def __init__(self, worker_files: Path | None = None) -> None:
        #: with several workers: the directory of every worker's files (see use_worker_files)
        self.worker_files = worker_files
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.messages = Counter("relay_messages", "Messages by direction and verdict reason (one per recipient)",
                                ["direction", "reason"], registry=r)
        self.deliveries = Counter("relay_deliveries", "Delivery attempts by outcome",
                                  ["outcome", "kind"], registry=r)
        self.delivery_latency = Histogram("relay_delivery_latency_seconds",
                                          "Time from acceptance to delivery of a message",
                                          buckets=LATENCY_BUCKETS, registry=r)
        self.record_seconds = Histogram("relay_delivery_record_seconds",
                                        "Smarthost's 250 to our durable record of it: the only window in which a "
                                        "crash can deliver a message twice", buckets=STAGE_BUCKETS, registry=r)
        self.ambiguous = Counter("relay_delivery_ambiguous", "Attempts whose outcome is unknown: the smarthost "
                                 "went away after our final dot, before its reply (retried later)", registry=r)
        self.stage_seconds = Histogram("relay_stage_seconds", "Time one pipeline stage took on one message",
                                       ["stage"], buckets=STAGE_BUCKETS, registry=r)
        self.smtp_sessions = Counter("relay_smtp_sessions", "SMTP connections by result (accepted, refused)",
                                     ["result"], registry=r)
        self.smtp_active = Gauge("relay_smtp_sessions_active", "SMTP sessions open now", registry=r,
                                 multiprocess_mode="mostrecent")
        self.queue_depth = Gauge("relay_queue_depth", "Queue rows by state", ["state"], registry=r,
                                 multiprocess_mode="mostrecent")
        self.queue_oldest = Gauge("relay_queue_oldest_age_seconds",
                                  "Age of the oldest queue row not yet delivered (0 when empty)", registry=r,
                                  multiprocess_mode="mostrecent")
        self.store_commits = Gauge("relay_store_transactions", "Store write transactions since start", registry=r,
                                   multiprocess_mode="livesum")
        self.up_since = Gauge("relay_start_time_seconds", "When the relay started (unix time)", registry=r,
                              multiprocess_mode="min")
        self.reloads = Counter("relay_config_reloads", "Configuration reloads by result", ["result"], registry=r)

    def set_queue(self, stats: QueueStats, now: float) -> None:
        for state, count in stats.depth.items():
            self.queue_depth.labels(state).set(count)
        self.queue_oldest.set(max(0.0, now - stats.oldest_created_at) if stats.oldest_created_at else 0.0)

    def render(self) -> bytes:
        if self.worker_files is None:
            return generate_latest(self.registry)
        every_worker = CollectorRegistry()
        multiprocess.MultiProcessCollector(every_worker, str(self.worker_files))
        return generate_latest(every_worker)
