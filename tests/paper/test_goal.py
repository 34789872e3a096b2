"""paper/goal.py: the goal's table, the open-set draws and the Pareto figure, from records made by hand."""

from dataclasses import replace

from paper.goal import draws_table, goal_table, write_goal_section
from steerable.report import Results

from test_verdicts import _goal_runs


def _with_draws(records):
    """The open-set records with what their draw held out, as runs record it."""
    for r in records:
        if r.unseen:
            coarse = ["c1", "c2"] if r.unseen.startswith("coarse") else []
            r.open_set = replace(
                r.open_set,
                drawn="coarse:3" if r.seed == 1 and coarse else r.unseen,
                held_out_classes={"l0": coarse, "l1": ["f1", "f2", "f3"]},
                queries=250 + r.seed,
            )
    return records


def test_the_goal_table_puts_closed_set_and_unseen_figures_side_by_side(tmp_path):
    res = Results(_with_draws(_goal_runs()))
    table = goal_table(res)
    gep = next(r for r in table.rows if r[:2] == ["clinc150", "GEP projection"])
    assert gep[2] == "+0.200 ± 0.001" and gep[8] == "79.0 ± 0.1" and gep[9] == "82.0 ± 0.1"
    assert gep[-1] == "5 / 5 / 5"
    mrl = next(r for r in table.rows if r[:2] == ["clinc150", "MRL"])
    assert mrl[8] == "–" and mrl[-1] == "5 / 0 / 0"  # no open-set runs of MRL here


def test_the_draws_table_says_what_each_draw_held_out_and_how_many_texts_it_queried():
    rows = draws_table(Results(_with_draws(_goal_runs()))).rows
    coarse = next(r for r in rows if r[:2] == ["clinc150", "coarse:2"])
    assert coarse[2] == "coarse:3 ×1, coarse:2 ×4" and coarse[3] == 5
    assert coarse[4] == "c1, c2 ×5" and coarse[5] == "251–255"
    fine = next(r for r in rows if r[:2] == ["clinc150", "fine:0.2"])
    assert fine[4] == "3 fine classes ×5"


def test_the_section_writes_its_tables_and_the_pareto_figure(tmp_path):
    md, summary = write_goal_section(Results(_with_draws(_goal_runs())), tmp_path)
    assert all((tmp_path / f"fig10_pareto_{ds}.png").stat().st_size > 10_000 for ds in ("clinc150", "trec"))
    assert (tmp_path / "table10_goal.md").exists() and (tmp_path / "table11_draws.csv").exists()
    assert "![Figure 10 (trec): steerability against reach](fig10_pareto_trec.png)" in md
    assert summary == {"table10_goal": 12, "table11_draws": 6}  # 4 methods x 3 data sets
