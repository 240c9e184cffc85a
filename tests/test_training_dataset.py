"""``neatpipe dataset``: training sets from run directories, verified by hidden tests, decontaminated.

The sources are a ``neatpipe evaluate --out`` directory and a small evolution run, both with the
synthetic coder on HumanEval (the synthetic coder knows HumanEval only), so the exports that are meant
to hold examples say ``--exclude none``; the default (HumanEval excluded) is tested to export nothing.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from neatpipe.cli import main
from neatpipe.evolution import build
from neatpipe.evolution.run import evolve
from neatpipe.experiment import load_experiment
from neatpipe.runtime import TEXTS_FILE, TextStore, read_trajectories
from neatpipe.training.dataset import (
    DatasetError,
    export_dataset,
    load_run,
    near_duplicates,
    norm_id,
)

ROOT = Path(__file__).resolve().parents[1]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _fenced(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "eval"
    genomes = [str(ROOT / "genomes" / f"{g}.yaml") for g in ("self-refine", "self-refine-no-early-stop", "best-of-3-refine",
                                                                "analyzer-stage")]  # fmt: skip
    argv = ["evaluate", *genomes, "--limit", "16", "--repeats", "3", "--seed", "2", "--out", str(out)]
    argv += [
        "--model",
        "qwen2.5-coder-1.5b=synthetic:small-1.5b",
        "--model",
        "llama3.2-3b=synthetic:general-3b",
    ]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def exported(evaluated, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "export"
    return export_dataset([evaluated], out, exclude=(), per_problem=3), out


def test_every_kind_is_exported_and_datasets_loads_every_file(exported) -> None:
    import datasets

    report, out = exported
    assert all(report.counts[k] > 0 for k in ("sft", "repair", "preference")), report.counts
    for kind in ("sft", "repair", "preference"):
        rows = _rows(out / f"{kind}.jsonl")
        assert len(rows) == report.counts[kind]
        loaded = datasets.load_dataset("json", data_files=str(out / f"{kind}.jsonl"), split="train")
        assert loaded.num_rows == len(rows)
        wanted = {"prompt", "chosen", "rejected"} if kind == "preference" else {"messages", "task_id", "benchmark",
                                                                               "error_type", "source"}  # fmt: skip
        assert set(loaded.column_names) == wanted
        assert f"| {kind} | {kind}.jsonl | {len(rows)} |" in (out / "README.md").read_text()
    sft = _rows(out / "sft.jsonl")
    assert [m["role"] for m in sft[0]["messages"]] == ["system", "user", "assistant"]


def test_the_formats_are_what_trl_reads_as_conversations(exported) -> None:
    from trl.data_utils import is_conversational

    _, out = exported
    for kind in ("sft", "repair", "preference"):
        assert all(is_conversational(row) for row in _rows(out / f"{kind}.jsonl")), kind


def test_examples_are_the_requests_sent_answered_by_code_the_hidden_tests_passed(evaluated, exported) -> None:
    _, out = exported
    trajectories = read_trajectories(evaluated / "trajectories.jsonl")
    passed: dict[tuple, set[str]] = {}  # (role, request messages) -> codes, by hidden verdict
    failed: dict[tuple, set[str]] = {}
    with TextStore(evaluated / TEXTS_FILE) as store:
        for t in trajectories:
            for i, s in enumerate(t.steps):
                if s.hidden is not None and s.model is not None:
                    msgs = tuple(json.dumps(m) for m in store.call(t, i).request.messages_as_dicts())
                    (passed if s.hidden.passed else failed).setdefault((s.role, msgs), set()).add(
                        _fenced(s.code)
                    )
    for kind, role in (("sft", "generator"), ("repair", "refiner")):
        for row in _rows(out / f"{kind}.jsonl"):
            *request, answer = row["messages"]
            assert answer["role"] == "assistant"
            assert answer["content"] in passed[(role, tuple(json.dumps(m) for m in request))]
    for kind in ("repair",):
        assert all("## Previous code" in r["messages"][1]["content"] for r in _rows(out / f"{kind}.jsonl"))
        # a fix of a candidate that had passed its feedback tests is no repair (a stage without early
        # stopping refines passing candidates too)
        assert all(r["error_type"] not in (None, "passed") for r in _rows(out / f"{kind}.jsonl"))
    for row in _rows(out / "preference.jsonl"):
        key = tuple(json.dumps(m) for m in row["prompt"])
        role = "refiner" if any(("refiner", key) == k for k in passed) else "generator"
        assert row["chosen"][0]["content"] in passed[(role, key)]
        assert row["rejected"][0]["content"] in failed[(role, key)]


def test_identical_examples_once_and_at_most_n_per_problem(evaluated, exported, tmp_path: Path) -> None:
    report, out = exported
    for kind in ("sft", "repair", "preference"):
        rows = _rows(out / f"{kind}.jsonl")
        assert len({json.dumps(r, sort_keys=True) for r in rows}) == len(rows)
        if kind != "preference":
            assert max(Counter(r["task_id"] for r in rows).values()) <= 3
    assert report.dropped[("sft", "identical")] > 0
    one = export_dataset([evaluated], tmp_path / "one", exclude=(), per_problem=1, kinds=("sft",))
    assert one.counts["sft"] == len(one.problems["sft"]) == len(report.problems["sft"])
    assert one.dropped[("sft", "per-problem limit")] > 0


def test_humaneval_is_excluded_by_default(evaluated, tmp_path: Path, capsys) -> None:
    assert main(["dataset", str(evaluated), "--out", str(tmp_path / "d")]) == 0
    assert all(not (tmp_path / "d" / f"{k}.jsonl").read_text() for k in ("sft", "repair", "preference"))
    card = (tmp_path / "d" / "README.md").read_text()
    assert "| sft | excluded benchmark |" in card and "benchmarks (humaneval)" in card
    assert "SYNTHETIC" in card and "synthetic:small-1.5b" in card
    assert "wrote 0 sft" in capsys.readouterr().err


def _relabelled(evaluated: Path, dest: Path, relabel: dict[str, tuple[str, str]]) -> Path:
    """A copy of the evaluation whose trajectories of some problems carry another (task id, benchmark)."""
    dest.mkdir()
    shutil.copy(evaluated / TEXTS_FILE, dest / TEXTS_FILE)
    lines = []
    for line in (evaluated / "trajectories.jsonl").read_text().splitlines():
        d = json.loads(line)
        if d["task_id"] in relabel:
            d["task_id"], d["benchmark"] = relabel[d["task_id"]]
        lines.append(json.dumps(d))
    (dest / "trajectories.jsonl").write_text("\n".join(lines) + "\n")
    return dest


def test_excluded_problems_never_leave_under_another_spelling_or_as_near_duplicates(
    evaluated, exported, tmp_path: Path
) -> None:
    report, _ = exported
    ids = sorted({t for k in report.problems.values() for t in k})
    a, b, c = ids[:3]
    renamed = {a: ("humaneval_" + a.split("/")[1], "HumanEval"), b: ("HUMANEVAL-" + b.split("/")[1], "mbpp"),
               c: ("Mbpp/9001", "mbpp")}  # fmt: skip
    run = _relabelled(evaluated, tmp_path / "run", renamed)
    got = export_dataset([run], tmp_path / "out", exclude=("humaneval",))
    exported_ids = {t for k in got.problems.values() for t in k}
    assert exported_ids == set()  # a, b by their ids; c ("Mbpp/9001") holds HumanEval's statement of c
    assert [(d.task_id, d.excluded) for d in got.duplicates] == [("Mbpp/9001", norm_id(c))]
    assert got.duplicates[0].overlap == 1.0
    card = (tmp_path / "out" / "README.md").read_text()
    assert f"| Mbpp/9001 | {norm_id(c)} | 1.00 |" in card
    kept = export_dataset([run], tmp_path / "kept", exclude=())
    assert "Mbpp/9001" in {t for k in kept.problems.values() for t in k}  # nothing else kept it out


def test_near_duplicates_need_most_of_the_statement() -> None:
    statement = (
        "Write a function that returns the sum of the squares of the odd numbers in a list of integers."
    )
    excluded = {"mbpp/1": statement}
    half = " ".join(statement.split()[:9])
    found = near_duplicates({"X/1": ["## Task\n" + statement.upper()], "X/2": [half], "X/3": ["unrelated"]},
                            excluded)  # fmt: skip
    assert [d.task_id for d in found] == ["X/1"]
    assert norm_id("HumanEval/0") == norm_id("humaneval_0") == norm_id(" HUMANEVAL-0 ") == "humaneval/0"


EXPERIMENT = """\
format: neatpipe-experiment/1
name: ds
seed: 4
benchmark: {name: humaneval}
subset: {size: 12, policy: rotating}
validation: {size: 20, repeats: 1, champions: 1}
models:
  coder: synthetic:coder-1.5b
  small: synthetic:small-1.5b
genome: {initial: minimal, max_nodes: 6, max_stages: 2, add_stage_rate: 0.6}
neat: {population: 6, compatibility_threshold: 1.0}
budget: {generations: 3}
backend: {cache: off}
"""


def test_no_held_out_validation_problem_of_an_evolution_run_is_exported(tmp_path: Path) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(textwrap.dedent(EXPERIMENT))
    evolve(exp, out=tmp_path / "run", progress=False)
    loaded = load_experiment(tmp_path / "run" / "experiment.yaml")
    _, held = build.split_problems(loaded, build.load_problems(loaded))
    held_ids = set(held.task_ids)
    assert len(held_ids) == 20
    assert set(load_run(tmp_path / "run").held_out) == {norm_id(t) for t in held_ids}
    report = export_dataset([tmp_path / "run"], tmp_path / "out", exclude=(), per_problem=8)
    exported_ids = {t for k in report.problems.values() for t in k}
    assert exported_ids and not exported_ids & held_ids
    rows = [r for k in ("sft", "repair") for r in _rows(tmp_path / "out" / f"{k}.jsonl")]
    assert {r["task_id"] for r in rows} <= exported_ids and all(r["source"] == "run" for r in rows)
    # the search trajectories hold no held-out problem, so give one a held-out problem's id (lower case)
    gen0 = tmp_path / "run" / "trajectories" / "gen-0000.jsonl.gz"
    import gzip

    with gzip.open(gen0, "rt") as f:
        lines = [json.loads(line) for line in f]
    victim = sorted(held_ids)[0]
    for d in lines:
        if d["task_id"] == lines[0]["task_id"]:
            d["task_id"] = victim.lower()
    with gzip.open(gen0, "wt") as f:
        f.writelines(json.dumps(d) + "\n" for d in lines)
    again = export_dataset([tmp_path / "run"], tmp_path / "again", exclude=(), per_problem=50)
    assert not {norm_id(t) for k in again.problems.values() for t in k} & {norm_id(t) for t in held_ids}
    assert sum(n for (_, reason), n in again.dropped.items() if reason == "held out or excluded problem") > 0


@pytest.mark.parametrize(
    ("setup", "argv", "message"),
    [
        (lambda d: None, ["--out", "OUT"], "not a run directory"),
        (lambda d: d.mkdir(), ["--out", "OUT"], "no trajectories"),
        (lambda d: (d.mkdir(), (d / "trajectories.jsonl").write_text("{}\n")), ["--out", "OUT"], "texts.sqlite: missing"),
        (lambda d: (d.mkdir(), (d / "trajectories.jsonl").write_text("{not json\n"), (d / TEXTS_FILE).write_text("")),
         ["--out", "OUT"], "trajectories.jsonl:1:"),
        (lambda d: d.mkdir(), ["--out", "OUT", "--per-problem", "0"], "--per-problem"),
        (lambda d: d.mkdir(), ["--out", "OUT", "--exclude", "apps"], "--exclude: unknown benchmark 'apps'"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_naming_the_file_or_option(
    setup, argv, message, tmp_path: Path, capsys
) -> None:
    run = tmp_path / "run"
    setup(run)
    argv = [str(tmp_path / "x") if a == "OUT" else a for a in argv]
    assert main(["dataset", str(run), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("neatpipe: error: ") and "\n" not in err and message in err, err


def test_a_store_that_lost_a_text_is_a_clear_error(evaluated, tmp_path: Path) -> None:
    import sqlite3

    run = _relabelled(evaluated, tmp_path / "run", {})
    step = next(s for t in read_trajectories(run / "trajectories.jsonl") for s in t.steps
                if s.role == "generator" and s.hidden.passed)  # fmt: skip
    with sqlite3.connect(run / TEXTS_FILE) as db:
        db.execute("DELETE FROM texts WHERE key = ?", (step.request.messages[0][1],))
    with pytest.raises(DatasetError, match="holds no text with key"):
        export_dataset([run], tmp_path / "out", exclude=())
