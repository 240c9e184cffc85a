"""The reference study's numbers, recomputed from its own files in ../shared/data/paper."""

from __future__ import annotations

import pytest

from neatpipe.analysis.iterations import (
    early_stopping_table,
    error_fix_table,
    read_study_trajectories,
    regression_table,
)
from neatpipe.analysis.paper import (
    EARLY_STOPPING_FACTS,
    PAPER_NET_PER_ITERATION,
    TABLE2_COMPARISONS,
    Comparison,
    net_per_iteration,
    read_main_results,
    read_study_aggregates,
    separation_table,
    study_aggregates,
)

PIPELINES = list(EARLY_STOPPING_FACTS)
AGGREGATE_KEYS = (
    "n_problems",
    "raw_pass_at_iter",
    "effective_pass_at_iter",
    "new_fixes_at_iter",
    "regressions_at_iter",
    "error_fix_by_iter",
    "regression_first_break",
    "initial_pass_count",
)


@pytest.fixture(scope="module")
def iteration_file(shared_data):
    return shared_data / "paper" / "iteration_analysis.json"


@pytest.fixture(scope="module")
def study_sets(iteration_file):
    return read_study_trajectories(iteration_file)


@pytest.fixture(scope="module")
def stored(iteration_file):
    return read_study_aggregates(iteration_file)


@pytest.fixture(scope="module")
def configs(shared_data):
    return read_main_results(shared_data / "paper" / "main_results.json")


def test_study_file_shape(study_sets):
    assert list(study_sets) == PIPELINES
    for ts in study_sets.values():
        assert len(ts.trajectories) == 164
        assert {len(t.steps) for t in ts.trajectories} == {4}
        assert ts.early_stop == "forced"


@pytest.mark.parametrize("name", PIPELINES)
@pytest.mark.parametrize("key", AGGREGATE_KEYS)
def test_every_stored_aggregate_reproduced(study_sets, stored, name, key):
    mine = study_aggregates(study_sets[name].trajectories)
    assert mine[key] == stored[name][key]


def test_no_stored_aggregate_left_unchecked(stored):
    for entry in stored.values():
        assert set(entry) == set(AGGREGATE_KEYS)


@pytest.mark.parametrize("name", PIPELINES)
def test_early_stopping_facts(study_sets, name):
    table = early_stopping_table(study_sets[name].trajectories)
    assert table.solved == EARLY_STOPPING_FACTS[name]


def test_early_stopping_values_spelled_out(study_sets):
    # The README's numbers, written out rather than read from the constant.
    got = {n: early_stopping_table(ts.trajectories).solved for n, ts in study_sets.items()}
    assert got["qwen→exec→llama"] == [69, 91, 98, 99]
    assert got["llama→exec→llama"] == [76, 90, 92, 93]
    assert got["NEAT v3 champion"] == [78, 96, 100, 102]
    assert got["qwen2.5-coder:3b self-refine"] == [132, 136, 136, 136]


@pytest.mark.parametrize("name", PIPELINES)
def test_paper_net_value_table(study_sets, name):
    # The paper's net-per-iteration table = first-time fixes minus pass->fail regressions.
    assert net_per_iteration(study_sets[name].trajectories) == PAPER_NET_PER_ITERATION[name]


def test_net_negative_claim_holds_in_11_of_12_cells(study_sets):
    """README/paper: "without early stopping, net fixes minus regressions per iteration are negative".

    It does NOT hold for every cell. With the study's own definition (first-time fixes minus
    pass->fail regressions) the nets are qwen→exec→llama -6/-7/-22, llama→exec→llama -7/-9/-13,
    NEAT v3 champion -10/-14/-14, qwen2.5-coder:3b self-refine -7/-10/0: the coder's third
    iteration has 0 first-time fixes and 0 regressions, net 0 (the paper's own table prints 0).
    Counting every fail->pass transition as a fix (net = change in problems passing, raw passes
    69/63/65/50, 76/69/71/65, 78/68/66/61, 132/125/118/126) gives -6/+2/-15, -7/+2/-6,
    -10/-2/-5 and -7/-7/+8: three cells are positive.
    """
    study_def = {n: net_per_iteration(ts.trajectories) for n, ts in study_sets.items()}
    cells = [(n, i, v) for n, vals in study_def.items() for i, v in enumerate(vals, 1)]
    not_negative = [(n, i, v) for n, i, v in cells if v >= 0]
    assert not_negative == [("qwen2.5-coder:3b self-refine", 3, 0)]
    symmetric = {n: net_per_iteration(ts.trajectories, symmetric=True) for n, ts in study_sets.items()}
    assert symmetric == {
        "qwen→exec→llama": [-6, 2, -15],
        "llama→exec→llama": [-7, 2, -6],
        "NEAT v3 champion": [-10, -2, -5],
        "qwen2.5-coder:3b self-refine": [-7, -7, 8],
    }
    # Summed over the three iterations every pipeline loses problems without early stopping.
    assert all(sum(v) < 0 for v in study_def.values())
    assert all(sum(v) < 0 for v in symmetric.values())


def test_regression_table_matches_paper(study_sets):
    # The paper's regression table: initial passes, broke, break rate.
    expect = {
        "qwen→exec→llama": (69, 43, 62),
        "NEAT v3 champion": (78, 45, 58),
        "llama→exec→llama": (76, 33, 43),
        "qwen2.5-coder:3b self-refine": (132, 19, 14),
    }
    for name, (initial, broke, pct) in expect.items():
        t = regression_table(study_sets[name].trajectories)
        assert (t.initial_passes, t.broke, round(100 * t.break_rate)) == (initial, broke, pct)


def test_error_fixes_runtime_vs_logic(study_sets):
    # The mechanism the paper describes: NameError is fixed far more often than AssertionError.
    for name in ("qwen→exec→llama", "llama→exec→llama", "NEAT v3 champion"):
        t = error_fix_table(study_sets[name].trajectories)
        assert t.row("NameError").fix_rate > 2 * t.row("AssertionError").fix_rate


def test_main_results_summaries(configs, shared_data):
    import json

    raw = json.loads((shared_data / "paper" / "main_results.json").read_text())
    for c, r in zip(configs, raw["configs"], strict=True):
        assert c.name == r["name"]
        assert c.summary.mean == pytest.approx(r["mean"])
        assert c.summary.sd == pytest.approx(r["stdev"])
        assert c.total == 164


def test_table2_separations(configs):
    rows = {r.comparison.label: r for r in separation_table(configs)}
    assert len(rows) == len(TABLE2_COMPARISONS)
    for r in rows.values():
        assert r.diff == pytest.approx(r.comparison.paper_diff)
    sr = rows["Self-refine vs solo (llama)"]
    assert sr.sigma == pytest.approx(3.815, abs=1e-3)  # consistent formula: "about 3.8"
    assert sr.sigma_b == pytest.approx(4.771, abs=1e-3)  # solo SD alone; paper prints 4.7 (truncated)
    assert round(rows["Cross-model vs self-refine"].sigma, 1) == -0.1  # paper: 0.1 (magnitude)
    assert round(rows["Coder self-refine vs coder solo"].sigma, 1) == 1.4
    assert round(rows["NEAT champion vs manual best"].sigma, 1) == 1.0
    # Paper's table prints 12.4 sigma, its text 12.3: the data give 45.6 / 3.715 = 12.275, so the
    # text's 12.3 reproduces and the table's 12.4 does not (by either single-SD variant either:
    # 45.6 / 2.739 = 16.65, 45.6 / 2.510 = 18.17).
    coder = rows["Coder self-refine vs best llama"]
    assert coder.sigma == pytest.approx(12.275, abs=1e-3)
    assert round(coder.sigma, 1) == 12.3
    # Welch's test agrees with the paper's verdicts: significant, none, suggestive, significant, not.
    assert sr.welch.p < 1e-3 and coder.welch.p < 1e-6
    assert rows["Cross-model vs self-refine"].welch.p > 0.5
    assert rows["NEAT champion vs manual best"].welch.p > 0.05


def test_separation_table_unknown_name(configs):
    with pytest.raises(KeyError, match="no configuration named 'nope'"):
        separation_table(configs, [Comparison("x", "nope", "llama3.2:3b solo")])
