"""steerable.runs.record: the typed run record, read and written in one place."""

import json

import pytest

from steerable.runs import SCHEMA_VERSION, ResultsStore, RunRecord

RECORD = {
    "run_id": "tiny__v5__s1__abcd1234", "dataset": "tiny", "method": "v5", "seed": 1,
    "backbone": "m", "head": "mlp", "spec": {"max_test": 20}, "dataset_stats": {"test": 27},
    "level_names": ["l0", "l1"],
    "metrics": {"standard": {"protocol": {"name": "standard"}, "dims": [8, 16],
                             "accuracy": {"l0": {"8": 0.9, "16": 0.8}, "l1": {"8": 0.5, "16": 0.7}},
                             "steerability_score": 0.3}},
    "retrieval": {"recall@10/l1/16": 0.6}, "history": {"best_epoch": 1}, "seconds": {"train": 1.0},
}


def test_a_record_without_a_schema_version_reads_as_the_current_one_and_round_trips(tmp_path):
    r = RunRecord.from_dict(RECORD)  # version 1: no open_set, which version 2 added
    assert r.schema_version == SCHEMA_VERSION == 2 and r.probe == {} and r.cost == {} and r.open_set == {}
    assert r.unseen is None and r.split == "test"
    assert r.value("standard", "steerability_score") == 0.3 and r.value("paper", "x") is None
    assert r.accuracy("standard", "l1") == 0.7 and r.accuracy("standard", "l0", 0) == 0.9
    assert r.n_test == 20 and r.dims() == [8, 16]
    store = ResultsStore(tmp_path)
    store.add(r)
    on_disk = json.loads((tmp_path / "records" / f"{r.run_id}.json").read_text())
    assert on_disk == RECORD | {"probe": {}, "cost": {}, "open_set": {}, "geometry": {}, "environment": {},
                             "schema_version": 2}
    assert store.records() == [r] and store.get(r.run_id) == r
    assert store.has(r.run_id) and not store.has(r.run_id, require=("probe",))


def test_bad_records_are_refused_with_their_source():
    with pytest.raises(ValueError, match=r"^x.json: not a run record \(missing metrics\)$"):
        RunRecord.from_dict({k: v for k, v in RECORD.items() if k != "metrics"}, source="x.json")
    with pytest.raises(ValueError, match="schema version 3 is newer than this steerable reads"):
        RunRecord.from_dict(RECORD | {"schema_version": 3}, source="x.json")


def test_a_record_names_its_method_as_runs_do_now():
    """A setting written out when it was not the default reads bare once it is (the run id keeps it)."""
    r = RunRecord.from_dict(RECORD | {"run_id": "tiny__adversarial@1__s1__abcd1234", "method": "adversarial@1"})
    assert r.method == "adversarial" and r.run_id == "tiny__adversarial@1__s1__abcd1234"
    assert RunRecord.from_dict(RECORD | {"method": "dial0.5"}).method == "dial@0.5"
    assert RunRecord.from_dict(RECORD | {"method": "my_method"}).method == "my_method"
