"""Sanitized MBPP (427 problems, Google Research, CC BY 4.0), read from a file the user provides.

Where the file comes from, in order: an explicit path; ``$NEATPIPE_DATA_DIR/sanitized-mbpp.json``;
the user cache (``$NEATPIPE_CACHE_DIR`` or ``~/.cache/neatpipe``), filled by downloading the upstream
file once when the machine is online. Any file is checked by content (427 problems with the expected
task ids) before it is used or cached.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

from neatpipe.bench.humaneval import BenchmarkDataError
from neatpipe.bench.problem import Problem, ProblemSet
from neatpipe.errors import bounded
from neatpipe.io import FileError, atomic_write_bytes, read_bytes, read_text
from neatpipe.vocab import VISIBLE_POLICIES

MBPP_FILENAME = "sanitized-mbpp.json"
MBPP_URL = "https://raw.githubusercontent.com/google-research/google-research/master/mbpp/sanitized-mbpp.json"
MBPP_SIZE = 427
# sha256 of the sorted task ids joined by commas: the content check that also accepts a re-serialised file
MBPP_TASK_IDS_SHA256 = "3faedd88cb8c6172a46de582fdf8fed91ae7cd4f92cab659bb75415f661d07f3"

# The upstream split by task id (Austin et al., 2021).
SPLITS: dict[str, range] = {
    "prompt": range(1, 11),
    "test": range(11, 511),
    "validation": range(511, 601),
    "train": range(601, 975),
}
_FIELDS = {"task_id", "prompt", "code", "test_imports", "test_list"}


def cache_dir() -> Path:
    return Path(os.environ.get("NEATPIPE_CACHE_DIR") or Path.home() / ".cache" / "neatpipe")


def _check_records(records: object, source: str) -> list[dict]:
    if not isinstance(records, list):
        raise BenchmarkDataError(f"{source}: expected a JSON list of problems, got {type(records).__name__}")
    for i, r in enumerate(records):
        if not isinstance(r, dict) or _FIELDS - set(r):
            missing = sorted(_FIELDS - set(r)) if isinstance(r, dict) else ["(not an object)"]
            raise BenchmarkDataError(f"{source}: problem #{i} lacks field(s) {', '.join(missing)}")
    try:
        ids = sorted(r["task_id"] for r in records)
    except TypeError:
        raise BenchmarkDataError(f"{source}: not the sanitized MBPP file (task ids of mixed types)") from None
    digest = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()
    if len(records) != MBPP_SIZE or digest != MBPP_TASK_IDS_SHA256:
        raise BenchmarkDataError(
            f"{source}: not the sanitized MBPP file ({len(records)} problems; expected {MBPP_SIZE} "
            "with the upstream task ids)"
        )
    return records


def _read(path: Path) -> list[dict]:
    try:
        return _check_records(json.loads(read_text(path)), str(path))
    except FileError as exc:
        raise BenchmarkDataError(f"MBPP file {exc}") from None
    except json.JSONDecodeError as exc:
        raise BenchmarkDataError(f"{path}: not valid JSON ({exc})") from None


def _download(dest: Path, timeout_s: float = 30.0) -> None:
    """Fetch the upstream file, check it, and move it into place atomically."""
    with urllib.request.urlopen(MBPP_URL, timeout=timeout_s) as response:  # noqa: S310 (fixed https URL)
        raw = response.read()
    _check_records(json.loads(raw), MBPP_URL)
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dest, raw)


def find_data_file(
    what: str,
    name: str,
    names: Sequence[str],
    url: str,
    fetch: Callable[[Path], None],
    path: str | Path | None = None,
    download: bool = True,
) -> Path:
    """Where a benchmark's data file is, in order: ``path`` (a file, or a folder holding ``names[0]``);
    ``$NEATPIPE_DATA_DIR`` (any of ``names``); the user cache (``names[0]``), filled by ``fetch(dest)``
    from ``url`` when ``download`` is allowed. A ``path`` that is not there is "``name`` file not found";
    offline with no file, the ``BenchmarkDataError`` names ``what``, the file, its URL and where to put it."""
    filename = names[0]
    if path is not None:
        p = Path(path)
        if p.is_dir():
            p = p / filename
        if not p.is_file():
            raise BenchmarkDataError(f"{name} file not found: {p}")
        return p
    data_dir = os.environ.get("NEATPIPE_DATA_DIR")
    if data_dir:
        for name in names:
            if (Path(data_dir) / name).is_file():
                return Path(data_dir) / name
    cached = cache_dir() / filename
    if cached.is_file():
        return cached
    if download:
        try:
            fetch(cached)
            return cached
        except (urllib.error.URLError, OSError, ValueError, FileError) as exc:
            reason = f"download failed ({bounded(str(exc), 200)})"
    else:
        reason = "downloading is turned off"
    raise BenchmarkDataError(
        f"{what} not found and {reason}. Put {filename} (from {url}) in "
        f"$NEATPIPE_DATA_DIR{f' (now {data_dir})' if data_dir else ''} or at {cached}, or pass its path."
    )


def resolve_mbpp_path(path: str | Path | None = None, download: bool = True) -> Path:
    """Find the sanitized MBPP file, downloading it into the cache when allowed and online."""
    return find_data_file("sanitized MBPP", "MBPP", (MBPP_FILENAME,), MBPP_URL, _download, path, download)


def _parse(code: str) -> ast.Module:
    with warnings.catch_warnings():  # some reference solutions use invalid escapes such as "\w"
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return ast.parse(code)


def _entry_point(record: dict) -> str:
    """The function the tests call: the first function the reference defines that the first assert uses."""
    tree = _parse(record["code"])
    # functions first: a test may also construct a class the solution defines (``Pair(5, 24)``)
    defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    defined += [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    test = _parse(record["test_list"][0])
    called = {n.func.id for n in ast.walk(test) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    for name in defined:
        if name in called:
            return name
    raise BenchmarkDataError(f"MBPP task {record['task_id']}: no defined function is called by its tests")


def _signature(code: str, entry_point: str) -> str:
    for node in ast.walk(_parse(code)):
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            args = ast.unparse(node.args)
            return f"def {entry_point}({args}):\n"
    return ""


def split_of(task_id: int) -> str:
    for name, ids in SPLITS.items():
        if task_id in ids:
            return name
    raise ValueError(f"MBPP task id {task_id} is outside every upstream split")


def _problem(record: dict, visible: str) -> Problem:
    tests = tuple(t.strip() for t in record["test_list"])
    entry = _entry_point(record)
    return Problem(
        task_id=f"Mbpp/{record['task_id']}",
        benchmark="mbpp",
        prompt=record["prompt"].strip(),
        entry_point=entry,
        context="",
        signature=_signature(record["code"], entry),
        visible_tests=tests[:1] if visible == "first" else tests,
        hidden_tests=tests,
        test_setup="\n".join(record["test_imports"]),
        reference_solution=record["code"],
        meta={"split": split_of(record["task_id"]), "source_file": record.get("source_file", "")},
    )


@lru_cache(maxsize=8)
def _load(path: str, visible: str) -> tuple[Problem, ...]:
    return tuple(_problem(r, visible) for r in sorted(_read(Path(path)), key=lambda r: r["task_id"]))


def load_mbpp(
    path: str | Path | None = None,
    split: str = "all",
    visible: str = "first",
    download: bool = True,
) -> ProblemSet:
    """Sanitized MBPP problems of one upstream split (``test``, ``validation``, ``train``, ``prompt``, ``all``).

    ``visible`` says which asserts a model may see: ``first`` (the default, so the other asserts stay
    hidden) or ``all`` (the common prompt convention, where visible and hidden tests coincide). The
    choice is recorded in the set's options.
    """
    if split != "all" and split not in SPLITS:
        raise ValueError(f"unknown MBPP split {split!r}; choose one of all, {', '.join(SPLITS)}")
    if visible not in VISIBLE_POLICIES:
        raise ValueError(
            f"unknown visible-test policy {visible!r}; choose one of {', '.join(VISIBLE_POLICIES)}"
        )
    p = resolve_mbpp_path(path, download=download)
    problems = _load(str(p.resolve()), visible)
    if split != "all":
        problems = tuple(q for q in problems if q.meta["split"] == split)
    sha = hashlib.sha256(read_bytes(p)).hexdigest()
    return ProblemSet(
        "mbpp",
        problems,
        {"source": str(p), "sha256": sha, "split": split, "visible_tests": f"{visible} assert(s)"},
    )
