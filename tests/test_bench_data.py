"""Benchmark loading: HumanEval from the package, MBPP from a path / env / cache, visible tests, subsets."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from neatpipe.bench import (
    MBPP_SPLITS,
    BenchmarkDataError,
    load_benchmark,
    load_humaneval,
    load_mbpp,
    resolve_mbpp_path,
    subset,
)
from neatpipe.bench.examples import docstring_tests


def test_humaneval_ships_in_the_package_and_matches_the_reference_file(shared_data: Path) -> None:
    problems = load_humaneval()
    assert len(problems) == 164
    assert problems.options["sha256"] == "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef"
    assert problems.task_ids[0] == "HumanEval/0" and problems.task_ids[-1] == "HumanEval/163"
    assert load_humaneval(shared_data / "HumanEval.jsonl.gz").task_ids == problems.task_ids


def test_humaneval_context_holds_imports_and_helpers_but_not_the_entry_point() -> None:
    problems = load_humaneval()
    p0 = problems["HumanEval/0"]
    assert "from typing import List" in p0.context
    assert "def has_close_elements" not in p0.context
    assert p0.signature.startswith("def has_close_elements(numbers: List[float], threshold: float) -> bool:")
    p38 = problems["HumanEval/38"]
    assert "def encode_cyclic" in p38.context and "def decode_cyclic" not in p38.context
    # an import written inside the prompt's function is hoisted into the context
    assert "import math" in problems["HumanEval/115"].context
    assert p0.task_text == p0.prompt and p0.prompt_is_code


def test_humaneval_visible_tests_cover_at_least_90_percent() -> None:
    problems = load_humaneval()
    covered = sum(1 for p in problems if p.visible_tests)
    assert covered >= 0.9 * len(problems)
    assert problems.options["with_visible_tests"] == covered
    assert problems["HumanEval/0"].visible_tests == (
        "assert has_close_elements([1.0, 2.0, 3.0], 0.5) == False",
        "assert has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3) == True",
    )


def test_visible_and_hidden_tests_are_kept_apart() -> None:
    for p in load_humaneval():
        assert p.hidden_tests == (f"check({p.entry_point})",)
        assert not any(re.search(r"(?<!\w)check\(", t) for t in p.visible_tests)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (">>> f(1, 2)\n3", ["assert f(1, 2) == 3"]),
        (">>> f([1.0])\n0.5", ["assert abs(f([1.0]) - 0.5) < 1e-6"]),
        (">>> round(f([1, 2]), 2) # comment\n-0.5", ["assert abs(round(f([1, 2]), 2) - -0.5) < 1e-6"]),
        (">>> f('a') == 'b'", ["assert f('a') == 'b'"]),
        (
            "Examples:\n    f(5, 2, 7) ➞ True\n    f(3) ==> false",
            ["assert f(5, 2, 7) == True", "assert f(3) == False"],
        ),
        ("* f([]) => []", ["assert f([]) == []"]),
        ("f(1) should return 16.", ["assert f(1) == 16"]),
        ("f('hi') returns 'lm'", ["assert f('hi') == 'lm'"]),
        ("f(1) # => 'Yes'", ["assert f(1) == 'Yes'"]),
        ("for f(7, 34, 12) == 34", ["assert f(7, 34, 12) == 34"]),
        ("f([]) == None", ["assert f([]) is None"]),
        ("f('5 apples', 19) ->19 - 5 - 6 = 8", ["assert f('5 apples', 19) == 8"]),
        ("For a = [1,2], b = 3 the output should be 10", ["assert f([1,2], 3) == 10"]),
        ("Example 1:\n    Input: a = [1, 2], b = 3\n    Output: [2]", ["assert f([1, 2], 3) == [2]"]),
        ("Input: [4,2,3]\n    Output: [2, 1]", []),  # two parameters, one unnamed value: not an example
        ("f(a) => False", []),  # bare names are prose, not literals
        ("The function f(x) is nice.", []),
    ],
)
def test_docstring_example_styles(doc: str, expected: list[str]) -> None:
    assert docstring_tests(doc, "f", ["a", "b"]) == expected


def test_mbpp_loads_from_an_explicit_path(mbpp_path: Path) -> None:
    problems = load_mbpp(mbpp_path)
    assert len(problems) == 427
    p = problems["Mbpp/2"]
    assert p.entry_point == "similar_elements" and not p.prompt_is_code
    assert len(p.hidden_tests) == 3 and p.visible_tests == p.hidden_tests[:1]
    assert "Your code should pass the following test:\nassert set(similar_elements(" in p.task_text
    assert problems.options["visible_tests"] == "first assert(s)"


def test_mbpp_visible_policy_all_is_recorded(mbpp_path: Path) -> None:
    problems = load_mbpp(mbpp_path, visible="all")
    assert all(p.visible_tests == p.hidden_tests for p in problems)
    assert problems.options["visible_tests"] == "all assert(s)"
    assert "following tests:" in problems["Mbpp/2"].task_text
    with pytest.raises(ValueError, match="visible-test policy 'some'"):
        load_mbpp(mbpp_path, visible="some")


def test_mbpp_splits_follow_the_upstream_task_ids(mbpp_path: Path) -> None:
    sizes = {name: len(load_mbpp(mbpp_path, split=name)) for name in MBPP_SPLITS}
    assert sizes == {"prompt": 7, "test": 257, "validation": 43, "train": 120}
    for p in load_mbpp(mbpp_path, split="validation"):
        assert 511 <= int(p.task_id.split("/")[1]) <= 600
    with pytest.raises(ValueError, match="unknown MBPP split 'dev'"):
        load_mbpp(mbpp_path, split="dev")


def test_mbpp_class_constructing_tests_pick_the_function(mbpp_path: Path) -> None:
    problems = load_mbpp(mbpp_path)
    for p in problems:
        assert p.signature.startswith(f"def {p.entry_point}(")


def test_mbpp_found_through_the_environment_and_the_cache(
    mbpp_path: Path, tmp_path: Path, monkeypatch
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "sanitized-mbpp.json").write_bytes(mbpp_path.read_bytes())
    monkeypatch.setenv("NEATPIPE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("NEATPIPE_CACHE_DIR", str(tmp_path / "cache"))
    assert resolve_mbpp_path() == data_dir / "sanitized-mbpp.json"
    monkeypatch.delenv("NEATPIPE_DATA_DIR")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "sanitized-mbpp.json").write_bytes(mbpp_path.read_bytes())
    assert resolve_mbpp_path() == cache / "sanitized-mbpp.json"
    assert len(load_benchmark("mbpp")) == 427


def test_mbpp_missing_offline_says_where_to_put_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("NEATPIPE_DATA_DIR", raising=False)
    monkeypatch.setenv("NEATPIPE_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(BenchmarkDataError) as err:
        resolve_mbpp_path(download=False)
    message = str(err.value)
    assert "sanitized-mbpp.json" in message and str(tmp_path / "cache") in message
    assert "NEATPIPE_DATA_DIR" in message


def test_mbpp_download_failure_is_reported_not_hidden(tmp_path: Path, monkeypatch) -> None:
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.delenv("NEATPIPE_DATA_DIR", raising=False)
    monkeypatch.setenv("NEATPIPE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(BenchmarkDataError, match="download failed .*network is unreachable"):
        resolve_mbpp_path()
    assert not any((tmp_path / "cache").glob("*")) if (tmp_path / "cache").exists() else True


def test_mbpp_download_is_checked_and_written_atomically(
    mbpp_path: Path, tmp_path: Path, monkeypatch
) -> None:
    import io
    import urllib.request

    payload = {"bytes": json.dumps(json.loads(mbpp_path.read_text())[:10]).encode()}

    def fake_urlopen(url, timeout):
        return io.BytesIO(payload["bytes"])

    monkeypatch.delenv("NEATPIPE_DATA_DIR", raising=False)
    monkeypatch.setenv("NEATPIPE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    with pytest.raises(BenchmarkDataError, match="not the sanitized MBPP file .10 problems"):
        resolve_mbpp_path()
    assert not (tmp_path / "cache" / "sanitized-mbpp.json").exists()
    assert not list((tmp_path / "cache").glob(".mbpp-*")) if (tmp_path / "cache").exists() else True
    payload["bytes"] = mbpp_path.read_bytes()
    assert resolve_mbpp_path() == tmp_path / "cache" / "sanitized-mbpp.json"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not valid JSON"),
        ('{"a": 1}', "expected a JSON list"),
        ('[{"task_id": 1}]', "lacks field"),
    ],
)
def test_bad_mbpp_files_name_the_file_and_the_problem(tmp_path: Path, content: str, match: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(BenchmarkDataError, match=match) as err:
        load_mbpp(bad)
    assert str(bad) in str(err.value)


def test_subsets_are_deterministic_and_stratified() -> None:
    problems = load_humaneval()
    a, b = subset(problems, 25, seed=3), subset(problems, 25, seed=3)
    assert a.task_ids == b.task_ids and len(a) == 25
    assert subset(problems, 25, seed=4).task_ids != a.task_ids
    labels = {t: ("hard" if i % 4 == 0 else "easy") for i, t in enumerate(problems.task_ids)}
    s = subset(problems, 20, seed=1, labels=labels)
    counts = Counter(labels[t] for t in s.task_ids)
    assert counts == {"hard": 5, "easy": 15}
    assert s.options["stratified"] and s.options["subset_seed"] == 1
    with pytest.raises(ValueError, match="between 1 and 164"):
        subset(problems, 0)
    with pytest.raises(ValueError, match="no difficulty label"):
        subset(problems, 5, labels={"HumanEval/0": "easy"})
