"""Search: exact ranking, the funnel and adaptive rules, a first stage in sign bits, retrieval metrics,
index backends, and bulk loads of embedding shards into them."""

from .binary import RESCORE, BinaryStage, QuantizedPrefix, Rescored, sign_bits
from .bulk import bulk_load
from .funnel import Exact, Stage, adaptive, funnel
from .index import (
    BACKENDS,
    QUANTIZE,
    EmbeddedIndex,
    SearchIndex,
    build_index,
    check_index_target,
    open_index_folder,
    write_index_folder,
)
from .metrics import evaluate_retrieval, mrr, ndcg_at_k, overlap_at_k, recall_at_k, split_queries
from .pgvector import PgvectorIndex
from .qdrant import QdrantEdgeIndex, QdrantIndex
from .ranking import rank, rerank, top_k

__all__ = [
    "BinaryStage",
    "QuantizedPrefix",
    "RESCORE",
    "Rescored",
    "sign_bits",
    "Exact",
    "Stage",
    "adaptive",
    "funnel",
    "BACKENDS",
    "QUANTIZE",
    "EmbeddedIndex",
    "PgvectorIndex",
    "QdrantIndex",
    "QdrantEdgeIndex",
    "SearchIndex",
    "build_index",
    "check_index_target",
    "open_index_folder",
    "write_index_folder",
    "bulk_load",
    "evaluate_retrieval",
    "mrr",
    "ndcg_at_k",
    "overlap_at_k",
    "recall_at_k",
    "split_queries",
    "rank",
    "rerank",
    "top_k",
]
