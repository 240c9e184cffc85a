"""HumanEval+ and MBPP+: the EvalPlus release format, base and plus tests, tolerances, oracles, limits.

The fixture files under ``tests/data/evalplus`` are small problems written for these tests in the
release format (``task_id, prompt, entry_point, canonical_solution, base_input, plus_input, atol``);
the samples files hold answers that pass the base inputs and fail some plus ones.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
from pathlib import Path

import pytest

from neatpipe.bench import BenchmarkDataError, assemble, load_benchmark
from neatpipe.bench.check import check_references, check_samples
from neatpipe.bench.limits import ReferenceCosts
from neatpipe.bench.plus import RELEASES, load_plus, resolve_plus_path
from neatpipe.cli import main
from neatpipe.runtime.trajectory import Trajectory

DATA = Path(__file__).parent / "data" / "evalplus"
HE_PLUS = DATA / "HumanEvalPlus.jsonl"
MBPP_PLUS = DATA / "MbppPlus.jsonl"


@pytest.fixture(autouse=True)
def no_data_dir(monkeypatch):
    monkeypatch.delenv("NEATPIPE_DATA_DIR", raising=False)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_humaneval_plus_problems_keep_the_prompts_examples_as_visible_tests():
    problems = load_benchmark("humaneval+", HE_PLUS)
    assert problems.benchmark == "humaneval+" and problems.task_ids == tuple(
        f"HumanEval/{i}" for i in range(3)
    )
    p = problems["HumanEval/0"]
    assert p.visible_tests == ("assert running_max([1, 3, 2]) == [1, 3, 3]",)
    assert p.prompt_is_code and p.task_text == p.prompt and "from typing import List" in p.context
    assert p.hidden_tests == ("check_base(running_max)",)
    assert p.plus_tests == ("check_base(running_max)", "check_plus(running_max)")
    assert p.meta["base_inputs"] == 2 and p.meta["plus_inputs"] == 3
    assert problems.options["release"] == "3 of the 164 problems of HumanEvalPlus"


def test_mbpp_plus_prompt_docstring_splits_into_description_and_visible_assert():
    p = load_benchmark("mbpp+", MBPP_PLUS)["Mbpp/900"]
    assert p.prompt == "Write a function that counts the vowels (a, e, i, o, u, either case) in a string."
    assert p.visible_tests == ('assert count_vowels("banana") == 3',)
    assert not p.prompt_is_code and p.signature == "def count_vowels(text):\n"
    assert p.task_text.endswith(
        'Your code should pass the following test:\nassert count_vowels("banana") == 3'
    )


def test_a_gzipped_release_file_in_the_data_dir_is_found(tmp_path, monkeypatch):
    (tmp_path / RELEASES["mbpp+"].filename).write_bytes(gzip.compress(MBPP_PLUS.read_bytes()))
    monkeypatch.setenv("NEATPIPE_DATA_DIR", str(tmp_path))
    problems = load_plus("mbpp+", download=False)
    assert len(problems) == 3 and problems.options["source"].endswith("MbppPlus-v0.2.0.jsonl.gz")


@pytest.mark.parametrize(
    ("benchmark", "path"), [("humaneval+", HE_PLUS), ("mbpp+", MBPP_PLUS)], ids=["humaneval+", "mbpp+"]
)
@pytest.mark.parametrize("style", ["completion", "chat"])
def test_every_reference_passes_base_and_plus(benchmark, path, style, sandbox):
    report = check_references(load_benchmark(benchmark, path), style, sandbox)
    assert (report.passed, report.plus_passed, report.total) == (3, 3, 3), report.to_dict()


def test_samples_report_base_and_plus_side_by_side(sandbox):
    he = check_samples(load_benchmark("humaneval+", HE_PLUS), DATA / "humaneval-plus-samples.jsonl", sandbox)
    # HumanEval/0 starts from 0, right for the base inputs, wrong for all-negative plus input;
    # HumanEval/1 (math.fsum) is right within the float tolerance, HumanEval/2 (Newton) finds a root of
    # its own that the root oracle accepts although it is not the reference's value bit for bit
    assert (he.passed, he.plus_passed) == (3, 2)
    assert [s.task_id for s in he.plus_failures] == ["HumanEval/0"]
    assert (
        "running_max([-1, -5, -2]) returned [0, 0, 0], expected [-1, -1, -1]"
        in he.plus_failures[0].plus.message
    )
    mb = check_samples(load_benchmark("mbpp+", MBPP_PLUS), DATA / "mbpp-plus-samples.jsonl", sandbox)
    # Mbpp/901 uses pi = 3.14159: within atol 1e-4 at r = 1, 2 (base), not at r = 100 (plus)
    assert (mb.passed, mb.plus_passed) == (3, 1)
    assert [s.task_id for s in mb.plus_failures] == ["Mbpp/900", "Mbpp/901"]
    assert mb.to_dict()["plus_passed"] == 1 and not mb.all_passed


def test_a_wrong_answer_on_base_inputs_fails_the_hidden_tests(sandbox):
    p = load_benchmark("mbpp+", MBPP_PLUS)["Mbpp/902"]
    wrong = "def second_largest(nums):\n    return max(nums)\n"
    hidden, plus = sandbox.run_many([assemble(p, wrong), assemble(p, wrong, tests="plus")])
    assert not hidden.passed and not plus.passed
    assert "base input 1 of 2: second_largest([1, 2, 3]) returned 3, expected 2" in hidden.message


def test_float_tolerance_follows_the_records_atol(tmp_path, sandbox):
    """atol 0 still compares floats within 1e-6; a record's atol widens that; ints compare exactly."""
    records = _records(MBPP_PLUS)
    records[1]["atol"] = 0  # circle_area
    strict = load_benchmark("mbpp+", _write(tmp_path / "MbppPlus.jsonl", records))["Mbpp/901"]
    loose = load_benchmark("mbpp+", MBPP_PLUS)["Mbpp/901"]
    near = "import math\ndef circle_area(r):\n    return math.pi * r * r + 1e-9\n"
    off = "def circle_area(r):\n    return 3.14159 * r * r\n"
    results = sandbox.run_many([assemble(strict, near), assemble(strict, off), assemble(loose, off)])
    assert [r.passed for r in results] == [True, False, True]
    counts = load_benchmark("mbpp+", MBPP_PLUS)["Mbpp/900"]
    assert not sandbox.run_many([assemble(counts, "def count_vowels(t):\n    return 3.0000001\n")])[0].passed


def test_time_limits_are_measured_on_base_and_plus_inputs(tmp_path):
    problems = load_benchmark("mbpp+", MBPP_PLUS)

    class Recorder:
        programs = []

        def run_many(self, programs):
            from neatpipe.sandbox.program import ExecResult, Status

            self.programs += programs
            return [ExecResult(status=Status.PASSED, extra={"cpu_s": 0.5}) for _ in programs]

    costs = ReferenceCosts(tmp_path / "costs.json")
    assert costs.costs(problems, Recorder()) == {t: 0.5 for t in problems.task_ids}
    assert [t.source for t in Recorder.programs[0].tests] == list(problems.problems[0].plus_tests)
    assert "_PLUS_INPUTS" in Recorder.programs[0].harness


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.pop("plus_input"), "line 2: missing or malformed field(s) plus_input"),
        (lambda r: r.update(atol="0"), "line 2: missing or malformed field(s) atol"),
        (lambda r: r.update(base_input=[1, 2]), "malformed field(s) base_input"),
        (lambda r: r.update(task_id="Mbpp/900"), "line 2: a repeated mbpp+ task id: Mbpp/900"),
        (lambda r: r.update(task_id="HumanEval/1"), "line 2: not a mbpp+ task id"),
    ],
)
def test_a_malformed_record_is_an_error_naming_file_line_and_field(tmp_path, edit, message):
    records = _records(MBPP_PLUS)
    edit(records[1])
    path = _write(tmp_path / "MbppPlus.jsonl", records)
    with pytest.raises(BenchmarkDataError) as info:
        load_plus("mbpp+", path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_a_damaged_gzip_file_is_an_error(tmp_path):
    path = tmp_path / "HumanEvalPlus.jsonl.gz"
    path.write_bytes(gzip.compress(HE_PLUS.read_bytes())[:50])
    with pytest.raises(BenchmarkDataError, match="damaged gzip"):
        load_plus("humaneval+", path)


def test_offline_without_a_file_the_error_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("NEATPIPE_CACHE_DIR", str(tmp_path))
    with pytest.raises(BenchmarkDataError) as info:
        load_plus("humaneval+", download=False)
    text = str(info.value)
    assert "HumanEvalPlus-v0.1.10.jsonl.gz" in text and RELEASES["humaneval+"].url in text
    assert "$NEATPIPE_DATA_DIR" in text and str(tmp_path) in text


def test_a_download_is_checked_to_be_the_whole_release_before_it_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("NEATPIPE_CACHE_DIR", str(tmp_path))
    served = []

    def urlopen(url, timeout):
        served.append(url)
        return io.BytesIO(gzip.compress(HE_PLUS.read_bytes()))  # 3 problems, not 164

    monkeypatch.setattr("urllib.request.urlopen", urlopen)
    with pytest.raises(BenchmarkDataError, match="3 problems, expected the 164 of v0.1.10"):
        resolve_plus_path("humaneval+")
    assert (
        served == [RELEASES["humaneval+"].url] and not (tmp_path / "HumanEvalPlus-v0.1.10.jsonl.gz").exists()
    )

    whole = [dict(_records(HE_PLUS)[0], task_id=f"HumanEval/{i}") for i in range(164)]
    monkeypatch.setattr(
        "urllib.request.urlopen",
        lambda url, timeout: io.BytesIO(gzip.compress("".join(json.dumps(r) + "\n" for r in whole).encode())),
    )
    path = resolve_plus_path("humaneval+")
    assert path == tmp_path / "HumanEvalPlus-v0.1.10.jsonl.gz" and path.is_file()
    assert load_plus("humaneval+").options["release"] == "HumanEvalPlus v0.1.10"


def test_sandbox_check_cli_prints_base_and_plus(capsys):
    samples = str(DATA / "mbpp-plus-samples.jsonl")
    code = main(["sandbox", "check", "--benchmark", "mbpp+", "--data", str(MBPP_PLUS), "--samples", samples])
    out = capsys.readouterr().out
    assert code == 1
    assert "mbpp+, " + samples + ": base 3/3 passed, plus 1/3 passed" in out
    assert (
        "FAIL plus Mbpp/900: failed: plus input 1 of 3: count_vowels('AEIOU') returned 0, expected 5" in out
    )


def test_evaluate_on_mbpp_plus_reports_base_and_plus(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(MBPP_PLUS, data / "MbppPlus.jsonl")
    monkeypatch.setenv("NEATPIPE_DATA_DIR", str(data))
    genome = str(Path(__file__).parent.parent / "genomes" / "solo.yaml")
    args = ["evaluate", genome, "--benchmark", "mbpp+", "--model", "qwen2.5-coder-1.5b=synthetic:coder-1.5b"]
    assert main([*args, "--repeats", "2", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "base pass@1 " in out and "| plus pass@1 " in out
    report = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    entry = report["evaluations"][0]
    lines = (tmp_path / "out" / "trajectories.jsonl").read_text().splitlines()
    trajectories = [Trajectory.from_dict(json.loads(line)) for line in lines]
    assert len(trajectories) == 6 and all(t.plus_passed is not None for t in trajectories)
    per_repeat = [sum(t.plus_passed for t in trajectories if t.repeat == k) / 3 for k in (0, 1)]
    assert entry["plus"]["per_repeat"] == per_repeat and entry["plus"]["base_mean"] == entry["mean"]
    # plus never passes where base fails: the plus test set holds the base checks
    assert all(t.passed or not t.plus_passed for t in trajectories)
