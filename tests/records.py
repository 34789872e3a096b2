"""Run-record sections made by hand for tests: every measurement a test does not set is zero."""

from __future__ import annotations

from steerable.runs import OpenSet, Probe, ProtocolMetrics
from steerable.runs.record import STEERABILITY_METRICS, Protocol


def metrics_block(dims=(64, 256), accuracy=None, protocol="standard", **values: float) -> ProtocolMetrics:
    """One protocol's block with the given accuracies and steerability metrics."""
    return ProtocolMetrics(
        dims=list(dims),
        accuracy=accuracy or {},
        protocol=Protocol(protocol, 5, 500 if protocol == "paper" else None, 0),
        **(dict.fromkeys(STEERABILITY_METRICS, 0.0) | values),
    )


def open_set_block(
    dims=(64, 256),
    accuracy=None,
    *,
    unseen="coarse:1",
    drawn=None,
    seed=0,
    queries=300,
    held_out=None,
    held_out_classes=None,
    clustering=None,
    **values: float,
) -> OpenSet:
    """An open-set section with the given accuracies, draw and steerability metrics."""
    return OpenSet(
        dims=list(dims),
        accuracy=accuracy or {},
        unseen=unseen,
        drawn=drawn or unseen,
        seed=seed,
        queries=queries,
        pool=2000,
        k=5,
        held_out=held_out or {},
        held_out_classes=held_out_classes or {},
        clustering=clustering or {},
        **(dict.fromkeys(STEERABILITY_METRICS, 0.0) | values),
    )


def probe_block(accuracy: dict[str, float], dim: int = 64, rank: int | None = None) -> Probe:
    return Probe(dim=dim, accuracy=accuracy, rank=rank)
