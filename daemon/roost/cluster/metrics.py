"""A fleet worker's ownership and failover counters, as Prometheus metric families."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from roost.cluster.ownership import Counters


def families(worker: str, owned: int, counters: Counters, fenced: int) -> Iterator[Metric]:
    gauge = GaugeMetricFamily(
        "roost_cluster_groups_owned", "Account groups this worker owns now.", labels=["worker"]
    )
    gauge.add_metric([worker], owned)
    yield gauge
    for name, text, value in (
        (
            "groups_gained",
            "Account groups this worker claimed (start-up, failover).",
            counters.gained,
        ),
        ("groups_released", "Account groups this worker gave up to rebalance.", counters.released),
        (
            "lock_sessions_lost",
            "Times the lock session died or did not answer: every group stopped at once.",
            counters.sessions_lost,
        ),
        ("commands_fenced", "Commands refused: the worker no longer owned the group.", fenced),
    ):
        family = CounterMetricFamily(f"roost_cluster_{name}", text, labels=["worker"])
        family.add_metric([worker], value)
        yield family
