"""HumanEval (164 problems), shipped inside the package (MIT licence, OpenAI)."""

from __future__ import annotations

import ast
import gzip
import hashlib
import json
import zlib
from functools import lru_cache
from importlib import resources
from pathlib import Path

from neatpipe.bench.examples import docstring_tests
from neatpipe.bench.problem import Problem, ProblemSet
from neatpipe.errors import NeatpipeError
from neatpipe.io import FileError, decode_text, read_bytes

# Docstring examples that contradict the benchmark's own tests and reference solution, so they are
# not offered as visible tests (a model told to satisfy them would be misled). Each entry is checked
# by the test suite: the reference solution really fails it.
WRONG_DOCSTRING_EXAMPLES: dict[str, tuple[str, ...]] = {
    # the docstring says 15.0; the median of that list is 8.0, which the tests expect
    "HumanEval/47": ("assert abs(median([-10, 4, 6, 1000, 10, 20]) - 15.0) < 1e-6",),
    # the examples sort by value, the tests by number of one bits and then by value
    "HumanEval/116": (
        "assert sort_array([1, 5, 2, 3, 4]) == [1, 2, 3, 4, 5]",
        "assert sort_array([-2, -3, -4, -5, -6]) == [-6, -5, -4, -3, -2]",
    ),
    # "tri(1) = 3" defines the sequence's terms; the function returns a list of them
    "HumanEval/130": ("assert tri(1) == 3", "assert tri(2) == 2", "assert tri(4) == 3"),
    # ("Venus") is a string; the function returns the tuple ("Venus",)
    "HumanEval/148": ('assert bf("Earth", "Mercury") == ("Venus")',),
}


_FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "test")


class BenchmarkDataError(NeatpipeError, ValueError):
    """A benchmark file is missing, unreadable or not what it claims to be; the message names the file."""


def _split_prompt(prompt: str, entry_point: str, task_id: str) -> tuple[str, str, ast.FunctionDef]:
    """The prompt's context (everything but the entry point's definition) and the entry point's def line(s)."""
    try:
        tree = ast.parse(prompt)
    except SyntaxError as exc:
        raise BenchmarkDataError(f"{task_id}: prompt does not parse: {exc}") from exc
    lines = prompt.splitlines(keepends=True)
    target = None
    context_parts: list[str] = []
    for node in tree.body:
        start = (node.decorator_list[0].lineno if getattr(node, "decorator_list", None) else node.lineno) - 1
        segment = "".join(lines[start : node.end_lineno])
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            target = node
        else:
            context_parts.append(segment.rstrip() + "\n")
    if target is None:
        raise BenchmarkDataError(f"{task_id}: prompt defines no function {entry_point!r}")
    # imports the prompt writes inside the function (HumanEval/115) are context too: hoisted to the top
    for node in target.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            context_parts.insert(0, ast.unparse(node) + "\n")
    body_start = target.body[0].lineno - 1 if target.body else target.end_lineno
    signature = "".join(lines[target.lineno - 1 : body_start]).rstrip() + "\n"
    return "\n".join(context_parts), signature, target


def prompt_parts(task_id: str, prompt: str, entry_point: str) -> tuple[str, str, tuple[str, ...]]:
    """``(context, signature, visible tests)`` of a HumanEval-style prompt: the visible tests are the
    docstring's examples as asserts, less the few whose expected value the prompt gets wrong."""
    context, signature, fn = _split_prompt(prompt, entry_point, task_id)
    params = [a.arg for a in fn.args.args]
    doc = ast.get_docstring(fn, clean=True) or ""
    wrong = set(WRONG_DOCSTRING_EXAMPLES.get(task_id, ()))
    return context, signature, tuple(t for t in docstring_tests(doc, entry_point, params) if t not in wrong)


def _problem(record: dict) -> Problem:
    task_id, prompt, entry_point = record["task_id"], record["prompt"], record["entry_point"]
    context, signature, visible = prompt_parts(task_id, prompt, entry_point)
    return Problem(
        task_id=task_id,
        benchmark="humaneval",
        prompt=prompt,
        prompt_is_code=True,
        entry_point=entry_point,
        context=context,
        signature=signature,
        visible_tests=visible,
        hidden_tests=(f"check({entry_point})",),
        test_setup=record["test"],
        reference_solution=prompt + record["canonical_solution"],
        meta={"canonical_solution": record["canonical_solution"]},
    )


def humaneval_path() -> Path:
    """The copy of ``HumanEval.jsonl.gz`` inside the installed package."""
    return Path(str(resources.files("neatpipe") / "data" / "HumanEval.jsonl.gz"))


def release_text(raw: bytes, source: str | Path, name: str) -> str:
    """The text of a benchmark's JSON-lines release (``name``: what the error calls it), gzipped or not;
    a damaged gzip or undecodable text is a ``BenchmarkDataError`` naming ``source``."""
    try:
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise BenchmarkDataError(f"{source}: a damaged gzip file ({exc or type(exc).__name__})") from None
    try:
        return decode_text(raw, source)
    except FileError as exc:
        raise BenchmarkDataError(f"{name} file {exc}") from None


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[Problem, ...]:
    p = Path(path)
    try:
        raw = read_bytes(p)
    except FileError as exc:
        raise BenchmarkDataError(f"HumanEval file {exc}") from None
    text = release_text(raw, p, "HumanEval")
    records = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append((i, json.loads(line)))
        except ValueError as exc:
            raise BenchmarkDataError(f"{p}, line {i}: not HumanEval JSON lines ({exc})") from None
    for i, r in records:
        if not isinstance(r, dict):
            raise BenchmarkDataError(f"{p}, line {i}: expected a JSON object, got {type(r).__name__}")
        missing = sorted(f for f in _FIELDS if not isinstance(r.get(f), str))
        if missing:
            raise BenchmarkDataError(f"{p}, line {i}: missing or non-text field(s) {', '.join(missing)}")
    if not records:
        raise BenchmarkDataError(f"{p}: no problems (expected HumanEval JSON lines)")
    return tuple(_problem(r) for _, r in records)


def load_humaneval(path: str | Path | None = None) -> ProblemSet:
    """The 164 HumanEval problems (from the package, or from ``path`` for a variant of the file)."""
    p = Path(path) if path is not None else humaneval_path()
    problems = _load(str(p.resolve()))
    sha = hashlib.sha256(read_bytes(p)).hexdigest()
    covered = sum(1 for q in problems if q.visible_tests)
    return ProblemSet(
        "humaneval",
        problems,
        {
            "source": str(p),
            "sha256": sha,
            "visible_tests": "docstring examples",
            "with_visible_tests": covered,
        },
    )
