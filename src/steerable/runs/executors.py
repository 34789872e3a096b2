"""Where the runs of a sweep execute: local worker processes, or Ray tasks (on a cluster or locally).

An executor maps a function over jobs (a sweep's: lists of run specs as dicts, runs that train together)
and yields the results as they finish. Keyword arguments
go to every call; ``inputs`` (a function of the job), where given, is a large per-job argument that
an executor whose workers may be on other machines ships once per distinct value (``ships_inputs``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..extras import require


class LocalExecutor:
    """Runs in local worker processes (in this process when ``workers`` is 1).

    Each worker gets ``threads`` torch threads (default: the cores shared out among the workers).
    """

    ships_inputs = False  # the workers share this machine's disk

    def __init__(self, workers: int = 1, threads: int | None = None):
        self.workers = max(1, workers)
        self.threads = threads

    def map(self, fn: Callable, jobs: Sequence[list[dict]], **kwargs: Any) -> Iterable:
        if self.workers == 1:
            for job in jobs:
                yield fn(job, threads=self.threads, **kwargs)
            return
        threads = self.threads or max(1, (os.cpu_count() or 1) // self.workers)
        with ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(fn, job, threads=threads, **kwargs) for job in jobs]
            for f in as_completed(futures):
                yield f.result()


def connect_ray(address: str | None = None, runtime_env: dict | None = None) -> Any:
    """The ``ray`` module, connected to the cluster at ``address`` (or a local Ray instance started
    for this process) unless already connected. Joining a cluster, this package's own code is
    shipped with the job, so workers run the caller's version of steerable."""
    ray = require("ray", "ray", "the Ray executor")
    if not ray.is_initialized():
        if runtime_env is None and address is not None:
            runtime_env = {"py_modules": [str(Path(__file__).resolve().parents[1])]}
        ray.init(
            address=address,
            ignore_reinit_error=True,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env=runtime_env,
        )
    return ray


class RayExecutor:
    """Runs as Ray tasks: on a cluster (``address``) or a local Ray instance (``address=None``).

    Workers may be other machines: each job's ``inputs`` go into Ray's object store once per distinct
    value, and results come back to the caller. Joining a cluster, this package's own code is shipped
    with the job (``runtime_env={"py_modules": [...]}``), so workers run the caller's version of
    steerable; its dependencies (torch, ...) must be installed on the workers.
    """

    ships_inputs = True

    def __init__(self, address: str | None = None, num_cpus_per_run: int = 1, runtime_env: dict | None = None):
        self.ray = connect_ray(address, runtime_env)
        self.num_cpus = num_cpus_per_run

    def map(
        self, fn: Callable, jobs: Sequence[list[dict]], inputs: Callable[[list[dict]], Any] | None = None, **kwargs: Any
    ) -> Iterable:
        remote = self.ray.remote(num_cpus=self.num_cpus)(fn)
        shipped: dict[int, Any] = {}  # id of an inputs value -> its object ref

        def ref(job: list[dict]) -> Any:
            assert inputs is not None  # ref is called only when inputs is given
            value = inputs(job)
            if id(value) not in shipped:
                shipped[id(value)] = self.ray.put(value)
            return shipped[id(value)]

        pending = [remote.remote(job, *([ref(job)] if inputs else []), threads=self.num_cpus, **kwargs) for job in jobs]
        while pending:
            done, pending = self.ray.wait(pending, num_returns=1)
            yield self.ray.get(done[0])
