"""How the backbone batches texts on the CPU: by token count, and batches side by side.

Texts are sorted by token count (longest first) and cut into batches of at most ``BATCH_TOKENS``
padded tokens, so a long text runs alone and short ones run many together; then as many batches
run at once as there are threads, each on one thread. On a small CPU that beats splitting every
operator of one batch over all threads: the operators of a short-text batch are too small to split
well, and a long text's activations stay in cache. Both runtimes (torch on the CPU, onnxruntime)
batch this way.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

import numpy as np

BATCH_TOKENS = 256  # padded tokens per batch at most (a longer text runs alone): fastest on 2 cores
WINDOW = 8192  # texts tokenised, sorted and batched together


def token_batches(lengths: np.ndarray, batch_size: int, batch_tokens: int = BATCH_TOKENS) -> Iterator[np.ndarray]:
    """Row indices of each batch: longest first, at most ``batch_size`` texts and ``batch_tokens``
    padded tokens (one text longer than that alone)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    start = 0
    while start < len(order):
        n = max(1, min(batch_size, batch_tokens // max(1, int(lengths[order[start]]))))
        yield order[start : start + n]
        start += n


def side_by_side(jobs: Iterable[Callable[[], None]], workers: int) -> None:
    """Run ``jobs`` on ``workers`` threads (the kernels release the GIL), a bounded number queued at
    a time so memory stays flat however many there are; re-raises the first failure."""
    if workers <= 1:
        for job in jobs:
            job()
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: list = []
        for job in jobs:
            pending.append(pool.submit(job))
            if len(pending) >= 2 * workers:
                pending.pop(0).result()
        for f in pending:
            f.result()
