"""The backbone under onnxruntime: exported to ONNX once per model, cached, optionally int8.

The exported graph is the sentence-transformers pipeline after tokenisation (the transformer, then
the model's own pooling and normalisation modules), so it returns the same pooled vector as the
torch model. Exports live in the cache folder under ``onnx/<key>-fp32`` and
``onnx/<key>-int8-<INT8_RECIPE>`` (``key``: the model's weights and modules), each folder written
beside its final place and renamed into it, so a reader sees a whole export or none.

int8 starts from a second export with the attention written out (eager, not fused by torch). For a
BERT-type model onnxruntime's transformer optimiser fuses it into its own ``Attention``,
``SkipLayerNormalization`` and ``BiasGelu`` operators; then the matrix products and attention are
quantised dynamically (weights int8 per output channel, activations quantised on the fly). The
fusions let the quantised attention run as one operator, about 1.3x faster than quantising the
unfused graph; per-channel weights keep the vectors much closer to fp32 than one scale per tensor.
Other models are quantised unfused. Either way the int8 graph's vectors must agree with fp32's on a
few probe texts (mean cosine at least ``MIN_AGREEMENT``), else the export is refused with a one-line
error: dynamic int8 of all-mpnet-base-v2's matrix products gives vectors unrelated to fp32's, fused
or not, per channel or not. ``INT8_RECIPE`` names this recipe in the cache keys of the export and of
the vectors, so vectors of another recipe are never reused.

Dynamic int8 quantises a batch's activations with one scale for the whole batch, so an int8 vector
depends a little on the texts batched with it (by up to about 0.06 in one coordinate of a unit
vector on CLINC; its cosine with torch's is about 0.99 either way). The batching is fixed (texts
sorted by token count, cut at ``BATCH_TOKENS`` padded tokens) and part of the int8 cache key, so the
same texts encoded in one call give the same vectors; a text encoded in another call, beside other
texts, may differ by that much.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..atomic import atomic_write_json, read_json
from ..extras import require
from .batching import BATCH_TOKENS, WINDOW, side_by_side, token_batches

RUNTIMES = ("torch", "onnx", "onnx-int8")
OPSET = 17
INT8_RECIPE = "fused2"  # eager export, BERT fusions where they hold, MatMul (+ Attention) int8 per channel
_META = "steerable-onnx.json"


def _require_onnx() -> None:
    require("onnx", "onnx", "the onnx runtimes")  # torch's exporter needs it
    require("onnxruntime", "onnx", "the onnx runtimes")


def _atomic_dir(target: Path, build: Callable[[Path], None]) -> Path:
    """Build a folder in a temporary sibling, then rename it to ``target`` (unless another process
    got there first: its folder is as good as ours)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        build(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / _META).exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def embedding_dim(st: Any) -> int:
    """A SentenceTransformer's output dimension (the method's name changed across versions)."""
    get = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
    return int(get())


def _export(st: Any, out: Path, *, eager: bool = False) -> None:
    """Write ``model.onnx`` (input ids, mask[, token types] -> pooled vector), the tokenizer and
    the tokenisation settings of a loaded SentenceTransformer. ``eager``: attention written out as
    matrix products and a softmax, the form onnxruntime's optimiser fuses."""
    import torch

    first, rest = st[0], list(st)[1:]
    if not hasattr(first, "auto_model") or not hasattr(first, "tokenizer"):
        raise ValueError(f"the onnx runtimes export a transformer backbone; {type(first).__name__} is not one")
    if eager:
        first.auto_model.set_attn_implementation("eager")
    tokenizer = first.tokenizer
    inputs = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = first.auto_model
            self.rest = torch.nn.ModuleList(rest)

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            kw = dict(zip(inputs, args))
            hidden = self.transformer(**kw, return_dict=True).last_hidden_state
            features = {"token_embeddings": hidden, "attention_mask": kw["attention_mask"]}
            for module in self.rest:
                features = module(features)
            return features["sentence_embedding"]

    sample = tokenizer(
        ["a short text", "and a somewhat longer second text to pad the first"], padding=True, return_tensors="pt"
    )
    axes = {n: {0: "batch", 1: "tokens"} for n in inputs} | {"sentence_embedding": {0: "batch"}}
    model = Pipeline().eval()
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about shape checks it freezes; they hold for every batch (mask given).
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*aten::index.*")
        # The TorchScript exporter, on purpose: the torch.export one needs onnxscript besides onnx.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            tuple(sample[n] for n in inputs),
            str(out / "model.onnx"),
            input_names=inputs,
            output_names=["sentence_embedding"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    tokenizer.save_pretrained(str(out))
    config = first.auto_model.config
    atomic_write_json(
        out / _META,
        {
            "inputs": inputs,
            "max_seq_length": st.max_seq_length,
            "do_lower_case": bool(getattr(first, "do_lower_case", False)),
            "dim": embedding_dim(st),
            "opset": OPSET,
            "eager": eager,
            "model_type": config.model_type,
            "num_heads": getattr(config, "num_attention_heads", 0),
            "hidden_size": getattr(config, "hidden_size", 0),
            "int8": False,
            "torch": torch.__version__,
        },
    )


FUSED_MODEL_TYPES = ("bert",)  # the graphs onnxruntime's BERT fusions are known to read correctly
_PROBE = [
    "how do i reset my password",
    "book a table for two at an italian place tonight",
    "The committee will meet again next week to review the budget and the hiring plan.",
]
MIN_AGREEMENT = 0.98  # mean cosine with the fp32 export on _PROBE: below it, fusion is not used, and
# an unfused int8 graph below it is refused


def _agreement(reference: Path, candidate: Path, folder: Path, meta: dict) -> float:
    """Mean cosine between two graphs' vectors for a few probe texts."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    enc = AutoTokenizer.from_pretrained(str(folder))(_PROBE, padding=True, return_tensors="np")
    feed = {n: enc[n].astype(np.int64) for n in meta["inputs"]}
    a, b = (
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, feed)[0]
        for p in (reference, candidate)
    )
    return float(np.mean((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))


def _quantize(fp32: Path, out: Path) -> None:
    """int8 of an eager fp32 export (its tokenizer and settings copied along): fused by onnxruntime's
    transformer optimiser, then quantised, for the model types in FUSED_MODEL_TYPES whose fused
    result agrees with fp32 on probe texts; the unfused graph's matrix products quantised otherwise."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    meta = read_json(fp32 / _META)
    for f in fp32.iterdir():
        if f.name != "model.onnx":
            shutil.copy2(f, out / f.name)
    target, fusions, agreement = out / "model.onnx", {}, 1.0
    if meta["model_type"] in FUSED_MODEL_TYPES:
        fused = out / "fused.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimized = optimize_model(
                str(fp32 / "model.onnx"),
                model_type="bert",
                num_heads=meta["num_heads"],
                hidden_size=meta["hidden_size"],
                opt_level=1,
            )
        fusions = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
        optimized.save_model_to_file(str(fused))
        # the fused operators are onnxruntime's own, which the quantiser cannot type: they output float
        quantize_dynamic(
            str(fused),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Attention"],
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        fused.unlink()
        agreement = _agreement(fp32 / "model.onnx", target, out, meta)
        if agreement < MIN_AGREEMENT:
            fusions = {}
    if not fusions:
        quantize_dynamic(
            str(fp32 / "model.onnx"),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
        agreement = _agreement(fp32 / "model.onnx", target, out, meta)
    if agreement < MIN_AGREEMENT:
        raise ValueError(
            f"onnx-int8: dynamic int8 quantisation breaks this {meta['model_type']} model (its vectors' "
            f"mean cosine with fp32's is {agreement:.2f} on probe texts); use --runtime onnx"
        )
    atomic_write_json(
        out / _META, meta | {"int8": True, "recipe": INT8_RECIPE, "fusions": fusions, "agreement": agreement}
    )


def ensure_export(load_model: Callable[[], object], key: str, root: Path, *, int8: bool = False) -> Path:
    """The export folder of a model (made on first use): ``load_model()`` returns its
    SentenceTransformer, called only when the fp32 export does not exist yet."""
    _require_onnx()
    base = Path(root) / "onnx"
    q = base / f"{key}-int8-{INT8_RECIPE}"
    if int8 and (q / _META).exists():
        return q
    fp32 = base / (f"{key}-eager-fp32" if int8 else f"{key}-fp32")
    if not (fp32 / _META).exists():
        _atomic_dir(fp32, lambda tmp: _export(load_model(), tmp, eager=int8))
    if not int8:
        return fp32
    _atomic_dir(q, lambda tmp: _quantize(fp32, tmp))
    return q


class OnnxEncoder:
    """Pooled vectors from an export folder, with onnxruntime on the CPU.

    Batched as :mod:`steerable.batching` says: by token count, and with ``threads`` (> 1) that many
    batches at once, one thread each (one session, run concurrently; the main thread tokenises
    ahead). Vectors come back in the input order. ``max_length`` overrides the model's maximum
    sequence length.
    """

    def __init__(self, folder: str | Path, *, max_length: int | None = None, threads: int | None = None):
        _require_onnx()
        import onnxruntime as ort
        from transformers import AutoTokenizer

        self.folder = Path(folder)
        self.meta = read_json(self.folder / _META)
        self.max_length = max_length or self.meta["max_seq_length"]
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        self.workers = max(1, threads or 1)
        self.batch_tokens = BATCH_TOKENS
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = 1  # the parallelism is across batches
            opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.folder / "model.onnx"), opts, providers=["CPUExecutionProvider"])

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    def batches(self, texts: Sequence[str], batch_size: int = 64) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """``(rows, feed)`` pairs covering ``texts``, batched as :mod:`steerable.batching` says."""
        for w in range(0, len(texts), WINDOW):
            ids = self.tokenizer(texts[w : w + WINDOW], truncation="longest_first", max_length=self.max_length)
            lengths = np.array([len(x) for x in ids["input_ids"]])
            for rows in token_batches(lengths, batch_size, self.batch_tokens):
                padded = self.tokenizer.pad({k: [ids[k][i] for i in rows] for k in ids.keys()}, return_tensors="np")
                yield w + rows, {k: padded[k].astype(np.int64) for k in self.meta["inputs"]}

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        texts = [t.lower() for t in texts] if self.meta.get("do_lower_case") else list(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)

        def job(rows: np.ndarray, feed: dict) -> Callable[[], None]:
            def run() -> None:
                out[rows] = self.session.run(["sentence_embedding"], feed)[0]

            return run

        side_by_side((job(rows, feed) for rows, feed in self.batches(texts, batch_size)), self.workers)
        return out
