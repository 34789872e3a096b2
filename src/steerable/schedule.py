"""Supervision as data: which prefix lengths are trained on which hierarchy levels.

A :class:`Schedule` is a list of :class:`Term` s. Each term has a distribution over prefix lengths
``j = 1..num_blocks`` (in blocks) and a table ``levels[j - 1][k]``: the weight of level ``k``'s loss
when the prefix has ``j`` blocks. With ``sample=True`` every example draws its own ``j`` from the
distribution (per example, not per batch); with ``sample=False`` every ``j`` is trained, weighted by
its probability. V5, MRL and the ablations are presets; users can write their own as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

METHOD_NAMES = ("v5", "mrl", "inverted", "no_prefix", "uhmt", "flat")
FULL_WEIGHT, PREFIX_WEIGHT = 1.0, 0.6


@dataclass(frozen=True)
class Term:
    """One loss term: a prefix-length distribution and the level weights at each length."""

    probs: tuple[float, ...]
    levels: tuple[tuple[float, ...], ...]
    weight: float = 1.0
    sample: bool = False
    block_dropout: bool = False

    def __post_init__(self):
        if len(self.levels) != len(self.probs):
            raise ValueError(f"levels has {len(self.levels)} rows but probs has {len(self.probs)}")
        if any(p < 0 for p in self.probs) or abs(sum(self.probs) - 1) > 1e-6:
            raise ValueError(f"probs must be non-negative and sum to 1, got {list(self.probs)}")
        if len({len(r) for r in self.levels}) != 1:
            raise ValueError("every row of levels must have one weight per level")
        if any(w < 0 for r in self.levels for w in r):
            raise ValueError("level weights must be non-negative")

    @property
    def num_blocks(self) -> int:
        return len(self.probs)

    @property
    def num_levels(self) -> int:
        return len(self.levels[0])


@dataclass(frozen=True)
class Schedule:
    """A named list of terms plus the block-dropout keep probabilities of terms that use it."""

    name: str
    terms: tuple[Term, ...]
    block_keep: tuple[float, ...] = field(default=())

    def __post_init__(self):
        if not self.terms:
            raise ValueError(f"schedule {self.name!r} has no terms")
        shapes = {(t.num_blocks, t.num_levels) for t in self.terms}
        if len(shapes) != 1:
            raise ValueError(f"schedule {self.name!r}: terms disagree on blocks/levels: {sorted(shapes)}")
        if self.block_keep and len(self.block_keep) != self.num_blocks:
            raise ValueError(f"block_keep needs {self.num_blocks} values, got {len(self.block_keep)}")

    @property
    def num_blocks(self) -> int:
        return self.terms[0].num_blocks

    @property
    def num_levels(self) -> int:
        return self.terms[0].num_levels

    def supervised_levels(self) -> list[int]:
        return sorted({k for t in self.terms for row in t.levels for k, w in enumerate(row) if w > 0})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Schedule":
        terms = tuple(
            Term(probs=tuple(t["probs"]), levels=tuple(tuple(r) for r in t["levels"]),
                 weight=t.get("weight", 1.0), sample=t.get("sample", False),
                 block_dropout=t.get("block_dropout", False))
            for t in d["terms"]
        )
        return cls(d.get("name", "custom"), terms, tuple(d.get("block_keep", ())))


# ------------------------------------------------------------------------------------- presets

def prefix_probs(num_blocks: int) -> tuple[float, ...]:
    """Linearly decreasing prefix-length distribution: (0.4, 0.3, 0.2, 0.1) for four blocks."""
    total = num_blocks * (num_blocks + 1) / 2
    return tuple((num_blocks - i) / total for i in range(num_blocks))


def block_keep(num_blocks: int) -> tuple[float, ...]:
    """Block-dropout keep probabilities: (0.95, 0.9, 0.8, 0.7) for four blocks as in the original."""
    if num_blocks == 4:
        return (0.95, 0.9, 0.8, 0.7)
    return tuple(round(0.95 - 0.25 * i / (num_blocks - 1), 4) for i in range(num_blocks))


def onehot(i: int, n: int, w: float = 1.0) -> tuple[float, ...]:
    return tuple(w if k == i else 0.0 for k in range(n))


def prefix_level(j: int, num_levels: int) -> int:
    """The coarser level a prefix of ``j`` blocks serves: block j -> level j - 1, capped below the finest.

    Two levels: every prefix -> L0 (as V5 was coded). Three levels: j=1 -> L0, j>=2 -> L1, while the
    full vector (trained by the full term) serves L2.
    """
    return min(j - 1, num_levels - 2)


def _full(levels: tuple[float, ...], nb: int) -> Term:
    return Term(onehot(nb - 1, nb), tuple(levels for _ in range(nb)), FULL_WEIGHT, block_dropout=True)


def v5(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """Hierarchy-aligned: full -> finest level; a sampled prefix -> the coarse level it serves."""
    nb, L = num_blocks, num_levels
    prefix = tuple(onehot(prefix_level(j, L), L) for j in range(1, nb + 1))
    return Schedule("v5", (_full(onehot(L - 1, L), nb),
                           Term(prefix_probs(nb), prefix, PREFIX_WEIGHT, sample=True)), block_keep(nb))


def mrl(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """Matryoshka: every prefix length on the finest level, weighted 0.4, 0.3, 0.2, 0.1."""
    nb, L = num_blocks, num_levels
    fine = onehot(L - 1, L)
    return Schedule("mrl", (_full(fine, nb),
                            Term(prefix_probs(nb), tuple(fine for _ in range(nb)), PREFIX_WEIGHT)),
                    block_keep(nb))


def inverted(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """Ablation: full -> coarsest level, sampled prefix -> finest level (V5 with the levels swapped)."""
    nb, L = num_blocks, num_levels
    return Schedule("inverted", (_full(onehot(0, L), nb),
                                 Term(prefix_probs(nb), tuple(onehot(L - 1, L) for _ in range(nb)),
                                      PREFIX_WEIGHT, sample=True)), block_keep(nb))


def no_prefix(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """Ablation: only the full embedding, on the finest level."""
    return Schedule("no_prefix", (_full(onehot(num_levels - 1, num_levels), num_blocks),),
                    block_keep(num_blocks))


def uhmt(num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    """Ablation: every path trained on an equal mix of all levels (hierarchy-aware, not aligned)."""
    nb, L = num_blocks, num_levels
    mix = tuple(1.0 / L for _ in range(L))
    return Schedule("uhmt", (_full(mix, nb),
                             Term(prefix_probs(nb), tuple(mix for _ in range(nb)), PREFIX_WEIGHT,
                                  sample=True)), block_keep(nb))


PRESETS: dict[str, Callable[[int, int], Schedule]] = {
    "v5": v5, "mrl": mrl, "inverted": inverted, "no_prefix": no_prefix, "uhmt": uhmt,
}


def preset(name: str, num_levels: int = 2, num_blocks: int = 4) -> Schedule:
    key = name.lower().replace("-", "_")
    if key not in PRESETS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHOD_NAMES)}")
    return PRESETS[key](num_levels, num_blocks)
