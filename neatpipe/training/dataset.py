"""Training sets from run directories: what the models were asked, answered with code the sandbox's
hidden tests passed (execution feedback as the training signal).

Three kinds, as JSON Lines that ``datasets.load_dataset("json", ...)`` reads and TRL's trainers take as
they are (conversational format):

* ``sft``: a generator's exact request, answered by its candidate that passed the hidden tests;
* ``repair``: a refiner's exact request (problem, failing code, the execution feedback it was shown),
  answered by its fix that passed;
* ``preference``: one request (same messages) answered once passing and once failing (other seeds,
  samples or genomes): ``prompt``, ``chosen``, ``rejected``.

Every example is rebuilt from the run's text store (:mod:`neatpipe.runtime.texts`), so its prompt is the
one the model was sent, byte for byte. Only hidden-test verdicts from the sandbox select examples.
Decontamination is by construction: problems of a run's held-out validation set and of the excluded
benchmarks (HumanEval by default), by normalised task id, are never exported, nor is a problem whose
request contains most of an excluded problem's statement (word n-gram containment, :data:`NGRAM`,
:data:`NEAR_DUPLICATE`); the dataset card lists those near-duplicates.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neatpipe.errors import NeatpipeError, bounded
from neatpipe.io import atomic_write_text, check_output_dir
from neatpipe.runtime.texts import TEXTS_FILE, TextStore, TextStoreError
from neatpipe.runtime.trajectory import TraceStep, Trajectory

KINDS = ("sft", "repair", "preference")
#: Benchmarks whose problems are never exported unless ``exclude`` says otherwise.
DEFAULT_EXCLUDE = ("humaneval",)
BENCHMARKS = ("humaneval", "mbpp")
DEFAULT_PER_PROBLEM = 4
#: Words per n-gram of the near-duplicate check (words: runs of letters, digits and underscores, lowercased).
NGRAM = 8
#: A problem is a near-duplicate of an excluded one when its request holds at least this share of the
#: excluded problem statement's word n-grams.
NEAR_DUPLICATE = 0.5


class DatasetError(NeatpipeError, ValueError):
    """A run directory or option that cannot make a dataset; the message names the file or option."""


# -- task ids ------------------------------------------------------------------------------------------


def norm_id(task_id: str) -> str:
    """A task id as decontamination compares ids: lowercase, every run of other characters one ``/``
    (``HumanEval/0``, ``humaneval_0`` and ``HUMANEVAL-0`` are the same problem)."""
    return "/".join(re.findall(r"[a-z0-9]+", task_id.lower()))


def norm_benchmark(name: str) -> str:
    return "".join(re.findall(r"[a-z0-9]+", name.lower()))


# -- source runs ---------------------------------------------------------------------------------------


@dataclass
class SourceRun:
    """One run directory read for export: its trajectories (the held-out validation ones left out), its
    held-out problems (normalised id -> statement, "" when unknown) and its open text store."""

    path: Path
    layout: str  # "evolution" or "evaluation"
    trajectories: list[Trajectory]
    held_out: dict[str, str]
    store: TextStore
    skipped_old: int = 0  # trajectories written before requests were kept


def _read_lines(path: Path) -> list[Trajectory]:
    opener = gzip.open if path.suffix == ".gz" else open
    out = []
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    out.append(Trajectory.from_dict(json.loads(line)))
                except ValueError as exc:  # JSON and TrajectoryError alike
                    raise DatasetError(f"{path}:{number}: {bounded(str(exc), 200)}") from None
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read: {bounded(str(exc), 200)}") from None
    return out


def _held_out(run_dir: Path) -> dict[str, str]:
    """The held-out validation problems of an evolution run: drawn again from its experiment (the same
    seeded draw the run made), and every task of its validation trajectories."""
    from neatpipe.evolution import build
    from neatpipe.evolution.runlog import EXPERIMENT_FILE
    from neatpipe.experiment import load_experiment

    held: dict[str, str] = {}
    validation = run_dir / "trajectories" / "validation.jsonl.gz"
    if validation.is_file():
        held.update({norm_id(t.task_id): "" for t in _read_lines(validation)})
    path = run_dir / EXPERIMENT_FILE
    try:
        exp = load_experiment(path)
        if exp.mode == "evolve":
            _, problems = build.split_problems(exp, build.load_problems(exp))
            held.update({norm_id(p.task_id): p.task_text for p in problems})
    except NeatpipeError as exc:
        if not held:
            raise DatasetError(
                f"{path}: cannot tell the run's held-out validation problems: {bounded(str(exc), 200)}"
            ) from None
    return held


def load_run(run_dir: str | Path) -> SourceRun:
    """The trajectories, held-out problems and text store of a run directory: an evolution run
    (``trajectories/gen-*.jsonl.gz``) or an evaluation (``trajectories.jsonl``)."""
    root = Path(run_dir)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a run directory")
    if (root / "trajectories.jsonl").is_file():
        layout, files, held = "evaluation", [root / "trajectories.jsonl"], {}
    elif (root / "trajectories").is_dir():
        layout = "evolution"
        files = sorted((root / "trajectories").glob("gen-*[0-9].jsonl.gz"))
        if not files:
            raise DatasetError(
                f"{root / 'trajectories'}: no generation's trajectory file (gen-NNNN.jsonl.gz)"
            )
        held = _held_out(root)
    else:
        raise DatasetError(f"{root}: no trajectories (trajectories.jsonl or trajectories/gen-NNNN.jsonl.gz)")
    if not (root / TEXTS_FILE).is_file():
        raise DatasetError(
            f"{root / TEXTS_FILE}: missing; the run was written before prompts and answers were kept, so "
            "its requests cannot be rebuilt"
        )
    trajectories = [t for f in files for t in _read_lines(f)]
    kept = [t for t in trajectories if all(s.request is not None for s in t.steps if s.model is not None)]
    store = TextStore(root / TEXTS_FILE)
    return SourceRun(root, layout, kept, held, store, len(trajectories) - len(kept))


# -- examples ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """One exported line (``row``) with what the card and the checks need."""

    kind: str
    task_id: str
    benchmark: str
    row: dict[str, Any]
    error_type: str | None
    prompt: str  # the user messages of the request, for the near-duplicate check
    key: str  # identical examples have the same key


def _answer(code: str) -> list[dict[str, str]]:
    """The assistant turn: the passing candidate in the one ```python block the instructions ask for."""
    return [{"role": "assistant", "content": f"```python\n{code.rstrip()}\n```"}]


def _messages(run: SourceRun, t: Trajectory, step: TraceStep) -> list[dict[str, str]]:
    try:
        return run.store.call(t, step).request.messages_as_dicts()
    except TextStoreError as exc:
        raise DatasetError(str(exc)) from None


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _user_text(messages: list[dict[str, str]]) -> str:
    return "\n".join(m["content"] for m in messages if m["role"] == "user")


def _meta(t: Trajectory, run: SourceRun, error_type: str | None) -> dict[str, Any]:
    return {"task_id": t.task_id, "benchmark": t.benchmark, "error_type": error_type, "source": run.path.name}


def sft_examples(run: SourceRun) -> Iterable[Example]:
    """Generator requests answered by a candidate that passed the hidden tests."""
    for t in run.trajectories:
        for s in t.steps:
            if s.role == "generator" and s.hidden is not None and s.hidden.passed:
                messages = _messages(run, t, s) + _answer(s.code)
                yield Example(
                    "sft", t.task_id, t.benchmark, {"messages": messages, **_meta(t, run, None)}, None,
                    _user_text(messages), _digest(messages),
                )  # fmt: skip


def repair_examples(run: SourceRun) -> Iterable[Example]:
    """Refiner requests whose input failed its feedback tests, answered by a fix that passed the hidden
    tests; ``error_type`` is the failure the feedback showed."""
    for t in run.trajectories:
        checked: TraceStep | None = None
        for s in t.steps:
            if s.role == "executor":
                checked = s
            elif s.role == "refiner" and checked is not None and checked.feedback_result is not None:
                fb = checked.feedback_result
                if not fb.passed and s.hidden is not None and s.hidden.passed:
                    messages = _messages(run, t, s) + _answer(s.code)
                    error = fb.error_type or fb.status
                    yield Example(
                        "repair", t.task_id, t.benchmark, {"messages": messages, **_meta(t, run, error)}, error,
                        _user_text(messages), _digest(messages),
                    )  # fmt: skip


def preference_examples(runs: Sequence[SourceRun]) -> Iterable[Example]:
    """Pairs of candidates for the same request messages (any seed, sample or genome, in any run): one
    that passed the hidden tests (chosen) and one that failed (rejected)."""
    groups: dict[tuple[str, tuple], dict[bool, dict[str, tuple[SourceRun, Trajectory, TraceStep]]]] = {}
    for run in runs:
        for t in run.trajectories:
            for s in t.steps:
                if s.role in ("generator", "refiner") and s.hidden is not None and s.request is not None:
                    group = groups.setdefault((t.task_id, s.request.messages), {True: {}, False: {}})
                    group[s.hidden.passed].setdefault(s.code, (run, t, s))
    for (task_id, _), group in sorted(groups.items(), key=lambda kv: (kv[0][0], _digest(kv[0][1]))):
        for (good, (run, t, _step)), (bad, (_, _, bad_step)) in zip(
            sorted(group[True].items()), sorted(group[False].items()), strict=False
        ):
            prompt = _messages(run, t, _step)
            row = {"prompt": prompt, "chosen": _answer(good), "rejected": _answer(bad)}
            error = bad_step.hidden.error_type if bad_step.hidden is not None else None
            yield Example("preference", task_id, t.benchmark, row, error, _user_text(prompt), _digest(row))


# -- decontamination -----------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    """The word n-grams of ``text`` (the whole word sequence when it is shorter than ``n``)."""
    words = _words(text)
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class NearDuplicate:
    task_id: str  # the run's problem
    excluded: str  # the excluded problem whose statement its request contains
    overlap: float  # the share of the excluded statement's n-grams found in the request


def excluded_problems(names: Sequence[str], mbpp: str | Path | None = None) -> dict[str, str]:
    """Normalised task id -> problem statement of every problem of the excluded benchmarks."""
    from neatpipe.bench import BenchmarkDataError, load_humaneval, load_mbpp

    out: dict[str, str] = {}
    for name in names:
        try:
            problems = load_humaneval() if name == "humaneval" else load_mbpp(mbpp, split="all")
        except (BenchmarkDataError, ValueError) as exc:
            raise DatasetError(
                f"--exclude {name}: cannot read the benchmark: {bounded(str(exc), 200)}"
            ) from None
        out.update({norm_id(p.task_id): p.task_text for p in problems})
    return out


def near_duplicates(
    prompts: Mapping[str, Iterable[str]], excluded: Mapping[str, str], threshold: float = NEAR_DUPLICATE
) -> list[NearDuplicate]:
    """The (problem, excluded problem) pairs where one of the problem's request texts holds at least
    ``threshold`` of the excluded statement's word n-grams."""
    grams = {tid: ngrams(text) for tid, text in excluded.items() if text}
    index: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for tid, gs in grams.items():
        for g in gs:
            index[g].append(tid)
    found: dict[tuple[str, str], float] = {}
    for task_id, texts in prompts.items():
        for text in set(texts):
            hits: Counter[str] = Counter()
            mine = ngrams(text)
            for g in mine:
                hits.update(index.get(g, ()))
            words = _words(text)
            for tid, gs in grams.items():  # statements shorter than n words: whole-sequence containment
                if len(next(iter(gs))) < NGRAM and _contains(words, next(iter(gs))):
                    hits[tid] = len(gs)
            for tid, n in hits.items():
                share = n / len(grams[tid])
                if share >= threshold and share > found.get((task_id, tid), 0.0):
                    found[(task_id, tid)] = share
    return [NearDuplicate(a, b, round(v, 3)) for (a, b), v in sorted(found.items())]


def _contains(words: list[str], seq: tuple[str, ...]) -> bool:
    n = len(seq)
    return n > 0 and any(tuple(words[i : i + n]) == seq for i in range(len(words) - n + 1))


# -- the export ----------------------------------------------------------------------------------------


@dataclass
class ExportReport:
    """What an export wrote and left out, for the dataset card."""

    out: Path
    runs: list[SourceRun]
    kinds: tuple[str, ...]
    per_problem: int
    exclude: tuple[str, ...]
    counts: dict[str, int] = field(default_factory=dict)
    error_types: dict[str, Counter] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)
    dropped: Counter = field(default_factory=Counter)
    duplicates: list[NearDuplicate] = field(default_factory=list)


def export_dataset(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    *,
    kinds: Sequence[str] = KINDS,
    per_problem: int = DEFAULT_PER_PROBLEM,
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
    mbpp: str | Path | None = None,
) -> ExportReport:
    """Writes ``OUT/<kind>.jsonl`` for each of ``kinds`` and the dataset card ``OUT/README.md`` from the
    trajectories of ``run_dirs``; see the module docstring and ``docs/training.md``."""
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise DatasetError(f"--kind must be one of {', '.join(KINDS)}, got {bounded(repr(bad or kinds), 80)}")
    unknown = [b for b in exclude if b not in BENCHMARKS]
    if unknown:
        raise DatasetError(
            f"--exclude: unknown benchmark {bounded(unknown[0], 40)!r} (known: {', '.join(BENCHMARKS)})"
        )
    if isinstance(per_problem, bool) or not isinstance(per_problem, int) or per_problem < 1:
        raise DatasetError(f"--per-problem must be a whole number of at least 1, got {per_problem!r}")
    if not run_dirs:
        raise DatasetError("give at least one run directory")
    out_dir = check_output_dir(out)
    excluded = excluded_problems(list(dict.fromkeys(exclude)), mbpp)
    runs = [load_run(d) for d in run_dirs]
    try:
        report = ExportReport(out_dir, runs, tuple(kinds), per_problem, tuple(exclude))
        held = {tid: text for r in runs for tid, text in r.held_out.items()}
        examples: list[Example] = []
        for kind in kinds:
            if kind == "sft":
                examples += [e for r in runs for e in sft_examples(r)]
            elif kind == "repair":
                examples += [e for r in runs for e in repair_examples(r)]
            else:
                examples += list(preference_examples(runs))
        blocked = {**excluded, **held}
        prompts: dict[str, list[str]] = defaultdict(list)
        for e in examples:
            if _excluded_by_id(e, exclude, blocked) is None:
                prompts[e.task_id].append(e.prompt)
        report.duplicates = near_duplicates(prompts, blocked)
        near = {d.task_id for d in report.duplicates}
        chosen: dict[str, list[Example]] = {k: [] for k in kinds}
        seen: set[str] = set()
        per: Counter[tuple[str, str]] = Counter()
        for e in sorted(examples, key=lambda e: (KINDS.index(e.kind), e.task_id, e.key)):
            reason = _excluded_by_id(e, exclude, blocked) or ("near-duplicate" if e.task_id in near else None)
            if reason is None and e.key in seen:
                reason = "identical"
            if reason is None and per[(e.kind, e.task_id)] >= per_problem:
                reason = "per-problem limit"
            if reason is not None:
                report.dropped[(e.kind, reason)] += 1
                continue
            seen.add(e.key)
            per[(e.kind, e.task_id)] += 1
            chosen[e.kind].append(e)
        out_dir.mkdir(parents=True, exist_ok=True)
        for kind, items in chosen.items():
            lines = "".join(json.dumps(e.row, ensure_ascii=False) + "\n" for e in items)
            atomic_write_text(out_dir / f"{kind}.jsonl", lines)
            report.counts[kind] = len(items)
            report.error_types[kind] = Counter(e.error_type or "none" for e in items)
            report.problems[kind] = sorted({e.task_id for e in items})
        atomic_write_text(out_dir / "README.md", dataset_card(report))
    finally:
        for r in runs:
            r.store.close()
    return report


def _excluded_by_id(e: Example, exclude: Sequence[str], blocked: Mapping[str, str]) -> str | None:
    """Why ``e``'s problem may not be exported by its id or benchmark (None when it may)."""
    nid = norm_id(e.task_id)
    if norm_benchmark(e.benchmark) in exclude or nid.split("/")[0] in exclude:
        return "excluded benchmark"
    if nid in blocked:
        return "held out or excluded problem"
    return None


# -- the dataset card ----------------------------------------------------------------------------------


def dataset_card(report: ExportReport) -> str:
    """``README.md`` of an export: sources, models, feedback, counts, problems and decontamination."""
    trajectories = [t for r in report.runs for t in r.trajectories]
    synthetic = any(t.synthetic for t in trajectories)
    models: dict[str, str] = {}
    for t in trajectories:
        for name, label in t.models.items():
            models.setdefault(name, t.model_ids.get(name, label))
    lines = ["# neatpipe training data", ""]
    if synthetic:
        lines += ["**SYNTHETIC**: some answers come from the synthetic coder, not a language model.", ""]
    lines += [
        "Requests rebuilt byte for byte from the runs' text stores, answered by candidates judged by the "
        "sandbox on the benchmark's hidden tests (see docs/training.md).",
        "",
        "## Sources",
        "",
        "| run | layout | trajectories used | older trajectories skipped | held-out problems |",
        "|---|---|---|---|---|",
    ]
    for r in report.runs:
        lines.append(
            f"| {r.path} | {r.layout} | {len(r.trajectories)} | {r.skipped_old} | {len(r.held_out)} |"
        )
    lines += ["", "## Models", "", "| name | identity | synthetic |", "|---|---|---|"]
    for name, ident in sorted(models.items()):
        lines.append(f"| {name} | `{ident}` | {'yes' if ident.startswith('synthetic') else 'no'} |")
    feedback = sorted({t.feedback for t in trajectories})
    lines += ["", f"Feedback policy of the runs: {', '.join(feedback) or 'none'}.", ""]
    lines += ["## Counts", "", f"At most {report.per_problem} examples per problem and kind.", ""]
    lines += ["| kind | file | examples | problems |", "|---|---|---|---|"]
    for kind in report.kinds:
        lines.append(f"| {kind} | {kind}.jsonl | {report.counts[kind]} | {len(report.problems[kind])} |")
    lines += ["", "Per initial error type (repair: the failure the feedback showed; preference: the rejected "
              "answer's hidden-test error; sft: none):", ""]  # fmt: skip
    lines += ["| kind | error type | examples |", "|---|---|---|"]
    for kind in report.kinds:
        for error, n in sorted(report.error_types[kind].items()):
            lines.append(f"| {kind} | {error} | {n} |")
    lines += ["", "Left out:", "", "| kind | reason | examples |", "|---|---|---|"]
    for (kind, reason), n in sorted(report.dropped.items()):
        lines.append(f"| {kind} | {reason} | {n} |")
    lines += [
        "",
        "## Decontamination",
        "",
        f"Never exported: the runs' held-out validation problems and every problem of the excluded "
        f"benchmarks ({', '.join(report.exclude) or 'none'}), compared by normalised task id (lowercase, "
        f"punctuation ignored); and problems whose request holds at least {NEAR_DUPLICATE:.0%} of the word "
        f"{NGRAM}-grams of an excluded or held-out problem's statement (near-duplicates, listed here).",
        "",
    ]
    if report.duplicates:
        lines += ["| problem | excluded problem | n-gram share |", "|---|---|---|"]
        lines += [f"| {d.task_id} | {d.excluded} | {d.overlap:.2f} |" for d in report.duplicates]
    else:
        lines.append("No near-duplicates found.")
    lines += ["", "## Problems", ""]
    for kind in report.kinds:
        lines.append(f"- {kind}: {', '.join(report.problems[kind]) or 'none'}")
    return "\n".join(lines) + "\n"


__all__ = [
    "BENCHMARKS",
    "DEFAULT_EXCLUDE",
    "DEFAULT_PER_PROBLEM",
    "KINDS",
    "NEAR_DUPLICATE",
    "NGRAM",
    "DatasetError",
    "Example",
    "ExportReport",
    "NearDuplicate",
    "SourceRun",
    "dataset_card",
    "excluded_problems",
    "export_dataset",
    "load_run",
    "near_duplicates",
    "ngrams",
    "norm_id",
    "preference_examples",
    "repair_examples",
    "sft_examples",
]
