"""steerable.runs.record: the typed run record, read and written in one place."""

import json

import pytest

from steerable.runs import SCHEMA_VERSION, ResultsStore, RunRecord

BLOCK = {
    "protocol": {"name": "standard", "k": 5, "n": None, "seed": 0},
    "dims": [8, 16],
    "accuracy": {"l0": {"8": 0.9, "16": 0.8}, "l1": {"8": 0.5, "16": 0.7}},
    "short_coarse": 0.9,
    "full_fine": 0.7,
    "specialization_gap": 0.4,
    "coarse_gain": 0.1,
    "fine_gain": 0.2,
    "steerability_score": 0.3,
    "control_auc": 0.1,
}
RECORD = {
    "run_id": "tiny__v5__s1__abcd1234",
    "dataset": "tiny",
    "method": "v5",
    "seed": 1,
    "backbone": "m",
    "head": "mlp",
    "spec": {"max_test": 20},
    "dataset_stats": {"test": 27},
    "level_names": ["l0", "l1"],
    "metrics": {"standard": BLOCK},
    "retrieval": {"recall@10/l1/16": 0.6},
    "history": {"best_epoch": 1},
    "seconds": {"train": 1.0},
}
OPEN_SET_V2 = {  # as version 2 wrote it before the draw's class names and the clustering were kept
    **{k: v for k, v in BLOCK.items() if k != "protocol"},
    "unseen": "coarse:1",
    "drawn": "coarse:1",
    "seed": 1,
    "queries": 9,
    "pool": 27,
    "k": 5,
    "held_out": {"l0": 1, "l1": 3},
}


def test_a_record_without_a_schema_version_reads_as_the_current_one_and_round_trips(tmp_path):
    r = RunRecord.from_dict(RECORD)  # version 1: no open_set, which version 2 added
    assert r.schema_version == SCHEMA_VERSION == 3 and r.probe is None and r.cost == {} and r.open_set is None
    assert r.unseen is None and r.split == "test"
    assert r.value("standard", "steerability_score") == 0.3 and r.value("paper", "x") is None
    assert r.accuracy("standard", "l1") == 0.7 and r.accuracy("standard", "l0", 0) == 0.9
    assert r.n_test == 20 and r.dims() == [8, 16]
    store = ResultsStore(tmp_path)
    store.add(r)
    on_disk = json.loads((tmp_path / "records" / f"{r.run_id}.json").read_text())
    assert on_disk == RECORD | {
        "probe": {},
        "cost": {},
        "open_set": {},
        "geometry": {},
        "environment": {},
        "schema_version": 3,
    }
    assert store.records() == [r] and store.get(r.run_id) == r
    assert store.has(r.run_id) and not store.has(r.run_id, require=("probe",))


def test_bad_records_are_refused_with_their_source():
    with pytest.raises(ValueError, match=r"^x.json: not a run record \(missing metrics\)$"):
        RunRecord.from_dict({k: v for k, v in RECORD.items() if k != "metrics"}, source="x.json")
    with pytest.raises(ValueError, match="schema version 4 is newer than this steerable reads"):
        RunRecord.from_dict(RECORD | {"schema_version": 4}, source="x.json")
    short = {k: v for k, v in BLOCK.items() if k != "control_auc"}
    with pytest.raises(ValueError, match=r"^x.json: metrics.standard: no control_auc$"):
        RunRecord.from_dict(RECORD | {"metrics": {"standard": short}}, source="x.json")
    with pytest.raises(ValueError, match=r"^x.json: open_set: no queries$"):
        RunRecord.from_dict(
            RECORD | {"open_set": {k: v for k, v in OPEN_SET_V2.items() if k != "queries"}}, source="x.json"
        )


def test_sections_read_into_their_types_and_a_version_2_section_reads_with_what_it_lacks_empty():
    r = RunRecord.from_dict(
        RECORD | {"schema_version": 2, "open_set": OPEN_SET_V2, "probe": {"dim": 8, "accuracy": {"l0": 1.0, "l1": 0.4}}}
    )
    block = r.metrics["standard"]
    assert block.protocol.k == 5 and block.protocol.n is None and block.at("l1", 0) == 0.5
    assert block.metric("control_auc") == 0.1
    with pytest.raises(KeyError, match="no steerability metric 'accuracy'"):
        block.metric("accuracy")
    assert r.open_set is not None and r.open_set.queries == 9 and r.open_set.held_out_classes == {}
    assert r.open_set.at("l0", 0) == 0.9 and r.open_set.clustering == {}
    assert r.probe is not None and r.probe.rank is None and r.probe.coarse_only == {}
    assert r.retrieval.recall(10, "l1", 16) == 0.6 and r.retrieval.ndcg(16) is None
    assert RunRecord.from_dict(r.to_dict()) == r  # the written form reads back the same


def test_a_record_names_its_method_as_runs_do_now():
    """A setting written out when it was not the default reads bare once it is (the run id keeps it)."""
    r = RunRecord.from_dict(RECORD | {"run_id": "tiny__adversarial@1__s1__abcd1234", "method": "adversarial@1"})
    assert r.method == "adversarial" and r.run_id == "tiny__adversarial@1__s1__abcd1234"
    assert RunRecord.from_dict(RECORD | {"method": "dial0.5"}).method == "dial@0.5"
    assert RunRecord.from_dict(RECORD | {"method": "my_method"}).method == "my_method"
