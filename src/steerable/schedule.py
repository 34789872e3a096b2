"""Supervision as data: which prefix lengths are trained on which hierarchy levels.

A :class:`Schedule` is a list of :class:`Term` s. Each term has a distribution over prefix lengths
``j = 1..num_blocks`` (in blocks) and a table ``levels[j - 1][k]``: the weight of level ``k``'s loss
when the prefix has ``j`` blocks. With ``sample=True`` every example draws its own ``j`` from the
distribution (per example, not per batch); with ``sample=False`` every ``j`` is trained, weighted by
its probability. The methods (V5, MRL, the ablations, ...) are values of this type, see
:mod:`steerable.methods`; users can write their own as JSON.

Beyond which prefix serves which level, a term can say *how* it is trained:

- ``loss``: a loss kind of :data:`LOSS_NAMES` (implemented in :mod:`steerable.training.terms`):
  ``"seed"`` (InfoNCE + margin + cross-entropy, as the original code), ``"supcon"`` (supervised
  contrastive + cross-entropy), ``"posterior"`` (negative log-likelihood of each level under the
  head's fine posterior summed up the hierarchy; needs a head with the posterior option) or
  ``"distill"`` (the prefix learns to rank the batch as a teacher does; no labels, so ``levels`` is
  unused). ``teacher`` names the teacher: ``"full"`` (the head's own intact full vector) or
  ``"backbone"`` (the backbone's vector, the head's input: the prefix keeps the backbone's
  neighbourhoods, which hold for classes never trained on). ``sign_slope`` makes the student the
  prefix's soft signs (``tanh`` of the scaled prefix), so that its sign bits, a binary first stage of
  search, rank the batch as the teacher does.
- ``start``: the term embeds blocks ``start .. j-1`` only (a suffix window; 0 = the whole prefix).
- ``grad``: a gradient scale per block (0 = the term's gradient does not reach that block, as a
  stop-gradient; 1 = untouched; negative = gradient reversal: that block is trained to *raise* the
  term's loss, an adversary). ``(0, 1, 1, 1)`` trains the full vector without moving block 1.
- ``within``: contrast only against rows that share the anchor's label at this level (the suffix
  learns the fine label inside its coarse class).
- ``sibling_weight``: negatives that share the anchor's label one level up weigh this much in the
  SupCon denominator (hierarchical SupCon).

A schedule also carries ``head_options`` (the head's ``segments`` / ``posterior`` options, see
:mod:`steerable.heads`), ``head`` (a head kind the method needs, e.g. ``"identity"`` for the raw
backbone; None = any) and a ``recipe``: the training settings the method was designed with (epochs,
batch size, learning rate, lr schedule, batch sampler), used unless the user overrides them. A
schedule with no terms trains nothing: the head is used as built.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# The loss kinds a term may name, and a distill term's teachers: names only, so that reading a schedule
# (a run record) needs no torch; steerable.training.terms implements each.
LOSS_NAMES = ("seed", "supcon", "posterior", "distill")
TEACHERS = ("full", "backbone")


@dataclass(frozen=True)
class Term:
    """One loss term: a prefix-length distribution and the level weights at each length."""

    probs: tuple[float, ...]
    levels: tuple[tuple[float, ...], ...]
    weight: float = 1.0
    sample: bool = False
    block_dropout: bool = False
    loss: str = "seed"
    start: int = 0
    grad: tuple[float, ...] = ()
    within: int | None = None
    sibling_weight: float = 1.0
    temperature: float | None = None  # None: the training config's
    ce_weight: float | None = None  # None: the training config's
    teacher: str = "full"  # a distill term's teacher: "full" (the intact full vector) or "backbone"
    sign_slope: float | None = None  # a distill term's student as soft signs, tanh(slope * sqrt(d) * e); None: e

    def __post_init__(self) -> None:
        object.__setattr__(self, "probs", tuple(float(p) for p in self.probs))
        object.__setattr__(self, "levels", tuple(tuple(float(w) for w in r) for r in self.levels))
        object.__setattr__(self, "grad", tuple(float(g) for g in self.grad))
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"unknown loss {self.loss!r}; choose from {', '.join(LOSS_NAMES)}")
        if self.teacher not in TEACHERS:
            raise ValueError(f"unknown teacher {self.teacher!r}; choose from {', '.join(TEACHERS)}")
        if self.teacher != "full" and self.loss != "distill":
            raise ValueError(f"a teacher is for a distill term, not a {self.loss!r} one")
        if self.sign_slope is not None and (self.loss != "distill" or not self.sign_slope > 0):
            raise ValueError(f"sign_slope is a positive slope of a distill term, got {self.sign_slope} ({self.loss})")
        if self.grad and len(self.grad) != len(self.probs):
            raise ValueError(f"grad needs one scale per block ({len(self.probs)}), got {len(self.grad)}")
        if any(not -1 <= g <= 1 for g in self.grad):
            raise ValueError(f"grad scales must be in [-1, 1], got {list(self.grad)}")
        if not 0 <= self.start < len(self.probs) or any(p > 0 for p in self.probs[: self.start]):
            raise ValueError(f"start={self.start}: every trained prefix must be longer than start")
        if self.within is not None and not 0 <= self.within < len(self.levels[0]):
            raise ValueError(f"within must be a level index, got {self.within}")
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
    head_options: dict = field(default_factory=dict)
    recipe: dict = field(default_factory=dict)
    head: str | None = None

    def __post_init__(self) -> None:
        shapes = {(t.num_blocks, t.num_levels) for t in self.terms}
        if len(shapes) > 1:
            raise ValueError(f"schedule {self.name!r}: terms disagree on blocks/levels: {sorted(shapes)}")
        if self.block_keep and self.terms and len(self.block_keep) != self.num_blocks:
            raise ValueError(f"block_keep needs {self.num_blocks} values, got {len(self.block_keep)}")

    @property
    def trains(self) -> bool:
        """Whether the schedule trains anything (a schedule with no terms uses the head as built)."""
        return bool(self.terms)

    @property
    def num_blocks(self) -> int | None:
        return self.terms[0].num_blocks if self.terms else None

    @property
    def num_levels(self) -> int | None:
        return self.terms[0].num_levels if self.terms else None

    def supervised_levels(self) -> list[int]:
        return sorted({k for t in self.terms for row in t.levels for k, w in enumerate(row) if w > 0})

    def to_dict(self) -> dict:
        out = asdict(self)
        if out["head"] is None:  # the common case: any head; kept out of older configs' shape
            del out["head"]
        for term in out["terms"]:  # likewise the default teacher and plain (not sign-aware) distillation
            if term["teacher"] == "full":
                del term["teacher"]
            if term["sign_slope"] is None:
                del term["sign_slope"]
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "Schedule":
        known = set(Term.__dataclass_fields__)
        terms = []
        for i, t in enumerate(d["terms"]):
            unknown = set(t) - known
            if unknown:
                raise ValueError(f"schedule term {i}: unknown fields {sorted(unknown)}")
            terms.append(Term(**t))
        return cls(
            d.get("name", "custom"),
            tuple(terms),
            tuple(d.get("block_keep", ())),
            dict(d.get("head_options", {})),
            dict(d.get("recipe", {})),
            d.get("head"),
        )


def prefix_level(j: int, num_levels: int) -> int:
    """The coarser level a prefix of ``j`` blocks serves: block j -> level j - 1, capped below the finest.

    Two levels: every prefix -> L0 (as V5 was coded). Three levels: j=1 -> L0, j>=2 -> L1, while the
    full vector (trained by the full term) serves L2.
    """
    return min(j - 1, num_levels - 2)
