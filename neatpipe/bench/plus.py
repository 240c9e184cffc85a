"""HumanEval+ and MBPP+ (EvalPlus): the original problems with many more test inputs, read from the
EvalPlus release files (``HumanEvalPlus-v0.1.10.jsonl.gz``, ``MbppPlus-v0.2.0.jsonl.gz``).

A release record gives ``task_id``, ``prompt``, ``entry_point``, ``canonical_solution``, ``base_input``
(the original tests' inputs), ``plus_input`` (the added ones) and ``atol``; it gives no expected
outputs. As EvalPlus does, the expected output of every input is what the canonical solution returns
for it: the trusted harness runs the reference on a copy of each input, then the candidate on another
copy, and compares (exactly, or within ``atol`` for floats; a few problems have their own oracle).
A problem's ``hidden`` test set is the base inputs and its ``plus`` test set is base plus the added
inputs, so a run reports both pass rates, side by side.

Where a file comes from, in order: an explicit path (a file, or a folder holding the release file);
``$NEATPIPE_DATA_DIR``; the user cache (``$NEATPIPE_CACHE_DIR`` or ``~/.cache/neatpipe``), filled by
downloading the release once when the machine is online. Every file is checked by content (each
record's fields and types, unique task ids of the benchmark's form) and a download must also be the
whole release (164 or 378 problems) before it is cached.
"""

from __future__ import annotations

import functools
import hashlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from neatpipe.bench.humaneval import BenchmarkDataError, prompt_parts, release_text
from neatpipe.bench.mbpp import _signature, find_data_file
from neatpipe.bench.problem import Problem, ProblemSet
from neatpipe.errors import bounded
from neatpipe.io import FileError, atomic_write_bytes, read_bytes


@dataclass(frozen=True)
class Release:
    """One EvalPlus release: where it is published and what a complete copy holds."""

    benchmark: str  # neatpipe's name: humaneval+ or mbpp+
    name: str  # EvalPlus's name: HumanEvalPlus or MbppPlus
    version: str
    size: int  # problems in the complete release
    id_prefix: str  # task ids look like HumanEval/0 or Mbpp/2

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}.jsonl.gz"

    @property
    def url(self) -> str:
        return (
            f"https://github.com/evalplus/{self.name.lower()}_release/releases/download/"
            f"{self.version}/{self.name}.jsonl.gz"
        )


RELEASES: dict[str, Release] = {
    "humaneval+": Release("humaneval+", "HumanEvalPlus", "v0.1.10", 164, "HumanEval/"),
    "mbpp+": Release("mbpp+", "MbppPlus", "v0.2.0", 378, "Mbpp/"),
}

_TEXT_FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution")
_INPUT_FIELDS = ("base_input", "plus_input")

#: Problems whose output a plain comparison cannot judge, by benchmark and entry point (EvalPlus names
#: them the same way): ``root`` (any x with |poly(xs, x)| <= atol is right, HumanEval/32), ``set`` (the
#: order of the returned items does not matter), ``not-none`` (the reference returns a match object:
#: only whether something was found counts).
ORACLES: dict[tuple[str, str], str] = {
    ("humaneval+", "find_zero"): "root",
    **{
        ("mbpp+", name): "set"
        for name in (
            "similar_elements",
            "find_char_long",
            "common_in_nested_lists",
            "extract_singly",
            "larg_nnum",
            "intersection_array",
            "find_dissimilar",
            "Diff",
        )  # fmt: skip
    },
    **{("mbpp+", name): "not-none" for name in ("check_str", "text_match_three", "text_starta_endb")},
}

# The trusted harness of the base inputs. ``%(...)r`` slots are filled with repr() of plain strings and
# numbers, so no data from the file is ever executed as code except the reference solution itself.
_HARNESS = """\
import copy as _copy
import json as _json
import math as _math

_reference_ns = {"__name__": "__reference__"}
exec(compile(%(reference)r, "<reference>", "exec"), _reference_ns)
_reference = _reference_ns[%(entry_point)r]
_ENTRY = %(entry_point)r
_ATOL = %(atol)r
_ORACLE = %(oracle)r
_BASE_INPUTS = _json.loads(%(base)r)


def _shown(value):
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def _all_floats(value):
    if isinstance(value, float):
        return True
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, float) for v in value)


def _close(out, exp, atol):
    if isinstance(exp, (list, tuple)):
        return isinstance(out, (list, tuple)) and len(out) == len(exp) and all(
            _close(o, e, atol) for o, e in zip(out, exp)
        )
    if isinstance(out, bool) or not isinstance(out, (int, float)) or not isinstance(exp, (int, float)):
        return out == exp
    if _math.isnan(exp) or _math.isnan(out):
        return _math.isnan(exp) and _math.isnan(out)
    if _math.isinf(exp) or _math.isinf(out):
        return out == exp
    return abs(out - exp) <= atol + 1e-07 * abs(exp)


def _agrees(out, exp, args):
    if _ORACLE == "root":
        return abs(sum(c * _math.pow(out, i) for i, c in enumerate(args[0]))) <= _ATOL
    if _ORACLE == "set":
        return set(out) == set(exp)
    if _ORACLE == "not-none":
        return out == (exp is not None) if isinstance(out, bool) else (out is not None) == (exp is not None)
    if bool(out == exp):
        return True
    atol = _ATOL or (1e-06 if _all_floats(exp) else 0)
    return bool(atol) and type(out) is type(exp) and _close(out, exp, atol)


def _check_inputs(candidate, inputs, which):
    for i, args in enumerate(inputs):
        expected = _reference(*_copy.deepcopy(args))
        out = candidate(*_copy.deepcopy(args))
        if not _agrees(out, expected, args):
            call = _ENTRY + "(" + _shown(args)[1:-1] + ")"
            raise AssertionError(
                f"{which} input {i + 1} of {len(inputs)}: {call} returned {_shown(out)}, "
                f"expected {_shown(expected)}"
            )


def check_base(candidate):
    _check_inputs(candidate, _BASE_INPUTS, "base")
"""

_PLUS_SETUP = """\
_PLUS_INPUTS = _json.loads(%(plus)r)


def check_plus(candidate):
    _check_inputs(candidate, _PLUS_INPUTS, "plus")
"""


def _records(raw: bytes, source: str, release: Release) -> list[dict[str, Any]]:
    """The records of a release file (gzip or plain JSON lines), each checked field by field."""
    text = release_text(raw, source, release.name)
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{source}, line {n}"
        try:
            r = json.loads(line)
        except ValueError as exc:
            raise BenchmarkDataError(f"{where}: not {release.name} JSON lines ({exc})") from None
        if not isinstance(r, dict):
            raise BenchmarkDataError(f"{where}: expected a JSON object, got {type(r).__name__}")
        bad = [f for f in _TEXT_FIELDS if not isinstance(r.get(f), str)]
        bad += [
            f
            for f in _INPUT_FIELDS
            if not isinstance(r.get(f), list) or not all(isinstance(a, list) for a in r[f])
        ]
        if isinstance(r.get("atol"), bool) or not isinstance(r.get("atol"), int | float) or r["atol"] < 0:
            bad.append("atol")
        if bad:
            raise BenchmarkDataError(
                f"{where}: missing or malformed field(s) {', '.join(bad)} (an EvalPlus {release.name} "
                "record has text task_id, prompt, entry_point, canonical_solution, lists of argument "
                "lists base_input and plus_input, and a number atol)"
            )
        task_id = r["task_id"]
        if not task_id.startswith(release.id_prefix) or task_id in seen:
            what = "a repeated" if task_id in seen else "not a"
            raise BenchmarkDataError(
                f"{where}: {what} {release.benchmark} task id: {bounded(task_id, 60)} "
                f"(ids look like {release.id_prefix}0)"
            )
        seen.add(task_id)
        records.append(r)
    if not records:
        raise BenchmarkDataError(f"{source}: no problems (expected {release.name} JSON lines)")
    return records


def _download(release: Release, dest: Path, timeout_s: float = 60.0) -> None:
    """Fetch the release, check it is the whole of it, and move it into place atomically."""
    with urllib.request.urlopen(release.url, timeout=timeout_s) as response:  # noqa: S310 (fixed https URL)
        raw = response.read()
    records = _records(raw, release.url, release)
    if len(records) != release.size:
        raise BenchmarkDataError(
            f"{release.url}: {len(records)} problems, expected the {release.size} of {release.version}"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dest, raw)


def resolve_plus_path(benchmark: str, path: str | Path | None = None, download: bool = True) -> Path:
    """Find the release file of ``benchmark`` (``humaneval+`` or ``mbpp+``), downloading it into the
    cache when allowed and online; offline with no file, the error says where to put it."""
    release = RELEASES[benchmark]
    names = (release.filename, f"{release.name}.jsonl.gz", f"{release.name}.jsonl")
    fetch = functools.partial(_download, release)
    return find_data_file(f"{benchmark} data", release.name, names, release.url, fetch, path, download)


def _harness(record: dict[str, Any], reference: str, benchmark: str) -> tuple[str, str]:
    """``(test_setup, plus_setup)`` of a record: the reference, the comparison and the inputs."""
    entry = record["entry_point"]
    values = {
        "reference": reference,
        "entry_point": entry,
        "atol": float(record["atol"]),
        "oracle": ORACLES.get((benchmark, entry)),
        "base": json.dumps(record["base_input"]),
        "plus": json.dumps(record["plus_input"]),
    }
    return _HARNESS % values, _PLUS_SETUP % values


def _humaneval_problem(record: dict[str, Any]) -> Problem:
    task_id, prompt, entry = record["task_id"], record["prompt"], record["entry_point"]
    context, signature, visible = prompt_parts(task_id, prompt, entry)
    reference = prompt + record["canonical_solution"]
    setup, plus_setup = _harness(record, reference, "humaneval+")
    return Problem(
        task_id=task_id,
        benchmark="humaneval+",
        prompt=prompt,
        prompt_is_code=True,
        entry_point=entry,
        context=context,
        signature=signature,
        visible_tests=visible,
        hidden_tests=(f"check_base({entry})",),
        test_setup=setup,
        reference_solution=reference,
        plus_tests=(f"check_base({entry})", f"check_plus({entry})"),
        plus_setup=plus_setup,
        meta=_meta(record),
    )


def _mbpp_problem(record: dict[str, Any]) -> Problem:
    """MBPP+'s prompt is a docstring: the description, then the assert(s) it shows (the visible tests)."""
    entry, code = record["entry_point"], record["canonical_solution"]
    text = record["prompt"].strip().strip('"').strip("'").strip()
    lines = text.splitlines()
    shown = tuple(line.strip() for line in lines if line.strip().startswith("assert"))
    description = "\n".join(line for line in lines if not line.strip().startswith("assert")).strip()
    if not shown:  # a record without an assert in its prompt: the first of its own asserts, if it has any
        listed = record.get("test_list") or str(record.get("assertion") or "").splitlines()
        shown = tuple(t.strip() for t in listed if isinstance(t, str) and t.strip().startswith("assert"))[:1]
    setup, plus_setup = _harness(record, code, "mbpp+")
    try:
        signature = _signature(code, entry)
    except SyntaxError as exc:
        raise BenchmarkDataError(f"{record['task_id']}: canonical_solution does not parse: {exc}") from None
    return Problem(
        task_id=record["task_id"],
        benchmark="mbpp+",
        prompt=description,
        entry_point=entry,
        context="",
        signature=signature,
        visible_tests=shown,
        hidden_tests=(f"check_base({entry})",),
        test_setup=setup,
        reference_solution=code,
        plus_tests=(f"check_base({entry})", f"check_plus({entry})"),
        plus_setup=plus_setup,
        meta=_meta(record),
    )


def _meta(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "canonical_solution": record["canonical_solution"],
        "base_inputs": len(record["base_input"]),
        "plus_inputs": len(record["plus_input"]),
        "atol": record["atol"],
    }


@lru_cache(maxsize=4)
def _load(benchmark: str, path: str) -> tuple[Problem, ...]:
    release = RELEASES[benchmark]
    try:
        raw = read_bytes(path)
    except FileError as exc:
        raise BenchmarkDataError(f"{release.name} file {exc}") from None
    build = _humaneval_problem if benchmark == "humaneval+" else _mbpp_problem
    return tuple(build(r) for r in _records(raw, path, release))


def load_plus(
    benchmark: str, path: str | Path | None = None, visible: str | None = None, download: bool = True
) -> ProblemSet:
    """The HumanEval+ or MBPP+ problems of the release file (see the module's note on where it is
    looked for). ``visible`` is accepted for MBPP+ as ``first`` only: its prompt shows one assert."""
    if benchmark not in RELEASES:
        raise ValueError(f"unknown EvalPlus benchmark {benchmark!r}; choose one of {', '.join(RELEASES)}")
    if visible not in (None, "first"):
        raise ValueError(f"{benchmark} shows the assert(s) of its prompt; visible={visible!r} is not offered")
    release = RELEASES[benchmark]
    p = resolve_plus_path(benchmark, path, download=download)
    problems = _load(benchmark, str(p.resolve()))
    complete = len(problems) == release.size
    return ProblemSet(
        benchmark,
        problems,
        {
            "source": str(p),
            "sha256": hashlib.sha256(read_bytes(p)).hexdigest(),
            "release": f"{release.name} {release.version}"
            if complete
            else f"{len(problems)} of the {release.size} problems of {release.name}",  # fmt: skip
            "visible_tests": "docstring examples" if benchmark == "humaneval+" else "the prompt's assert",
            "hidden_tests": "base inputs; plus: base and plus inputs, outputs from the canonical solution",
        },
    )
