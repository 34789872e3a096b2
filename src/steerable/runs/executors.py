"""Where the runs of a sweep execute: local worker processes, or Ray tasks."""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Iterable, Sequence


class LocalExecutor:
    """Runs in local worker processes (in this process when ``workers`` is 1).

    Each worker gets ``threads`` torch threads (default: the cores shared out among the workers).
    """

    def __init__(self, workers: int = 1, threads: int | None = None):
        self.workers = max(1, workers)
        self.threads = threads

    def map(self, fn: Callable, jobs: Sequence[dict], **kwargs) -> Iterable:
        if self.workers == 1:
            for job in jobs:
                yield fn(job, threads=self.threads, **kwargs)
            return
        threads = self.threads or max(1, (os.cpu_count() or 1) // self.workers)
        with ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(fn, job, threads=threads, **kwargs) for job in jobs]
            for f in as_completed(futures):
                yield f.result()


class RayExecutor:
    """Runs as Ray tasks: on a cluster (``address``) or a local Ray instance (``address=None``)."""

    def __init__(self, address: str | None = None, num_cpus_per_run: int = 1):
        try:
            import ray  # an optional extra
        except ImportError:
            raise ImportError("the Ray executor needs the 'ray' extra: pip install 'steerable[ray]'") from None
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address, ignore_reinit_error=True, include_dashboard=False,
                     log_to_driver=False)
        self.num_cpus = num_cpus_per_run

    def map(self, fn: Callable, jobs: Sequence[dict], **kwargs) -> Iterable:
        remote = self.ray.remote(num_cpus=self.num_cpus)(fn)
        pending = [remote.remote(job, threads=self.num_cpus, **kwargs) for job in jobs]
        while pending:
            done, pending = self.ray.wait(pending, num_returns=1)
            yield self.ray.get(done[0])
