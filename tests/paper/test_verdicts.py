"""paper/verdicts.py: every rule of paper/claims.json, on records made by hand, where it holds and where
it fails; a missing run is "not run" or "not confirmed", never replaced."""

import pytest

from paper.verdicts import FAILS, HOLDS, NOT_RUN, PARTLY, RULES, confirm, judge, load_claims
from steerable.methods import label
from steerable.report import Results
from steerable.runs import Retrieval, RunRecord

from records import metrics_block, open_set_block, probe_block

SEEDS = (1, 2, 3, 4, 5)
CLAIMS = load_claims()
BY_ID = {c["id"]: c for c in CLAIMS["claims"]}


def record(
    ds,
    method,
    seed,
    *,
    s=0.0,
    sc=0.9,
    ff=0.8,
    rank=64,
    probe=0.5,
    unseen=None,
    coarse_open=None,
    recall=(0.5, 0.5),
    h=2.0,
    protocol="standard",
):
    """A run record with the given S, ShortCoarse, FullFine, prefix rank, fine probe, retrieval recall at
    (64, 256) and, with ``unseen``, an open-set coarse accuracy at 64 dims."""
    block = metrics_block(
        accuracy={"l0": {"64": sc, "256": sc}, "l1": {"64": ff, "256": ff}},
        protocol=protocol,
        steerability_score=s,
        short_coarse=sc,
        full_fine=ff,
    )
    open_set = None
    if unseen:
        open_set = open_set_block(
            accuracy={"l0": {"64": coarse_open, "256": 0.5}, "l1": {"64": 0.1, "256": 0.3}},
            unseen=unseen,
            seed=seed,
            held_out={"l0": 2, "l1": 6},
        )
    return RunRecord(
        f"{ds}/{method}/{seed}/{unseen}",
        ds,
        method,
        seed,
        "m",
        "mlp",
        {"max_test": 2000, "unseen": unseen},
        {"test": 2000, "H1|0": h, "branching1": 3.0},
        ["l0", "l1"],
        {protocol: block},
        probe=probe_block({"l1": probe}, rank=rank),
        retrieval=Retrieval(
            {"recall@10/l1/64": recall[0], "recall@10/l1/256": recall[1], "ndcg@10/64": 0.5, "ndcg@10/256": 0.5}
        ),
        open_set=open_set,
    )


def runs(ds, method, values, **kw):
    """One record per seed; ``values`` maps a field to a number or to a list over the seeds."""
    return [
        record(
            ds,
            method,
            seed,
            **{k: (v[i] if isinstance(v, (list, tuple)) and k != "recall" else v) for k, v in values.items()},
            **kw,
        )
        for i, seed in enumerate(SEEDS)
    ]


JITTER = [0.0, 0.001, -0.001, 0.0005, -0.0005]


def _shift(base, d):
    return [base + d + j for j in JITTER]


def verdict(claim_id, recs, protocol="standard", **overrides):
    claim = BY_ID[claim_id] | overrides
    return judge(claim, Results(recs), CLAIMS, protocol)


def test_every_rule_of_the_claims_file_exists_and_every_rule_is_used():
    assert {c["rule"] for c in CLAIMS["claims"]} == set(RULES)
    assert set(CLAIMS["selection_datasets"]).isdisjoint(CLAIMS["confirmation_datasets"])


def test_equivalence_holds_within_the_margin_and_fails_outside_or_when_noisy():
    base = runs("clinc150", "mrl", {"ff": _shift(0.90, 0)})
    assert verdict("v5_accuracy", base + runs("clinc150", "v5", {"ff": _shift(0.90, 0.0005)}))[0].verdict == HOLDS
    assert verdict("v5_accuracy", base + runs("clinc150", "v5", {"ff": _shift(0.90, -0.006)}))[0].verdict == FAILS
    noisy = [0.90, 0.92, 0.88, 0.91, 0.89]  # no significant difference, and no evidence of equivalence either
    assert verdict("v5_accuracy", base + runs("clinc150", "v5", {"ff": noisy}))[0].verdict == FAILS
    assert verdict("v5_accuracy", base)[0].verdict == NOT_RUN


def test_beats_needs_every_method_above_every_reference():
    recs = (
        runs("trec", "v5", {"ff": 0.8})
        + runs("trec", "mrl", {"ff": 0.81})
        + runs("trec", "flat", {"ff": 0.7})
        + runs("trec", "flat_pca", {"ff": 0.75})
    )
    assert verdict("beat_raw_backbone", recs)[0].verdict == HOLDS
    worse = recs[:10] + runs("trec", "flat", {"ff": 0.7}) + runs("trec", "flat_pca", {"ff": 0.805})
    assert verdict("beat_raw_backbone", worse)[0].verdict == FAILS


def test_greater_is_a_paired_test_holm_corrected_and_names_the_floors():
    recs = (
        runs("clinc150", "v5", {"s": _shift(0.05, 0)})
        + runs("clinc150", "mrl", {"s": _shift(0.0, 0)})
        + runs("clinc150", "flat", {"s": 0.02})
        + runs("clinc150", "coarse_onehot", {"s": 0.8})
    )
    v = verdict("v5_more_steerable", recs)[0]
    assert v.verdict == HOLDS and "floors' S: Flat +0.020, Coarse one-hot +0.800" in v.evidence
    behind = runs("clinc150", "v5", {"s": _shift(0.0, -0.01)}) + recs[5:]
    assert verdict("v5_more_steerable", behind)[0].verdict == FAILS
    flat_ahead = (
        runs("clinc150", "v5", {"s": _shift(0.05, 0)})
        + runs("clinc150", "flat", {"s": 0.06})
        + runs("clinc150", "flat_pca", {"s": 0.01})
    )
    assert verdict("v5_above_raw_backbone", flat_ahead)[0].verdict == FAILS


@pytest.mark.parametrize("v5,mrl,expected", [(0.12, 0.01, HOLDS), (0.05, 0.0, PARTLY), (0.01, 0.0, FAILS)])
def test_magnitude(v5, mrl, expected):
    recs = runs("clinc150", "v5", {"s": v5}) + runs("clinc150", "mrl", {"s": mrl})
    assert verdict("clinc_magnitude", recs)[0].verdict == expected


def test_thresholds_per_data_set():
    recs = runs("clinc150", "inverted", {"s": -0.08}) + runs("trec", "inverted", {"s": -0.01})
    clinc, trec = verdict("inverted_flips", recs)
    assert (clinc.where, clinc.verdict, trec.where, trec.verdict) == ("clinc150", HOLDS, "trec", PARTLY)
    clinc, trec = verdict("no_prefix_zero", runs("trec", "no_prefix", {"s": 0.03}))
    assert (clinc.verdict, trec.verdict) == (NOT_RUN, FAILS)  # a named data set without runs reads "not run"
    assert verdict("clinc_short_coarse", runs("clinc150", "v5", {"sc": 0.95}))[0].verdict == PARTLY


def test_recall_loss_and_complexity():
    recs = runs("trec", "v5", {"recall": (0.9, 1.0)}) + runs("trec", "mrl", {"recall": (0.8, 1.0)})
    assert verdict("recall_loss", recs)[0].verdict == HOLDS
    recs = runs("trec", "v5", {"recall": (0.7, 1.0)}) + runs("trec", "mrl", {"recall": (0.8, 1.0)})
    assert verdict("recall_loss", recs)[0].verdict == FAILS

    def complexity(gains):
        out = []
        for i, (ds, gain) in enumerate(zip("abcde", gains)):  # data set i has H(L1|L0) = i
            out += runs(ds, "v5", {"s": gain}, h=float(i)) + runs(ds, "mrl", {"s": 0.0}, h=float(i))
        return out

    assert verdict("complexity", complexity([0, 0.01, 0.02, 0.03, 0.04]))[0].verdict == HOLDS  # ρ = 1
    assert verdict("complexity", complexity([0, 0.03, 0.01, 0.02, 0.04]))[0].verdict == PARTLY  # ρ = 0.7, p = 0.19
    falling = []
    for i, ds in enumerate(("a", "b", "c")):
        falling += runs(ds, "v5", {"s": -0.01 * i}, h=float(i)) + runs(ds, "mrl", {"s": 0.0}, h=float(i))
    assert verdict("complexity", falling)[0].verdict == FAILS


def _bounded(s, ff_gap, ds="clinc150", method="adversarial", recipe_mrl="mrl_supcon"):
    return (
        runs(ds, method, {"s": s, "sc": _shift(0.95, 0), "ff": _shift(0.90, ff_gap)})
        + runs(ds, "mrl", {"sc": _shift(0.95, 0), "ff": _shift(0.90, 0)})
        + runs(ds, recipe_mrl, {"sc": _shift(0.95, 0), "ff": _shift(0.90, 0)})
        + runs(ds, "heal", {"s": 0.1})
        + runs(ds, "coarse_onehot", {"s": 0.85})
    )


def test_steerable_within_bounds_needs_s_and_non_inferior_accuracies():
    v = verdict("clinc_s_075", _bounded(0.8, 0.0))[0]
    assert v.verdict == HOLDS and v.chosen == ["adversarial"] and "Coarse one-hot +0.850" in v.evidence
    assert verdict("clinc_s_075", _bounded(0.8, -0.01))[0].verdict == FAILS  # FullFine 1 pt below MRL's
    assert verdict("clinc_s_075", _bounded(0.7, 0.0))[0].verdict == FAILS  # S under 0.75
    twice = verdict("s_twice_heal", _bounded(0.25, 0.0, "trec") + _bounded(0.15, 0.0, "20newsgroups"))
    assert [(v.where, v.verdict) for v in twice] == [("trec", HOLDS), ("20newsgroups", FAILS)]


def test_a_claim_is_confirmed_on_the_confirmation_data_sets_for_the_method_it_held_for():
    claim = BY_ID["clinc_s_075"]
    recs = _bounded(0.8, 0.0) + _bounded(0.8, 0.0, "goemotions") + _bounded(0.5, 0.0, "dbpedia_classes_partial")
    res = Results(recs)
    verdicts = judge(claim, res, CLAIMS, "standard")
    confirmed = confirm(claim, verdicts, res, CLAIMS, "standard")
    assert [(v.where, v.verdict) for v in confirmed] == [("goemotions", HOLDS), ("dbpedia_classes_partial", FAILS)]
    missing = confirm(claim, verdicts, Results(_bounded(0.8, 0.0)), CLAIMS, "standard")
    assert [v.verdict for v in missing] == ["not confirmed", "not confirmed"]


def test_full_rank_beats_counts_only_measured_full_rank_prefixes():
    def recs(gap, rank=64):
        out = []
        for ds in ("clinc150", "trec", "20newsgroups"):
            out += runs(ds, "heal", {"s": _shift(0.1, 0)}) + runs(ds, "adversarial", {"s": _shift(0.1, gap)}, rank=rank)
        return out

    assert verdict("full_rank_beats_heal", recs(0.1))[0].verdict == HOLDS
    assert verdict("full_rank_beats_heal", recs(-0.1))[0].verdict == FAILS
    low = verdict("full_rank_beats_heal", recs(0.1, rank=6))[0]
    assert low.verdict == NOT_RUN and "Adversarial (rank 6–6)" in low.evidence


def test_full_rank_beats_lists_the_other_candidates_in_the_claims_order():
    out = []
    for ds in ("clinc150", "trec", "20newsgroups"):
        out += runs(ds, "heal", {"s": _shift(0.1, 0)})
        out += [
            r
            for m, gap in (
                ("separated", 0.01),
                ("successive_balanced", 0.02),
                ("adversarial", 0.3),
                ("adversarial_mrl", 0.01),
            )
            for r in runs(ds, m, {"s": _shift(0.1, gap)})
        ]
    evidence = verdict("full_rank_beats_heal", out)[0].evidence
    others = [label(m) for m in BY_ID["full_rank_beats_heal"]["candidates"] if m != "adversarial"]
    assert evidence.startswith("Adversarial:")
    assert evidence.split("Others win on: ")[1].split(". ")[0] == "; ".join(f"{m} on 3" for m in others)


def test_the_dial_must_rise():
    def recs(slope):
        out = []
        for ds in ("clinc150", "trec"):
            for v in (0.0, 0.25, 0.5, 0.75, 1.0):
                out += runs(ds, f"dial@{v:g}", {"s": slope * v})
        return out

    assert verdict("dial_pareto", recs(0.5))[0].verdict == HOLDS
    assert verdict("dial_pareto", recs(-0.5))[0].verdict == FAILS


def test_the_open_set_goal():
    def recs(gain, probe=0.3, ff_gap=0.0):
        out = []
        for ds in ("clinc150", "trec", "20newsgroups"):
            kw = {"unseen": "coarse:2"}
            out += runs(ds, "adversarial", {"coarse_open": _shift(0.8, gain)}, **kw)
            for ref in ("flat_pca", "mrl", "heal"):
                out += runs(ds, ref, {"coarse_open": _shift(0.8, 0)}, **kw)
            out += runs(ds, "adversarial", {"ff": _shift(0.9, ff_gap)}, probe=probe)
            out += runs(ds, "mrl", {"ff": _shift(0.9, 0)}) + runs(ds, "heal", {}, probe=0.5)
        return out

    assert verdict("open_set_goal", recs(0.05))[0].verdict == HOLDS
    assert verdict("open_set_goal", recs(-0.05))[0].verdict == FAILS
    assert verdict("open_set_goal", recs(0.05, probe=0.6))[0].verdict == FAILS  # leaks more than HEAL
    assert verdict("open_set_goal", recs(0.05, ff_gap=-0.01))[0].verdict == FAILS  # not MRL's accuracy


def test_open_set_greater_needs_every_reference_beaten_significantly_on_every_data_set():
    def recs(gain, on=("goemotions", "dbpedia_classes_partial")):
        out = []
        for ds in ("goemotions", "dbpedia_classes_partial"):
            out += runs(ds, "anchored", {"coarse_open": _shift(0.8, gain if ds in on else 0)}, unseen="coarse:2")
            for ref in ("v5", "mrl"):
                out += runs(ds, ref, {"coarse_open": _shift(0.8, 0)}, unseen="coarse:2")
            out += runs(ds, "anchored", {"coarse_open": _shift(0.5, 0.3)}, unseen="fine:0.2")  # another kind
        return out

    assert verdict("anchored_reach", recs(0.05))[0].verdict == HOLDS
    assert verdict("anchored_reach", recs(0.05, on=("goemotions",)))[0].verdict == PARTLY
    assert verdict("anchored_reach", recs(-0.05))[0].verdict == FAILS
    assert verdict("anchored_reach", recs(0.05)[:5])[0].verdict == NOT_RUN  # no references


def test_the_open_set_goal_is_judged_from_open_set_runs_alone():
    """No closed-set runs: the goal is still judged (here it fails: PCA-64 is ahead), and no candidate
    is compared with itself."""
    from paper.doc import claims_section

    recs = []
    for ds in ("clinc150", "trec", "20newsgroups"):
        for m, acc in (("flat_pca", 0.9), ("mrl", 0.8), ("v5", 0.8), ("heal", 0.5)):
            recs += runs(ds, m, {"coarse_open": _shift(acc, 0)}, unseen="coarse:2")
    line = next(x for x in claims_section(Results(recs), CLAIMS) if "unseen coarse classes beats" in x)
    assert "| standard | **does not hold** |" in line
    assert "Holm across 15 comparisons" in line  # MRL: 2 references, V5: 3, on 3 data sets


def test_the_page_lists_each_verdict_that_changed_since_the_previous_page_and_why():
    """Against a previous page: a verdict that moved under a changed rule gives the rule's recorded
    reason, one that moved under the same rule says so, an unchanged one is not listed, a claim the page
    did not have is new, and a protocol no longer judged says so."""
    from paper.doc import changes_section

    claims = dict(
        CLAIMS,
        claims=[
            BY_ID[i]
            for i in (
                "v5_accuracy",
                "clinc_short_coarse",
                "v5_more_steerable",
                "no_prefix_zero",
                "recall_loss",
                "open_set_goal",
            )
        ],
        previous_page={
            "commit": "abc1234",
            "date": "2026-11-28",
            "verdicts": {
                "v5_accuracy": {"standard": "partly"},  # rule changed 2026-11-29: now holds
                "clinc_short_coarse": {"standard": "partly"},  # rule changed 2026-12-06: now holds
                "v5_more_steerable": {"standard": "partly"},  # same rule: now holds
                "no_prefix_zero": {"standard": {"clinc150": "holds"}},  # unchanged
                "recall_loss": {"paper": "does not hold", "standard": "does not hold"},
            },
        },
    )
    recs = (
        runs("clinc150", "mrl", {"ff": _shift(0.90, 0)})
        + runs("clinc150", "no_prefix", {"s": 0.0})
        + runs("clinc150", "v5", {"ff": _shift(0.90, 0.0005), "sc": 0.97, "s": _shift(0.05, 0)})
    )
    lines = changes_section(Results(recs), claims)
    rows = [x for x in lines if x.startswith("| ") and not x.startswith("| claim")]
    assert "Against the page of abc1234 (2026-11-28)" in lines[2]
    assert rows[0].startswith(
        "| v5_accuracy | standard | partly | holds | rule changed: Holm runs over every "
        "comparison a claim makes, each side of a TOST included; rule changed: a non-significant"
    )
    assert rows[1] == (
        "| clinc_short_coarse | standard: clinc150 | partly | holds | rule changed: means are not "
        "tests: the interval decides |"
    )
    assert rows[2] == "| v5_more_steerable | standard | partly | holds | same rule, other runs |"
    assert rows[3] == "| recall_loss | paper | does not hold | no longer judged | judged under standard only |"
    assert rows[4] == "| open_set_goal | – | – | new claim | not on the previous page |"
    assert len(rows) == 5 and not any("no_prefix_zero" in r for r in rows)
    assert changes_section(Results(recs), dict(CLAIMS, previous_page=None)) == []


# ------------------------------------------- intervals, not means; Holm over every comparison; not judged


def test_equivalence_runs_holm_over_both_sides_of_the_tost():
    """Each side alone passes (p 0.027): one TOST at p < 0.05 held under the earlier rule, but Holm over
    both sides of it does not."""
    base = runs("clinc150", "mrl", {"ff": 0.9})
    v = verdict(
        "v5_accuracy", base + runs("clinc150", "v5", {"ff": [0.9 + d for d in (-0.0052, -0.0026, 0, 0.0026, 0.0052)]})
    )[0]
    assert v.verdict == FAILS and "Holm across 2 one-sided tests" in v.evidence


def test_beats_needs_the_interval_above_not_the_mean():
    noisy = [0.80, 0.84, 0.76, 0.83, 0.78]  # mean 0.802, above Flat's 0.79, but not significantly
    recs = runs("trec", "v5", {"ff": noisy}) + runs("trec", "mrl", {"ff": 0.81})
    recs += runs("trec", "flat", {"ff": 0.79}) + runs("trec", "flat_pca", {"ff": 0.75})
    v = verdict("beat_raw_backbone", recs)[0]
    assert v.verdict == FAILS and "95 % lower bound" in v.evidence


def test_thresholds_and_magnitudes_need_the_interval_beyond_the_bar():
    noisy = [0.96, 0.99, 0.93, 0.98, 0.94]  # mean 0.960 ≥ 0.957, lower bound below it; above 0.90 clearly
    assert verdict("clinc_short_coarse", runs("clinc150", "v5", {"sc": noisy}))[0].verdict == PARTLY
    s = [0.12, 0.20, 0.05, 0.16, 0.07]  # mean 0.12 ≥ 0.10, not significantly; 0.1 above MRL's, significantly
    recs = runs("clinc150", "v5", {"s": s}) + runs("clinc150", "mrl", {"s": _shift(0.01, 0)})
    v = verdict("clinc_magnitude", recs)[0]
    assert v.verdict == PARTLY and "Holm across 4 one-sided tests" in v.evidence


def test_steerable_within_bounds_needs_s_significantly_above_the_bar():
    assert verdict("clinc_s_075", _bounded([0.8, 0.95, 0.6, 0.9, 0.75], 0.0))[0].verdict == FAILS  # mean 0.80
    v = verdict("clinc_s_075", _bounded(0.8, 0.0))[0]
    assert v.verdict == HOLDS and "Holm across 5 one-sided tests (1 candidates)" in v.evidence


def test_holm_covers_the_best_of_choice_among_candidates():
    """Two candidates whose FullFine bound passes at p ≈ 0.03 each: one alone held, chosen among two it
    does not (the choice of the best is part of the family)."""
    ff = [0.9 + d for d in (0.0, -0.0036, 0.0036, -0.0018, 0.0018)]  # non-inferior within 0.5 pt at p ≈ 0.02
    one = _bounded(0.8, 0.0)
    one = [r for r in one if r.method != "adversarial"] + runs(
        "clinc150", "adversarial", {"s": 0.8, "sc": 0.95, "ff": ff}
    )
    alone = verdict("clinc_s_075", one, candidates=["adversarial"])[0]
    two = one + runs("clinc150", "separated", {"s": 0.8, "sc": 0.95, "ff": ff})
    both = verdict("clinc_s_075", two, candidates=["adversarial", "separated"])[0]
    assert alone.verdict == HOLDS and both.verdict != HOLDS


def test_a_data_set_without_runs_leaves_the_claim_not_judged():
    ok = runs("clinc150", "v5", {"ff": 0.8}) + runs("clinc150", "mrl", {"ff": 0.81})
    ok += runs("clinc150", "flat", {"ff": 0.7}) + runs("clinc150", "flat_pca", {"ff": 0.75})
    partial = ok + runs("trec", "v5", {"ff": 0.8}) + runs("trec", "mrl", {"ff": 0.81})  # TREC: no Flat runs
    assert verdict("beat_raw_backbone", ok)[0].verdict == HOLDS
    v = verdict("beat_raw_backbone", partial)[0]
    assert v.verdict == "not judged" and "not run: trec" in v.evidence
    v = verdict(
        "full_rank_beats_heal",
        runs("clinc150", "heal", {"s": _shift(0.1, 0)}) + runs("clinc150", "adversarial", {"s": _shift(0.5, 0)}),
    )[0]
    assert v.verdict == "not judged" and "not run: trec, 20newsgroups" in v.evidence


# ------------------------------------------------------------------------- the goal: steer and generalise


def _goal_runs(ff_gap=0.0, s_gap=0.1, probe=0.3, coarse_gap=-0.01, fine_gap=0.02, datasets=None):
    """A candidate (GEP) against MRL, HEAL and PCA-64 on the three data sets: closed-set runs and open-set
    runs of both kinds."""
    out = []
    for ds in datasets or ("clinc150", "trec", "20newsgroups"):
        out += runs(ds, "gep", {"ff": _shift(0.9, ff_gap), "s": _shift(0.1, s_gap)}, probe=probe)
        out += runs(ds, "mrl", {"ff": _shift(0.9, 0)}) + runs(ds, "heal", {"s": _shift(0.1, 0)}, probe=0.6)
        for kind, gap in (("coarse:2", coarse_gap), ("fine:0.2", fine_gap)):
            out += runs(ds, "gep", {"coarse_open": _shift(0.8, gap)}, unseen=kind)
            out += runs(ds, "flat_pca", {"coarse_open": _shift(0.8, 0)}, unseen=kind)
    return out


@pytest.mark.parametrize(
    "change,condition",
    [
        ({}, None),
        ({"ff_gap": -0.01}, "i"),
        ({"s_gap": -0.05}, "ii"),
        ({"probe": 0.7}, "ii"),
        ({"coarse_gap": -0.05}, "iii"),
        ({"fine_gap": -0.01}, "iv"),
    ],
)
def test_the_goal_needs_all_four_conditions_on_every_data_set(change, condition):
    v = verdict("steer_and_generalise", _goal_runs(**change), candidates=["gep"])[0]
    assert v.verdict == (HOLDS if condition is None else FAILS)
    assert v.evidence.startswith("closest: GEP projection") and "(iii) unseen coarse − Flat (PCA)" in v.evidence
    if condition:  # the evidence says which conditions no candidate met
        assert f"({condition}) none" in v.evidence


def test_the_goal_is_not_judged_without_every_candidate_and_data_set():
    v = verdict("steer_and_generalise", _goal_runs(datasets=("clinc150", "trec")), candidates=["gep"])[0]
    assert v.verdict == "not judged" and "not run: 20newsgroups" in v.evidence
    v = verdict("steer_and_generalise", _goal_runs(), candidates=["gep", "nuisance"])[0]
    assert v.verdict == "not judged" and "runs of Nuisance removal on clinc150" in v.evidence
