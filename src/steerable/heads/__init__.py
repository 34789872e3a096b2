"""Heads: pooled backbone vector -> ``num_blocks`` blocks of ``block_dim`` dims (:class:`Head`, with the
prefix logic and the options every trainable head takes), the trainable ones (:mod:`.trained`) and those
with nothing to train (:mod:`.fitted`); :data:`HEADS` by kind."""

from __future__ import annotations

from .base import PREFIX_MODES, Classifier, Head
from .fitted import IdentityHead, PCAHead, ProjectionHead, RandomSubsetHead
from .trained import FractalHead, LinearHead, MLPHead

HEADS: dict[str, type[Head]] = {
    cls.kind: cls for cls in (FractalHead, IdentityHead, LinearHead, MLPHead, PCAHead, ProjectionHead, RandomSubsetHead)
}


# The default head, by measurement (docs/results.md, "Which head"): as steerable as the fractal head,
# slightly more accurate and several times faster to train.
DEFAULT_HEAD = "mlp"


def build_head(config: dict) -> Head:
    """A head from its :meth:`Head.get_config_dict` output."""
    config = dict(config)
    kind = config.pop("kind")
    if kind not in HEADS:
        raise ValueError(f"unknown head {kind!r}; choose from {sorted(HEADS)}")
    segments, posterior, prefix = (
        config.pop("segments", None),
        config.pop("posterior", None),
        config.pop("prefix", None),
    )
    return HEADS[kind](**config).set_options(segments, posterior, prefix)


__all__ = [
    "Head",
    "Classifier",
    "PREFIX_MODES",
    "IdentityHead",
    "PCAHead",
    "ProjectionHead",
    "RandomSubsetHead",
    "FractalHead",
    "LinearHead",
    "MLPHead",
    "HEADS",
    "DEFAULT_HEAD",
    "build_head",
]
