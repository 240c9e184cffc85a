"""``synthetic:<preset>``: an offline coder that answers pipeline messages for benchmark problems with
real code, right or wrong at calibrated rates.

It exists so that a whole search can run without a model and still get meaningful fitness: pipelines that
execute and refine must score better than pipelines that do not, for the reasons the reference study
found (refinement fixes NameError and SyntaxError far more often than AssertionError; refining correct
code can break it). Every answer is labelled as synthetic: ``identity()`` says so and the backend has
``synthetic = True``, so reports can mark every number it touched.

How an answer is made
---------------------
The coder reads the request's messages (built by :mod:`neatpipe.runtime.messages`): the role from the
system prompt (or from the sections present), the problem from the task text, the previous code and its
feedback from the sections. Then:

* generator: with probability ``q(problem)`` it writes the reference solution; otherwise a version of it
  with one real, executable fault (NameError, SyntaxError, AssertionError, TypeError, drawn from the
  preset's weights). ``q`` is a logistic function of a per-problem difficulty (a hash of the task id),
  calibrated so that the expected first-attempt pass rate over HumanEval's 164 problems is the preset's
  ``first_pass``; the success draw does not depend on the preset, so a stronger preset solves a superset
  of what a weaker one solves for the same request.
* refiner: with a probability per error kind and per feedback (traceback, failing test, analysis) it
  writes the reference; otherwise it returns the same code or a different fault. The probability also
  depends on the problem (harder problems, and problems with a low hashed "fixability", are repaired
  less), so fixes dry up after an iteration or two as in the study. Refining correct code breaks it with
  the preset's ``regression`` probability.
* analyzer: a short explanation naming the error type; for a fault the coder made itself, the right
  cause (quoting the faulty line) with probability ``analysis_accuracy``.

Faults are made by editing the reference source at one site chosen with :mod:`ast` (a misspelt variable,
a missing import, a dropped colon, a changed comparison, a constant off by one, a missing ``range``...),
and each candidate is *run* against the hidden tests (through the sandbox, once per candidate, memoised)
so that an intended AssertionError really fails an assert. When no candidate of a kind produces that
error, another kind is used; a dropped colon on the ``def`` line is the last resort that always works.

Determinism
-----------
An answer depends only on the preset, the problem, the role, the request's seed (only when sampling:
at temperature 0 the seed is ignored, as for a real greedy model and as the completion cache assumes),
the temperature, and the text of the user message (so the previous code and its feedback). All draws
come from ``random.Random`` instances seeded by SHA-256 of those parts; there is no global random state,
and the answer to a request never depends on the rest of its batch.

Token counts are estimates: one token per word (``\\w+``) or punctuation character, which is close to
what code tokenizers give for Python. Latency is reported as 0.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import keyword
import math
import random
import re
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from typing import Any

from neatpipe.bench.assemble import assemble, reference_answer
from neatpipe.bench.humaneval import BenchmarkDataError, load_humaneval
from neatpipe.bench.mbpp import load_mbpp
from neatpipe.bench.problem import Problem, ProblemSet
from neatpipe.genome.prompts import PROMPT_POOLS
from neatpipe.models.base import Backend
from neatpipe.models.errors import SpecError
from neatpipe.models.spec import SyntheticSpec, parse_spec
from neatpipe.models.types import ChatRequest, Completion
from neatpipe.runtime import messages as M
from neatpipe.sandbox.program import ExecResult, Program

# Bump when answers change for the same request, so completion caches keyed on identity() stay honest.
BEHAVIOUR_VERSION = 1

ERROR_KINDS: tuple[str, ...] = ("name", "syntax", "assertion", "type")
REPAIR_KINDS: tuple[str, ...] = (*ERROR_KINDS, "other")
ERROR_TYPES: Mapping[str, str] = {
    "name": "NameError",
    "syntax": "SyntaxError",
    "assertion": "AssertionError",
    "type": "TypeError",
}
# how an error type reported in feedback maps to a repair kind (everything else is "other")
_REPAIR_KIND_OF = {
    "NameError": "name",
    "UnboundLocalError": "name",
    "SyntaxError": "syntax",
    "IndentationError": "syntax",
    "TabError": "syntax",
    "AssertionError": "assertion",
    "TypeError": "type",
}

# How much a repair's chance shrinks when a part of the feedback is missing, per repair kind. A NameError's
# message already names the culprit, so the traceback matters less and the test not at all; an
# AssertionError is nearly hopeless without the failing test. Shared by every preset.
WITHOUT_TRACEBACK: Mapping[str, float] = {
    "name": 0.75,
    "syntax": 0.8,
    "assertion": 0.95,
    "type": 0.7,
    "other": 0.9,
}
WITHOUT_FAILING_TEST: Mapping[str, float] = {
    "name": 1.0,
    "syntax": 1.0,
    "assertion": 0.6,
    "type": 0.9,
    "other": 0.85,
}
# How much a repair depends on the problem's difficulty for the refining model, per repair kind: 0 means
# not at all, 1 means in proportion to the model's own chance of solving the problem. A misspelt name is
# fixed about as easily in a hard problem as in an easy one; a wrong result is fixed only where the model
# understands the problem, which is what makes fixes dry up after the first iteration (study: 22, 7, 1).
DIFFICULTY_DEPENDENCE: Mapping[str, float] = {
    "name": 0.3,
    "syntax": 0.3,
    "assertion": 1.0,
    "type": 0.5,
    "other": 0.7,
}
# The per-problem fixability factor is (k + 1) * h**k for a uniform hash h: mean 1, and for k = 4 more than
# half of the problems get less than 0.5. It makes fixes concentrate on the same problems run after run, so
# that repeated refinement stops paying after an iteration or two, as in the study.
FIXABILITY_SKEW = 4
MAX_REPAIR_PROBABILITY = 0.95
# The temperature at which a preset's ``sharpness`` applies (Ollama's default, the study's setting).
REFERENCE_TEMPERATURE = 0.8
# Programs that check a fault candidate get this CPU-time limit (more for a problem whose reference is
# slow, see FaultChecker): candidates that loop forever are rejected quickly.
CHECK_TIMEOUT_S = 1.0
# At most this many candidates of one fault kind are tried for one answer before the next kind.
TRIES_PER_KIND = 10

OUTCOME_CORRECT = "correct"  # the reference solution
OUTCOME_FAULT = "fault"  # the reference with one fault
OUTCOME_UNCHANGED = "unchanged"  # a refiner that returned the previous code as it was
OUTCOME_ANALYSIS = "analysis"  # an analyzer's explanation
OUTCOME_NON_ANSWER = "non-answer"  # a request about no known problem
OUTCOMES = (OUTCOME_CORRECT, OUTCOME_FAULT, OUTCOME_UNCHANGED, OUTCOME_ANALYSIS, OUTCOME_NON_ANSWER)


# ---------------------------------------------------------------------------------------------------------
# presets


def _check_probability(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{owner}: {name} must be a probability in [0, 1], got {value!r}")


@dataclass(frozen=True)
class FaultWeights:
    """Relative frequency of each fault kind among a model's failed first attempts."""

    name: float
    syntax: float
    assertion: float
    type: float

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int | float) or v < 0 or not math.isfinite(v):
                raise ValueError(f"fault weight {f.name} must be a finite number >= 0, got {v!r}")
        if sum(asdict(self).values()) <= 0:
            raise ValueError("fault weights must not all be 0")

    def as_dict(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in ERROR_KINDS}


@dataclass(frozen=True)
class RepairRates:
    """Probability that one refinement step fixes a failure of each kind, given full feedback (error
    message, traceback and failing test, no analysis). ``other`` covers every other error type
    (IndexError, ValueError, timeouts, ...)."""

    name: float
    syntax: float
    assertion: float
    type: float
    other: float

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_probability("repair rates", f.name, getattr(self, f.name))

    def of(self, kind: str) -> float:
        return float(getattr(self, kind))


@dataclass(frozen=True)
class SyntheticPreset:
    """The behaviour of one synthetic model: what it gets right first, what it breaks, what it repairs.

    ``first_pass``: expected first-attempt pass rate over HumanEval. ``faults``: how first failures split
    by kind. ``repair``: per-step repair probability per error kind with full feedback. ``regression``:
    probability that refining a correct program breaks it. ``new_fault_on_failed_repair``: share of failed
    repairs that return a different fault rather than the same code. ``analysis_accuracy``: probability that
    its analysis of its own fault names the right cause. ``analysis_boost``: repair-probability multiplier
    when the feedback carries an analysis that points at the fault (a third of the boost for one that
    does not). ``sharpness``: slope of the per-problem success curve at ``REFERENCE_TEMPERATURE``; larger
    means the same problems are solved run after run.
    """

    name: str
    stands_for: str
    first_pass: float
    faults: FaultWeights
    repair: RepairRates
    regression: float
    analysis_accuracy: float
    analysis_boost: float = 1.3
    new_fault_on_failed_repair: float = 0.4
    sharpness: float = 3.0

    def __post_init__(self) -> None:
        owner = f"preset {self.name!r}"
        for name in ("first_pass", "regression", "analysis_accuracy", "new_fault_on_failed_repair"):
            _check_probability(owner, name, getattr(self, name))
        if not 0.0 < self.first_pass < 1.0:
            raise ValueError(f"{owner}: first_pass must be strictly between 0 and 1, got {self.first_pass!r}")
        for name in ("analysis_boost", "sharpness"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not (math.isfinite(v) and v > 0):
                raise ValueError(f"{owner}: {name} must be a finite number > 0, got {v!r}")
        if not isinstance(self.faults, FaultWeights):
            raise ValueError(f"{owner}: faults must be a FaultWeights, got {type(self.faults).__name__}")
        if not isinstance(self.repair, RepairRates):
            raise ValueError(f"{owner}: repair must be a RepairRates, got {type(self.repair).__name__}")

    def digest(self) -> str:
        """A short hash of every parameter: part of the backend identity, so caches see any change."""
        return hashlib.sha256(repr(asdict(self)).encode()).hexdigest()[:12]


PRESET_OPTIONS: tuple[str, ...] = (
    "first_pass",
    "regression",
    "analysis_accuracy",
    "analysis_boost",
    "new_fault_on_failed_repair",
    "sharpness",
)

# Calibrated to "Feedback Over Form" (HumanEval, 5 runs per configuration). Per-step repair rates come
# from its forced-refinement trajectories (llama3.2:3b as refiner: NameError 12/23 and 6/9 fixed at the
# first step, AssertionError 7/63 and 6/70, SyntaxError 2 of 3 within three steps; qwen2.5-coder:3b
# refining itself: 1/5 NameError, 1/24 AssertionError) and regressions from its raw pass counts
# (28 of 69 and 21 of 76 correct programs broken by llama3.2:3b's first refinement, 11 of 132 by
# qwen2.5-coder:3b's). small-1.5b has no counterpart in the study and is extrapolated.
PRESETS: Mapping[str, SyntheticPreset] = {
    p.name: p
    for p in (
        SyntheticPreset(
            name="small-1.5b",
            stands_for="a general 1.5B chat model (e.g. qwen2.5:1.5b), extrapolated",
            first_pass=0.33,
            faults=FaultWeights(name=0.20, syntax=0.08, assertion=0.66, type=0.06),
            repair=RepairRates(name=0.45, syntax=0.30, assertion=0.05, type=0.25, other=0.20),
            regression=0.40,
            analysis_accuracy=0.30,
            analysis_boost=1.2,
        ),
        SyntheticPreset(
            name="coder-1.5b",
            stands_for="qwen2.5-coder:1.5b (the study's weak generator: 69/164 first pass)",
            first_pass=0.42,
            faults=FaultWeights(name=0.25, syntax=0.04, assertion=0.68, type=0.03),
            repair=RepairRates(name=0.50, syntax=0.30, assertion=0.07, type=0.30, other=0.25),
            regression=0.30,
            analysis_accuracy=0.35,
        ),
        SyntheticPreset(
            name="general-3b",
            stands_for="llama3.2:3b (solo 76.6/164; the study's refiner)",
            first_pass=0.467,
            faults=FaultWeights(name=0.12, syntax=0.03, assertion=0.80, type=0.05),
            repair=RepairRates(name=0.65, syntax=0.35, assertion=0.10, type=0.30, other=0.30),
            regression=0.35,
            analysis_accuracy=0.50,
        ),
        SyntheticPreset(
            name="coder-3b",
            stands_for="qwen2.5-coder:3b (solo 133.6/164; strong generator, modest refiner)",
            first_pass=0.815,
            faults=FaultWeights(name=0.15, syntax=0.02, assertion=0.80, type=0.03),
            repair=RepairRates(name=0.30, syntax=0.40, assertion=0.05, type=0.40, other=0.30),
            regression=0.08,
            analysis_accuracy=0.45,
        ),
    )
}


def preset_named(name: str, spec: object = None) -> SyntheticPreset:
    """The preset called ``name``; an unknown name is a :class:`SpecError` that lists the presets."""
    try:
        return PRESETS[name]
    except KeyError:
        raise SpecError(
            spec if spec is not None else f"synthetic:{name}",
            "preset",
            f"unknown synthetic preset {name!r}; presets: {', '.join(PRESETS)}",
        ) from None


# ---------------------------------------------------------------------------------------------------------
# deterministic randomness


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()


def _uniform(*parts: object) -> float:
    """A number in (0, 1) that depends only on ``parts``."""
    return (int.from_bytes(_digest(*parts)[:8], "big") + 0.5) / 2.0**64


def _rng(*parts: object) -> random.Random:
    return random.Random(int.from_bytes(_digest(*parts)[:16], "big"))


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def difficulty(problem: Problem) -> float:
    """The problem's difficulty on the logit scale: logit of a uniform hash of benchmark and task id.

    It is the same for every preset, so presets disagree only on how far their skill reaches.
    """
    h = _uniform("difficulty", problem.benchmark, problem.task_id)
    return math.log(h / (1.0 - h))


@lru_cache(maxsize=1)
def _calibration_difficulties() -> tuple[float, ...]:
    return tuple(difficulty(p) for p in load_humaneval())


@lru_cache(maxsize=256)
def _skill(first_pass: float, slope: float) -> float:
    """The skill at which the mean success probability over HumanEval is ``first_pass`` (bisection)."""
    zs = _calibration_difficulties()
    lo, hi = -40.0, 40.0
    for _ in range(80):
        mid = (lo + hi) / 2
        mean = sum(_sigmoid(slope * (mid - z)) for z in zs) / len(zs)
        lo, hi = (mid, hi) if mean < first_pass else (lo, mid)
    return (lo + hi) / 2


def _slope(preset: SyntheticPreset, temperature: float) -> float:
    """Sharper at low temperature (the same problems every time), flatter when sampling hot."""
    return preset.sharpness * (1.0 + REFERENCE_TEMPERATURE) / (1.0 + temperature)


def first_pass_probability(preset: SyntheticPreset, problem: Problem, temperature: float = 0.0) -> float:
    """Probability that ``preset``'s first attempt at ``problem`` is the correct solution."""
    slope = _slope(preset, temperature)
    return _sigmoid(slope * (_skill(preset.first_pass, slope) - difficulty(problem)))


@lru_cache(maxsize=256)
def _failure_mean_skill(first_pass: float, sharpness: float) -> float:
    """Mean success probability over the HumanEval problems a model fails: E[q(1-q)] / E[1-q].

    The repair rates are averages over real failures, so a repair's difficulty factor is the model's
    success probability on the problem divided by this mean (1 on average over its own failures).
    """
    skill = _skill(first_pass, sharpness)
    qs = [_sigmoid(sharpness * (skill - z)) for z in _calibration_difficulties()]
    return sum(q * (1 - q) for q in qs) / sum(1 - q for q in qs)


def _weighted_order(weights: Mapping[str, float], rng: random.Random) -> list[str]:
    """Kinds in a random order where heavier kinds tend to come first (weighted sampling without
    replacement); kinds of weight 0 come last, in a fixed order."""
    keyed = [(-math.log(rng.random() + 1e-300) / w, k) for k, w in weights.items() if w > 0]
    rest = [k for k, w in weights.items() if w <= 0]
    return [k for _, k in sorted(keyed)] + rest


# ---------------------------------------------------------------------------------------------------------
# token estimates


_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def estimate_tokens(text: str) -> int:
    """Words and punctuation characters: close to a code tokenizer's count for Python and English."""
    return len(_TOKEN_RE.findall(text))


def _truncate_tokens(text: str, max_tokens: int) -> str:
    for i, m in enumerate(_TOKEN_RE.finditer(text)):
        if i == max_tokens:
            return text[: m.start()].rstrip(" ")
    return text


# ---------------------------------------------------------------------------------------------------------
# faults


@dataclass(frozen=True)
class Fault:
    """The reference solution with one fault: the code, where the fault is and what the right fix is.

    ``key`` is the text an analysis that found the cause quotes (the faulty line, the misspelt name or
    the missing import); ``line`` is the 1-based line of the fault in ``code``.
    """

    kind: str
    code: str
    site: str
    cause: str
    key: str
    line: int

    @property
    def error_type(self) -> str:
        return ERROR_TYPES[self.kind]


def _parse(code: str) -> ast.Module:
    with warnings.catch_warnings():  # MBPP references use invalid escapes such as "\d"
        warnings.simplefilter("ignore")
        return ast.parse(code)


def _compile_error(code: str) -> type[BaseException] | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            compile(code, "<candidate>", "exec")
        except (SyntaxError, ValueError) as exc:
            return type(exc)
    return None


class _Source:
    """Character offsets for AST positions (which count UTF-8 bytes within a line)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode()[:col].decode(errors="ignore"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (
            self.offset(node.lineno, node.col_offset),  # type: ignore[attr-defined]
            self.offset(node.end_lineno, node.end_col_offset),  # type: ignore[attr-defined]
        )

    def segment(self, node: ast.AST) -> str:
        a, b = self.span(node)
        return self.text[a:b]

    def line_at(self, offset: int) -> int:
        """1-based line number of a character offset."""
        lo, hi = 0, len(self.lines)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1


def _edit(src: _Source, start: int, end: int, new: str) -> tuple[str, int]:
    """The source with ``[start, end)`` replaced by ``new``, and the 1-based line of the edit."""
    return src.text[:start] + new + src.text[end:], src.line_at(start)


def _line_text(code: str, line: int) -> str:
    lines = code.splitlines()
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


_BUILTIN_MISNAMES = {
    "sorted": "sort",
    "reversed": "reverse",
    "len": "length",
    "max": "maximum",
    "min": "minimum",
    "abs": "absolute",
    "enumerate": "enumerated",
}
_COMPARE_SWAPS: dict[type, tuple[str, str, str]] = {
    # op type: (regex of its text, replacement, a word for it)
    ast.Lt: (r"(?<![<>=!])<(?![<=])", "<=", "<"),
    ast.LtE: (r"<=", "<", "<="),
    ast.Gt: (r"(?<![<>=!-])>(?![>=])", ">=", ">"),
    ast.GtE: (r">=", ">", ">="),
    ast.Eq: (r"==", "!=", "=="),
    ast.NotEq: (r"!=", "==", "!="),
    ast.In: (r"(?<!not )\bin\b", "not in", "in"),
    ast.NotIn: (r"\bnot\s+in\b", "in", "not in"),
}
_ARITH_SWAPS: dict[type, tuple[str, str, str]] = {
    ast.Add: (r"\+", "-", "+"),
    ast.Sub: (r"(?<![-eE])-", "+", "-"),
    ast.BitAnd: (r"&", "|", "&"),
    ast.BitOr: (r"\|", "&", "|"),
}
# methods a model confuses with a sibling: the call still works, the result is wrong
_METHOD_SWAPS = {
    "lower": "upper",
    "upper": "lower",
    "startswith": "endswith",
    "endswith": "startswith",
    "isupper": "islower",
    "islower": "isupper",
    "isdigit": "isalpha",
    "isalpha": "isdigit",
    "lstrip": "rstrip",
    "rstrip": "lstrip",
    "find": "rfind",
    "rfind": "find",
    "swapcase": "upper",
    "title": "capitalize",
    "capitalize": "title",
    "keys": "values",
    "values": "keys",
    "nlargest": "nsmallest",
    "nsmallest": "nlargest",
}
_BUILTIN_SWAPS = {"min": "max", "max": "min", "any": "all", "all": "any", "sum": "len"}
_HEADER_RE = re.compile(r"^\s*(if|elif|else|for|while|try|except|finally|with|def)\b")


def _one_match(pattern: str, text: str) -> re.Match[str] | None:
    found = list(re.finditer(pattern, text))
    return found[0] if len(found) == 1 else None


def _between(src: _Source, left: ast.AST, right: ast.AST) -> tuple[int, str]:
    a = src.span(left)[1]
    b = src.span(right)[0]
    return a, src.text[a:b]


def _needs_parens(node: ast.AST) -> bool:
    return not isinstance(node, ast.Name | ast.Call | ast.Attribute | ast.Subscript | ast.Constant)


class _FaultMaker:
    """All single-site faults of one reference source, per kind, in a fixed order."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.code = reference_answer(problem, "chat")
        self.src = _Source(self.code)
        self.tree = _parse(self.code)
        self.parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
        words = set(re.findall(r"\w+", "\n".join([self.code, problem.context, problem.test_setup])))
        self.taken = words | set(dir(builtins)) | set(keyword.kwlist)
        self.functions = {n.name for n in ast.walk(self.tree) if isinstance(n, ast.FunctionDef)}
        self.assigned = {
            n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
        }
        for fn in ast.walk(self.tree):
            if isinstance(fn, ast.FunctionDef | ast.Lambda):
                a = fn.args
                self.assigned |= {x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs]}
                self.assigned |= {x.arg for x in (a.vararg, a.kwarg) if x is not None}
        self.loads = Counter(
            n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
        )
        # edits inside a while loop too often make it loop forever: such candidates only cost check time
        self.in_while = {d for w in ast.walk(self.tree) if isinstance(w, ast.While) for d in ast.walk(w)}
        self.entry_line = next(
            (
                n.lineno
                for n in ast.walk(self.tree)
                if isinstance(n, ast.FunctionDef) and n.name == problem.entry_point
            ),
            1,
        )

    def _enclosing(self, node: ast.AST) -> Iterator[ast.AST]:
        while node in self.parents:
            node = self.parents[node]
            yield node

    def _fault(
        self, kind: str, site: str, start: int, end: int, new: str, cause: str, key: str = ""
    ) -> Fault:
        code, line = _edit(self.src, start, end, new)
        return Fault(kind, code, site, cause, key or _line_text(code, line), line)

    def _typo(self, name: str) -> str | None:
        options = [name[:-1] if name.endswith("s") and len(name) > 2 else name + "s"]
        if len(name) >= 5:
            options.append(name[:3])
        options += [name + "_list", name + "1"]
        for o in options:
            if o.isidentifier() and o not in self.taken:
                return o
        return None

    # -- one method per kind ------------------------------------------------------------------------

    def name(self) -> Iterator[Fault]:
        seen: Counter[str] = Counter()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                if node.id in self.assigned and seen[node.id] < 2:
                    seen[node.id] += 1
                    typo = self._typo(node.id)
                    if typo:
                        a, b = self.src.span(node)
                        yield self._fault(
                            "name",
                            f"typo {node.id}->{typo}@{node.lineno}:{node.col_offset}",
                            a,
                            b,
                            typo,
                            f"`{typo}` is not defined anywhere: the variable is called `{node.id}`",
                            typo,
                        )
                elif node.id in _BUILTIN_MISNAMES and node.id not in self.assigned:
                    new = _BUILTIN_MISNAMES[node.id]
                    if new not in self.taken:
                        a, b = self.src.span(node)
                        yield self._fault(
                            "name",
                            f"builtin {node.id}->{new}@{node.lineno}:{node.col_offset}",
                            a,
                            b,
                            new,
                            f"`{new}` is not a Python builtin; the function is `{node.id}`",
                            new,
                        )
            elif isinstance(node, ast.Import | ast.ImportFrom):
                bound = [(a.asname or a.name).split(".")[0] for a in node.names]
                if not any(self.loads[b] for b in bound):
                    continue
                first, last = node.lineno, node.end_lineno or node.lineno
                a = self.src.starts[first - 1]
                b = self.src.starts[last]
                statement = self.src.segment(node)
                if self.src.text[a:b].strip() != statement.strip():
                    continue  # the import shares its line with other code
                used = next(b for b in bound if self.loads[b])
                yield self._fault(
                    "name",
                    f"import {statement}@{first}",
                    a,
                    b,
                    "",
                    f"`{used}` is used but never imported: the line `{statement.strip()}` is missing",
                    statement.strip(),
                )

    def syntax(self) -> Iterator[Fault]:
        for i, line in enumerate(self.src.lines, 1):
            stripped = line.rstrip()
            if i == self.entry_line or not stripped:
                continue
            if stripped.endswith(":") and _HEADER_RE.match(stripped):
                at = self.src.starts[i - 1] + len(stripped) - 1
                yield self._fault(
                    "syntax", f"colon@{i}", at, at + 1, "", f"the line `{stripped.strip()}` lacks its colon"
                )
        for node in ast.walk(self.tree):
            if isinstance(node, ast.If | ast.While) and isinstance(node.test, ast.Compare):
                test = node.test
                if len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
                    base, between = _between(self.src, test.left, test.comparators[0])
                    m = _one_match(r"==", between)
                    if m:
                        yield self._fault(
                            "syntax",
                            f"assign-in-condition@{node.lineno}",
                            base + m.start(),
                            base + m.end(),
                            "=",
                            "the condition uses `=` (assignment) where the comparison `==` is needed",
                        )
        for i, line in enumerate(self.src.lines, 1):
            stripped = line.rstrip()
            if i != self.entry_line and stripped.endswith((")", "]")) and not _HEADER_RE.match(stripped):
                at = self.src.starts[i - 1] + len(stripped) - 1
                yield self._fault(
                    "syntax",
                    f"unclosed@{i}",
                    at,
                    at + 1,
                    "",
                    f"the line `{stripped.strip()}` does not close its bracket",
                )

    def type(self) -> Iterator[Fault]:
        for node in ast.walk(self.tree):
            if node in self.in_while:
                continue
            if isinstance(node, ast.For) and isinstance(node.iter, ast.Call):
                call = node.iter
                if (
                    isinstance(call.func, ast.Name)
                    and call.func.id == "range"
                    and len(call.args) == 1
                    and not call.keywords
                ):
                    a, b = self.src.span(call)
                    arg = self.src.segment(call.args[0])
                    yield self._fault(
                        "type",
                        f"range-dropped@{node.lineno}",
                        a,
                        b,
                        arg,
                        f"the loop iterates over the number `{arg}` itself; it needs `range({arg})`",
                    )
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
                fname = node.func.id
                if fname in ("str", "int", "float", "list") and len(node.args) == 1:
                    a, b = self.src.span(node)
                    arg = self.src.segment(node.args[0])
                    yield self._fault(
                        "type",
                        f"unwrap-{fname}@{node.lineno}:{node.col_offset}",
                        a,
                        b,
                        arg if not _needs_parens(node.args[0]) else f"({arg})",
                        f"`{arg}` is used as it is where `{fname}({arg})` is needed",
                    )
                elif (
                    fname in self.functions
                    and node.args
                    and not any(isinstance(x, ast.Starred) for x in node.args)
                ):
                    a, b = self.src.span(node)
                    kept = ", ".join(self.src.segment(x) for x in node.args[:-1])
                    yield self._fault(
                        "type",
                        f"missing-arg@{node.lineno}:{node.col_offset}",
                        a,
                        b,
                        f"{self.src.segment(node.func)}({kept})",
                        f"the call to `{fname}` leaves out its last argument "
                        f"`{self.src.segment(node.args[-1])}`",
                    )
            elif (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.Add | ast.Sub)
                and isinstance(node.right, ast.Constant)
                and type(node.right.value) is int
            ):
                a, b = self.src.span(node.right)
                value = node.right.value
                yield self._fault(
                    "type",
                    f"str-constant@{node.lineno}:{node.col_offset}",
                    a,
                    b,
                    repr(str(value)),
                    f"the string `{str(value)!r}` is used in arithmetic where the number {value} is needed",
                )

    def assertion(self) -> Iterator[Fault]:
        for node in ast.walk(self.tree):
            if node in self.in_while:
                continue
            parent = self.parents.get(node)
            anchor = node.iter if isinstance(node, ast.comprehension) else node
            where = f"{getattr(anchor, 'lineno', 0)}:{getattr(anchor, 'col_offset', 0)}"
            if isinstance(node, ast.Constant) and type(node.value) is int:
                c = node.value
                news = [c + 1]
                if c >= 2 or (c == 1 and not isinstance(parent, ast.AugAssign)):
                    news.append(c - 1)
                a, b = self.src.span(node)
                for new in news:
                    yield self._fault(
                        "assertion",
                        f"const {c}->{new}@{where}",
                        a,
                        b,
                        str(new),
                        f"it uses {new} where {c} is needed",
                    )
            elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
                a, b = self.src.span(node)
                new = str(not node.value)
                yield self._fault(
                    "assertion",
                    f"bool->{new}@{where}",
                    a,
                    b,
                    new,
                    f"it uses {new} where {node.value} is needed",
                )
            elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE_SWAPS:
                pattern, new, old = _COMPARE_SWAPS[type(node.ops[0])]
                base, between = _between(self.src, node.left, node.comparators[0])
                m = _one_match(pattern, between)
                if m:
                    yield self._fault(
                        "assertion",
                        f"compare {old}->{new}@{where}",
                        base + m.start(),
                        base + m.end(),
                        new,
                        f"the comparison uses `{new}` where `{old}` is needed",
                    )
            elif isinstance(node, ast.BinOp) and type(node.op) in _ARITH_SWAPS:
                if any(
                    isinstance(x, ast.Constant) and isinstance(x.value, str) for x in (node.left, node.right)
                ):
                    continue
                pattern, new, old = _ARITH_SWAPS[type(node.op)]
                base, between = _between(self.src, node.left, node.right)
                m = _one_match(pattern, between)
                if m:
                    yield self._fault(
                        "assertion",
                        f"arith {old}->{new}@{where}",
                        base + m.start(),
                        base + m.end(),
                        new,
                        f"it computes with `{new}` where `{old}` is needed",
                    )
            elif isinstance(node, ast.BoolOp) and len(node.values) == 2:
                old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
                base, between = _between(self.src, node.values[0], node.values[1])
                m = _one_match(rf"\b{old}\b", between)
                if m:
                    yield self._fault(
                        "assertion",
                        f"boolop {old}->{new}@{where}",
                        base + m.start(),
                        base + m.end(),
                        new,
                        f"the condition joins its parts with `{new}` where `{old}` is needed",
                    )
            elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
                a = self.src.span(node)[0]
                b = self.src.span(node.operand)[0]
                if re.fullmatch(r"not\s+", self.src.text[a:b]):
                    yield self._fault(
                        "assertion",
                        f"drop-not@{where}",
                        a,
                        b,
                        "",
                        "the condition lost its `not` and is inverted",
                    )
            elif isinstance(node, ast.Constant) and type(node.value) is float and math.isfinite(node.value):
                a, b = self.src.span(node)
                new = repr(node.value + 1.0)
                yield self._fault(
                    "assertion",
                    f"float {node.value}->{new}@{where}",
                    a,
                    b,
                    new,
                    f"it uses {new} where {node.value} is needed",
                )
            elif isinstance(node, ast.Name) and node.id in _BUILTIN_SWAPS and node.id not in self.assigned:
                new = _BUILTIN_SWAPS[node.id]
                a, b = self.src.span(node)
                yield self._fault(
                    "assertion",
                    f"{node.id}->{new}@{where}",
                    a,
                    b,
                    new,
                    f"it calls `{new}` where `{node.id}` is needed",
                )
            elif (
                isinstance(node, ast.Attribute)
                and node.attr in _METHOD_SWAPS
                and isinstance(parent, ast.Call)
            ):
                new = _METHOD_SWAPS[node.attr]
                a, b = self.src.span(node)
                text = self.src.text[a:b]
                if text.endswith("." + node.attr):
                    yield self._fault(
                        "assertion",
                        f"method {node.attr}->{new}@{where}",
                        b - len(node.attr),
                        b,
                        new,
                        f"it calls `.{new}()` where `.{node.attr}()` is needed",
                    )
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "join"
                and isinstance(node.func.value, ast.Constant)
                and isinstance(node.func.value.value, str)
                and node.func.value.value in ("", " ")
            ):
                old = node.func.value.value
                new = repr(" " if old == "" else "")
                a, b = self.src.span(node.func.value)
                yield self._fault(
                    "assertion",
                    f"join-sep@{where}",
                    a,
                    b,
                    new,
                    f"it joins with {new} where {old!r} is needed",
                )
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "len"
                and "len" not in self.assigned
                and not isinstance(parent, ast.BinOp)
            ):
                a, b = self.src.span(node)
                text = self.src.segment(node)
                for delta in ("- 1", "+ 1"):
                    yield self._fault(
                        "assertion",
                        f"len {delta}@{where}",
                        a,
                        b,
                        f"({text} {delta})",
                        f"it uses `{text} {delta}` where `{text}` is needed (off by one)",
                    )
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "sorted"
                and len(node.args) == 1
                and not any(k.arg == "reverse" for k in node.keywords)
            ):
                a, b = self.src.span(node)
                text = self.src.segment(node)
                if text.endswith(")"):
                    yield self._fault(
                        "assertion",
                        f"sorted-reverse@{where}",
                        b - 1,
                        b,
                        ", reverse=True)",
                        "it sorts in descending order where ascending order is needed",
                    )
            elif isinstance(node, ast.Return) and isinstance(node.value, ast.Name):
                fn = next((f for f in self._enclosing(node) if isinstance(f, ast.FunctionDef)), None)
                params = [x.arg for x in fn.args.args] if fn else []
                if params and node.value.id not in params:
                    a, b = self.src.span(node.value)
                    yield self._fault(
                        "assertion",
                        f"return-param@{where}",
                        a,
                        b,
                        params[0],
                        f"it returns `{params[0]}` where the computed `{node.value.id}` is needed",
                    )
            elif isinstance(node, ast.comprehension) and node.ifs:
                a = self.src.span(node.iter)[1]
                b = self.src.span(node.ifs[0])[1]
                if re.fullmatch(r"\s*if\s+", self.src.text[a : self.src.span(node.ifs[0])[0]]):
                    cond = self.src.segment(node.ifs[0])
                    yield self._fault(
                        "assertion",
                        f"drop-filter@{where}",
                        a,
                        b,
                        "",
                        f"the comprehension lost its filter `if {cond}`",
                    )
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "range"
                and 1 <= len(node.args) <= 2
                and not isinstance(node.args[-1], ast.Constant)
            ):
                stop = node.args[-1]
                a, b = self.src.span(stop)
                text = self.src.segment(stop)
                text = f"({text})" if _needs_parens(stop) else text
                for delta in ("+ 1", "- 1"):
                    yield self._fault(
                        "assertion",
                        f"range-stop {delta}@{where}",
                        a,
                        b,
                        f"{text} {delta}",
                        f"the range stops at `{text} {delta}` instead of `{text}` (off by one)",
                    )

    def candidates(self, kind: str) -> tuple[Fault, ...]:
        """Distinct, compiling (or, for ``syntax``, exactly-SyntaxError) faults of ``kind``."""
        out: dict[str, Fault] = {}
        for fault in getattr(self, kind)():
            if fault.code == self.code or fault.code in out:
                continue
            error = _compile_error(fault.code)
            if (kind == "syntax") != (error is SyntaxError) or (kind != "syntax" and error is not None):
                continue
            out[fault.code] = fault
        return tuple(out.values())

    def last_resort(self) -> Fault:
        """A SyntaxError that every function has: the ``def`` line without its colon."""
        line = self.src.lines[self.entry_line - 1]
        stripped = line.rstrip()
        at = self.src.starts[self.entry_line - 1] + len(stripped) - 1
        if not stripped.endswith(":"):  # a def line with a trailing comment: break the parenthesis instead
            at = self.src.starts[self.entry_line - 1] + stripped.index("(")
            return self._fault(
                "syntax", "def-paren", at, at + 1, "[", "the `def` line opens `[` for its parameters"
            )
        return self._fault(
            "syntax", "def-colon", at, at + 1, "", f"the line `{stripped.strip()}` lacks its colon"
        )


def fault_candidates(problem: Problem, kind: str) -> tuple[Fault, ...]:
    """Every single-site fault of ``kind`` the coder can make in ``problem``'s reference, not yet checked
    against the tests (a candidate may still pass, or fail with another error)."""
    if kind not in ERROR_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; kinds: {', '.join(ERROR_KINDS)}")
    return _FaultMaker(problem).candidates(kind)


# ---------------------------------------------------------------------------------------------------------
# checking candidates


Runner = Callable[[Sequence[Program]], Sequence[ExecResult]]


class FaultChecker:
    """Runs fault candidates against their problem's hidden tests, once each, and remembers the outcome.

    The outcome of a program is a pure function of its code (up to timeouts on a badly overloaded
    machine), so memoising it keeps answers deterministic while paying for each run once. Share one
    checker between coders (``SyntheticCoder(..., checker=c)``) to share the memo. ``runner`` runs a
    batch of programs in order (``Sandbox().run_many``); by default the checker starts its own sandbox
    on first use and stops it in :meth:`close`.

    A candidate's CPU-time limit is ``timeout_s``, or three times the CPU time the problem's reference
    needs plus half a second when that is more (the reference is run once per problem to find out),
    capped at the problem's own limit: a candidate that loops forever costs little, a slow reference
    stays checkable.
    """

    def __init__(self, runner: Runner | None = None, timeout_s: float = CHECK_TIMEOUT_S) -> None:
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not timeout_s > 0:
            raise ValueError(f"FaultChecker timeout_s must be a number > 0, got {timeout_s!r}")
        self._runner = runner
        self._sandbox: Any = None
        self.timeout_s = float(timeout_s)
        self._memo: dict[tuple[str, str, str], str | None] = {}
        self._limits: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self.programs_run = 0

    @staticmethod
    def _key(problem: Problem, code: str) -> tuple[str, str, str]:
        return (problem.benchmark, problem.task_id, hashlib.sha256(code.encode()).hexdigest())

    def known(self, problem: Problem, code: str) -> bool:
        return self._key(problem, code) in self._memo

    def outcome(self, problem: Problem, code: str) -> str | None:
        """The error type the hidden tests gave (None: passed); the candidate must have been checked."""
        return self._memo[self._key(problem, code)]

    def check(self, items: Iterable[tuple[Problem, str]]) -> None:
        """Run every not-yet-checked ``(problem, code)`` in one batch."""
        with self._lock:
            todo: dict[tuple[str, str, str], tuple[Problem, str]] = {}
            for problem, code in items:
                key = self._key(problem, code)
                if key not in self._memo:
                    todo[key] = (problem, code)
            if not todo:
                return
            self._time_references([p for p, _ in todo.values()])
            programs = [
                assemble(
                    p,
                    code,
                    tests="hidden",
                    style="chat",
                    extract=False,
                    timeout_s=self._limits[(p.benchmark, p.task_id)],
                )
                for p, code in todo.values()
            ]
            results = self._run(programs)
            for key, result in zip(todo, results, strict=True):
                self._memo[key] = None if result.passed else (result.error_type or str(result.status))

    def _time_references(self, problems: Sequence[Problem]) -> None:
        new = {(p.benchmark, p.task_id): p for p in problems if (p.benchmark, p.task_id) not in self._limits}
        if not new:
            return
        programs = [
            assemble(p, reference_answer(p, "chat"), tests="hidden", style="chat", extract=False)
            for p in new.values()
        ]
        for key, p, result in zip(new, new.values(), self._run(programs), strict=True):
            needed = 3.0 * result.extra.get("cpu_s", result.duration_s) + 0.5  # CPU time, as limits are
            self._limits[key] = min(p.time_limit_s, max(self.timeout_s, needed))

    def _run(self, programs: Sequence[Program]) -> list[ExecResult]:
        if self._runner is None:
            from neatpipe.sandbox import Sandbox

            self._sandbox = Sandbox().start()
            self._runner = self._sandbox.run_many
        results = list(self._runner(programs))
        if len(results) != len(programs):
            raise RuntimeError(f"fault checker: {len(results)} results for {len(programs)} programs")
        self.programs_run += len(programs)
        return results

    def close(self) -> None:
        """Stop the sandbox this checker started (a runner given by the caller is left alone)."""
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None
            self._runner = None


# ---------------------------------------------------------------------------------------------------------
# reading requests


_SYSTEM_ROLES: dict[str, str] = {v.system: role for role, pool in PROMPT_POOLS.items() for v in pool}


def _norm(text: str) -> str:
    """Text compared line by line without trailing spaces or blank lines."""
    return "\n".join(line.rstrip() for line in text.strip().splitlines() if line.strip())


@dataclass(frozen=True)
class _Reading:
    role: str
    problem: Problem | None
    user: str
    feedback: M.Feedback


def _infer_role(system: str | None, sections: Mapping[str, str]) -> str:
    if system is not None and system in _SYSTEM_ROLES:
        return _SYSTEM_ROLES[system]
    instructions = sections.get(M.INSTRUCTIONS_HEADING, "")
    for role, prefix in M.INSTRUCTION_PREFIXES.items():
        if instructions.startswith(prefix):
            return role
    if M.CODE_HEADING in sections or M.RESULT_HEADING in sections:
        return "analyzer" if "do not write code" in instructions.lower() else "refiner"
    return "generator"


class _ProblemIndex:
    """Finds the problem a user message is about: exact task text, then MBPP description, then search."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        self.by_text: dict[str, list[Problem]] = {}
        self.by_prompt: dict[str, list[Problem]] = {}
        for p in self.problems:
            self.by_text.setdefault(_norm(p.task_text), []).append(p)
            self.by_prompt.setdefault(_norm(p.prompt), []).append(p)
        self.prompts = [(_norm(p.prompt), p) for p in self.problems if p.prompt.strip()]

    @staticmethod
    def _pick(candidates: Sequence[Problem], user: str) -> Problem:
        if len(candidates) > 1:
            named = [p for p in candidates if re.search(rf"\b{re.escape(p.entry_point)}\b", user)]
            candidates = named or candidates
            tested = [p for p in candidates if p.visible_tests and p.visible_tests[0] in user]
            candidates = tested or candidates
        return min(candidates, key=lambda p: (p.benchmark, p.task_id))

    def find(self, user: str, sections: Mapping[str, str]) -> Problem | None:
        task = sections.get(M.TASK_HEADING)
        if task is not None:
            exact = self.by_text.get(_norm(task))
            if exact:
                return self._pick(exact, user)
            first = _norm(task.split("\nYour code should pass")[0])
            described = self.by_prompt.get(first)
            if described:
                return self._pick(described, user)
        text = _norm(user)
        found = [p for prompt, p in self.prompts if prompt in text]
        if not found:
            return None
        longest = max(len(p.prompt) for p in found)
        return self._pick([p for p in found if len(p.prompt) == longest], user)


# ---------------------------------------------------------------------------------------------------------
# answers


@dataclass(frozen=True)
class SyntheticAnswer:
    """One answer with what the coder meant by it, for tests, docs and debugging.

    ``outcome`` is one of :data:`OUTCOMES`; ``fault`` is the fault written (for ``fault``) or, for an
    analyzer, the coder's own fault that it analysed (None when the code was not its own).
    """

    text: str
    role: str
    task_id: str | None
    outcome: str
    fault: Fault | None = None

    @property
    def intended_error(self) -> str | None:
        return self.fault.error_type if self.outcome == OUTCOME_FAULT and self.fault else None


@dataclass(frozen=True)
class _Plan:
    """A decided answer that needs no checked fault: its outcome, its payload and its text draws."""

    outcome: str
    payload: object
    rng: random.Random


@dataclass
class _Need:
    """An answer waiting for a checked fault: kinds to try in order, and codes it must not repeat."""

    problem: Problem
    kinds: list[str]
    salt: tuple[object, ...]
    exclude: frozenset[str]
    rng: random.Random
    fault: Fault | None = None


_GEN_INTROS = (
    "",
    "Here is the implementation:\n\n",
    "Here is a Python function that solves the task:\n\n",
    "Sure! Here's the solution:\n\n",
)
_GEN_OUTROS = ("", "", "\n\nThe function follows the specification in the task.")
_FIX_INTROS = (
    "Here is the corrected function:\n\n",
    "I fixed the problem shown in the feedback. Here is the updated code:\n\n",
    "",
    "The error comes from a bug in the previous version. Corrected code:\n\n",
)


def _code_block(intro: str, code: str, outro: str = "") -> str:
    return f"{intro}```python\n{code.strip(chr(10))}\n```{outro}"


class SyntheticCoder(Backend):
    """A clearly labelled stand-in for a small code model, answering the pipeline's messages offline.

    ``problems``: the problems it can answer about (a ProblemSet, or several); by default HumanEval plus
    sanitized MBPP when ``load_mbpp(download=False)`` finds its file. ``checker`` (or ``runner``, the
    function that runs programs, e.g. ``sandbox.run_many``) checks fault candidates; by default a
    private sandbox is started on first need.
    """

    kind = "synthetic"
    synthetic = True

    def __init__(
        self,
        preset: str | SyntheticPreset = "general-3b",
        problems: ProblemSet | Sequence[ProblemSet] | None = None,
        *,
        checker: FaultChecker | None = None,
        runner: Runner | None = None,
        label: str | None = None,
    ) -> None:
        self.preset = preset if isinstance(preset, SyntheticPreset) else preset_named(preset)
        super().__init__(label or f"synthetic:{self.preset.name}")
        if checker is not None and runner is not None:
            raise ValueError("SyntheticCoder: give a checker or a runner, not both")
        self._own_checker = checker is None
        self.checker = checker or FaultChecker(runner)
        sets = self._problem_sets(problems)
        self.problem_sets = sets
        self._index = _ProblemIndex([p for s in sets for p in s])
        self._makers: dict[tuple[str, str], _FaultMaker] = {}
        self._candidates: dict[tuple[str, str, str], tuple[Fault, ...]] = {}
        self._known: dict[tuple[str, str], dict[str, Fault | None]] = {}
        self._lock = threading.Lock()
        ids = ",".join(sorted(f"{p.benchmark}/{p.task_id}" for p in self._index.problems))
        self._problems_digest = hashlib.sha256(ids.encode()).hexdigest()[:12]

    @staticmethod
    def _problem_sets(problems: ProblemSet | Sequence[ProblemSet] | None) -> tuple[ProblemSet, ...]:
        if problems is None:
            sets = [load_humaneval()]
            try:
                sets.append(load_mbpp(download=False))
            except BenchmarkDataError:
                pass  # MBPP requests then get the labelled non-answer
            return tuple(sets)
        if isinstance(problems, ProblemSet):
            return (problems,)
        sets = tuple(problems)
        for i, s in enumerate(sets):
            if not isinstance(s, ProblemSet):
                raise TypeError(
                    f"SyntheticCoder problems[{i}]: expected a ProblemSet, got {type(s).__name__}"
                )
        return sets

    @classmethod
    def from_spec(
        cls,
        spec: SyntheticSpec | str | Mapping[str, Any],
        *,
        checker: FaultChecker | None = None,
        runner: Runner | None = None,
    ) -> SyntheticCoder:
        """The coder for ``synthetic:<preset>``; options: ``mbpp_path`` (the sanitized MBPP file),
        ``check_timeout_s``, and overrides of the preset's numbers (:data:`PRESET_OPTIONS`)."""
        parsed = parse_spec(spec)
        if not isinstance(parsed, SyntheticSpec):
            raise SpecError(spec, "kind", f"expected a synthetic: spec, got {parsed.to_string()!r}")
        shown = parsed.to_string()
        preset = preset_named(parsed.preset, shown)
        options = dict(parsed.options)
        overrides: dict[str, float] = {}
        for name in list(options):
            if name in PRESET_OPTIONS:
                overrides[name] = options.pop(name)
        mbpp_path = options.pop("mbpp_path", None)
        timeout = options.pop("check_timeout_s", CHECK_TIMEOUT_S)
        if options:
            allowed = ", ".join(("mbpp_path", "check_timeout_s", *PRESET_OPTIONS))
            raise SpecError(shown, sorted(options)[0], f"unknown option for synthetic; options are {allowed}")
        if overrides:
            try:
                preset = replace(preset, **overrides)
            except ValueError as exc:
                raise SpecError(shown, next(iter(overrides)), str(exc)) from None
        sets: list[ProblemSet] = [load_humaneval()]
        if mbpp_path is not None:
            sets.append(load_mbpp(mbpp_path))
        else:
            try:
                sets.append(load_mbpp(download=False))
            except BenchmarkDataError:
                pass
        if checker is None:
            try:
                checker = FaultChecker(runner, timeout_s=timeout)
            except ValueError as exc:
                raise SpecError(shown, "check_timeout_s", str(exc)) from None
        return cls(preset, sets, checker=checker)

    # -- the Backend protocol -----------------------------------------------------------------------

    def identity(self) -> str:
        return (
            f"synthetic:{self.preset.name}:v{BEHAVIOUR_VERSION}:{self.preset.digest()}"
            f":problems={self._problems_digest}"
        )

    def _generate(self, requests: list[ChatRequest]) -> list[Completion]:
        out = []
        for request, answer in zip(requests, self.answers(requests), strict=True):
            text, finish = answer.text, "stop"
            for s in request.stop:
                if s in text:
                    text = text[: text.index(s)]
            if estimate_tokens(text) > request.max_tokens:
                text, finish = _truncate_tokens(text, request.max_tokens), "length"
            prompt = sum(estimate_tokens(m.content) + 3 for m in request.messages)
            out.append(Completion(text, prompt, estimate_tokens(text), finish, 0.0))
        return out

    def close(self) -> None:
        if self._own_checker:
            self.checker.close()

    # -- public helpers -----------------------------------------------------------------------------

    @property
    def problems(self) -> tuple[Problem, ...]:
        return self._index.problems

    def first_pass_probability(self, problem: Problem, temperature: float = 0.0) -> float:
        """Probability that this coder's first attempt at ``problem`` is correct."""
        return first_pass_probability(self.preset, problem, temperature)

    def answers(self, requests: Sequence[ChatRequest]) -> list[SyntheticAnswer]:
        """The answers to ``requests`` with what each one is (right, faulty, unchanged...), in order."""
        with self._lock:
            readings = [self._read(r) for r in requests]
            plans = [self._plan(r, reading) for r, reading in zip(requests, readings, strict=True)]
            self._resolve([p for p in plans if isinstance(p, _Need)])
            return [self._render(reading, plan) for reading, plan in zip(readings, plans, strict=True)]

    # -- reading ------------------------------------------------------------------------------------

    def _read(self, request: ChatRequest) -> _Reading:
        system = next((m.content for m in request.messages if m.role == "system"), None)
        user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        sections = M.split_sections(user)
        role = _infer_role(system, sections)
        return _Reading(role, self._index.find(user, sections), user, M.parse_feedback(user))

    # -- per-problem fault material -----------------------------------------------------------------

    def _maker(self, problem: Problem) -> _FaultMaker:
        key = (problem.benchmark, problem.task_id)
        if key not in self._makers:
            self._makers[key] = _FaultMaker(problem)
        return self._makers[key]

    def _faults(self, problem: Problem, kind: str) -> tuple[Fault, ...]:
        key = (problem.benchmark, problem.task_id, kind)
        if key not in self._candidates:
            self._candidates[key] = self._maker(problem).candidates(kind)
        return self._candidates[key]

    def _recognise(self, problem: Problem, code: str | None) -> tuple[bool, Fault | None]:
        """(is the reference, which own fault) for code shown in feedback."""
        if not code:
            return False, None
        key = (problem.benchmark, problem.task_id)
        if key not in self._known:
            maker = self._maker(problem)
            known: dict[str, Fault | None] = {
                _norm(maker.code): None,
                _norm(problem.reference_solution): None,
            }
            for kind in ERROR_KINDS:
                for f in self._faults(problem, kind):
                    known.setdefault(_norm(f.code), f)
            last = maker.last_resort()
            known.setdefault(_norm(last.code), last)
            self._known[key] = known
        known = self._known[key]
        text = _norm(code)
        context = _norm(problem.context)
        if context and text.startswith(context):
            text = _norm(text[len(context) :])
        if text not in known:
            return False, None
        fault = known[text]
        return fault is None, fault

    # -- deciding -----------------------------------------------------------------------------------

    def _plan(self, request: ChatRequest, reading: _Reading) -> _Need | _Plan:
        problem = reading.problem
        seed = request.seed if request.temperature > 0 else 0  # greedy: the seed changes nothing
        user_sha = hashlib.sha256(reading.user.encode()).hexdigest()
        if problem is None:
            return _Plan(OUTCOME_NON_ANSWER, None, _rng(user_sha))
        base = (problem.benchmark, problem.task_id, reading.role, seed, request.temperature, user_sha)
        rng = _rng(self.preset.name, *base, "choices")
        text_rng = _rng(self.preset.name, *base, "text")

        def done(outcome: str, payload: object = None) -> _Plan:
            return _Plan(outcome, payload, text_rng)

        weights = self.preset.faults.as_dict()

        def need(exclude: Iterable[str] = ()) -> _Need:
            kinds = _weighted_order(weights, rng)
            return _Need(problem, kinds, base, frozenset(_norm(c) for c in exclude), rng)

        if reading.role == "generator":
            u = _uniform("first-pass", problem.benchmark, problem.task_id, seed)
            if u < first_pass_probability(self.preset, problem, request.temperature):
                return done(OUTCOME_CORRECT, None)
            return need()

        fb = reading.feedback
        is_reference, own = self._recognise(problem, fb.code)
        if reading.role == "analyzer":
            return done(OUTCOME_ANALYSIS, own)

        # refiner
        u = _uniform("repair", *base)
        previous = fb.code or ""
        if fb.passed or is_reference:
            if is_reference or not previous.strip():
                return need([previous]) if u < self.preset.regression else done(OUTCOME_CORRECT, None)
            # passed the shown tests, but not the reference: a blind rewrite, a new fault, or no change
            blind = self.preset.repair.assertion * WITHOUT_FAILING_TEST["assertion"]
            if u < blind:
                return done(OUTCOME_CORRECT, None)
            if u < blind + self.preset.regression:
                return need([previous])
            return done(OUTCOME_UNCHANGED, previous)
        if u < self._repair_probability(problem, fb, own):
            return done(OUTCOME_CORRECT, None)
        if not previous.strip() or rng.random() < self.preset.new_fault_on_failed_repair:
            # a different fault, of the same kind when the failure was one the coder can make
            same = {v: k for k, v in ERROR_TYPES.items()}.get(fb.error_type or "")
            failed = need([previous])
            if same is not None:
                failed.kinds = [same] + [k for k in failed.kinds if k != same]
            return failed
        return done(OUTCOME_UNCHANGED, previous)

    def _repair_probability(self, problem: Problem, fb: M.Feedback, own: Fault | None) -> float:
        kind = _REPAIR_KIND_OF.get(fb.error_type or "", "other")
        preset = self.preset
        q = _sigmoid(preset.sharpness * (_skill(preset.first_pass, preset.sharpness) - difficulty(problem)))
        # a second, preset-independent trait: some problems' bugs are easy to fix once seen, most are not
        fixability = (FIXABILITY_SKEW + 1) * _uniform(
            "fixability", problem.benchmark, problem.task_id
        ) ** FIXABILITY_SKEW
        relative = q / _failure_mean_skill(preset.first_pass, preset.sharpness)
        dependence = DIFFICULTY_DEPENDENCE[kind]
        p = preset.repair.of(kind) * fixability * (1.0 - dependence + dependence * relative)
        if not fb.traceback.strip():
            p *= WITHOUT_TRACEBACK[kind]
        if not fb.failing_test.strip():
            p *= WITHOUT_FAILING_TEST[kind]
        if fb.analysis.strip():
            boost = self.preset.analysis_boost
            pointed = own is not None and own.key in fb.analysis
            p *= boost if pointed else 1.0 + (boost - 1.0) / 3.0
        return min(p, MAX_REPAIR_PROBABILITY)

    def _sequence(self, need: _Need) -> Iterator[Fault]:
        """Candidates in the order this answer tries them (fault-kind order, then a shuffled sample)."""
        for kind in need.kinds:
            faults = list(self._faults(need.problem, kind))
            # the order does not depend on the preset, so presets share checked candidates
            _rng("order", kind, *need.salt).shuffle(faults)
            yield from (f for f in faults[:TRIES_PER_KIND] if _norm(f.code) not in need.exclude)
        yield self._maker(need.problem).last_resort()

    def _resolve(self, needs: list[_Need]) -> None:
        """Give every need its first candidate that really fails with the intended error (batched)."""
        iters = {id(n): self._sequence(n) for n in needs}
        pending: dict[int, list[Fault]] = {id(n): [] for n in needs}  # candidates fetched but not decided
        open_needs = list(needs)
        while open_needs:
            batch: list[tuple[Problem, str]] = []
            still_open = []
            for n in open_needs:
                queue = pending[id(n)]
                while n.fault is None:
                    if not queue:
                        nxt = next(iters[id(n)], None)
                        if nxt is None:
                            break
                        queue.append(nxt)
                    cand = queue[0]
                    if cand.site in ("def-colon", "def-paren"):
                        n.fault = cand  # always a SyntaxError at load, no run needed
                    elif self.checker.known(n.problem, cand.code):
                        if self.checker.outcome(n.problem, cand.code) == cand.error_type:
                            n.fault = cand
                        else:
                            queue.pop(0)
                    else:
                        break
                if n.fault is None:
                    # fetch a few more so that one round checks several candidates of this need
                    while len(queue) < 4:
                        nxt = next(iters[id(n)], None)
                        if nxt is None:
                            break
                        queue.append(nxt)
                    batch += [
                        (n.problem, c.code)
                        for c in queue
                        if c.site not in ("def-colon", "def-paren")
                        and not self.checker.known(n.problem, c.code)
                    ]
                    still_open.append(n)
            if batch:
                self.checker.check(batch)
            open_needs = still_open

    # -- writing ------------------------------------------------------------------------------------

    def _render(self, reading: _Reading, plan: _Need | _Plan) -> SyntheticAnswer:
        problem = reading.problem
        if problem is None:
            return SyntheticAnswer(self._non_answer(), reading.role, None, OUTCOME_NON_ANSWER)
        if isinstance(plan, _Need):
            assert plan.fault is not None
            text = self._code_text(reading.role, plan.fault.code, plan.rng)
            return SyntheticAnswer(text, reading.role, problem.task_id, OUTCOME_FAULT, plan.fault)
        if plan.outcome == OUTCOME_CORRECT:
            text = self._code_text(reading.role, reference_answer(problem, "chat"), plan.rng)
            return SyntheticAnswer(text, reading.role, problem.task_id, plan.outcome)
        if plan.outcome == OUTCOME_UNCHANGED:
            assert isinstance(plan.payload, str)
            text = self._code_text(reading.role, plan.payload, plan.rng)
            return SyntheticAnswer(text, reading.role, problem.task_id, plan.outcome)
        own = plan.payload if isinstance(plan.payload, Fault) else None
        text = self._analysis(reading.feedback, own, plan.rng)
        return SyntheticAnswer(text, reading.role, problem.task_id, OUTCOME_ANALYSIS, own)

    def _non_answer(self) -> str:
        names = ", ".join(sorted({s.benchmark for s in self.problem_sets}))
        return (
            f"[{self.label}: synthetic model] This request is not about a benchmark problem this synthetic "
            f"model knows ({names}), so it has no answer to give."
        )

    @staticmethod
    def _code_text(role: str, code: str, rng: random.Random) -> str:
        if role == "refiner":
            return _code_block(rng.choice(_FIX_INTROS), code)
        return _code_block(rng.choice(_GEN_INTROS), code, rng.choice(_GEN_OUTROS))

    def _analysis(self, fb: M.Feedback, own: Fault | None, rng: random.Random) -> str:
        error = fb.error_type or "error"
        if fb.passed:
            return (
                f"The code passes the {fb.source or 'tests'}, so there is no failure to explain. "
                "The logic follows the task; if hidden cases fail, look at the edge cases (empty input, "
                "single element, boundaries)."
            )
        message = fb.message.splitlines()[0] if fb.message.strip() else ""
        article = "an" if error[:1].lower() in "aeiou" else "a"
        said = f"{article} {error} ({message})" if message else f"{article} {error}"
        if own is not None and rng.random() < self.preset.analysis_accuracy:
            line = _line_text(own.code, own.line)
            where = f"the line `{line}`" if line and line != own.key else f"`{own.key}`"
            return (
                f"The code fails with {said}. The cause is {where}: {own.cause}. "
                f"Changing `{own.key}` back to what the task needs fixes the failure."
            )
        code_lines = [
            ln.strip()
            for ln in (fb.code or "").splitlines()
            if ln.strip() and not ln.strip().startswith(("def ", "#", '"""'))
        ]
        test = fb.failing_test.strip()
        generic = {
            "NameError": "a name is used that is never defined; check the spelling of the variables and "
            "that every helper or module is defined or imported.",
            "SyntaxError": "the code does not compile; check the reported line for a missing colon, "
            "bracket or quote.",
            "AssertionError": "the function runs but returns a wrong result"
            + (f" for the test `{test}`" if test else "")
            + "; the conditions or the loop bounds do not match what the task asks.",
            "TypeError": "a value of the wrong type is used, for example a number where a list or a "
            "string is expected.",
            "Timeout": "the program never finishes; a loop probably does not advance its variable.",
        }.get(error, "the code does something the task does not allow; follow the traceback to the line.")
        if code_lines and rng.random() < 0.5:
            blamed = rng.choice(code_lines)
            return f"The code fails with {said}. The problem seems to be the line `{blamed}`: {generic}"
        return f"The code fails with {said}: {generic}"


def load_synthetic(
    spec: SyntheticSpec, *, pool: object = None, runner: Runner | None = None
) -> SyntheticCoder:
    """The registry's loader for ``synthetic:<preset>`` (``pool`` is unused: nothing to load); its
    candidates run through ``runner`` when given, else through a sandbox of its own."""
    return SyntheticCoder.from_spec(spec, runner=runner)


__all__ = [
    "BEHAVIOUR_VERSION",
    "CHECK_TIMEOUT_S",
    "ERROR_KINDS",
    "ERROR_TYPES",
    "OUTCOMES",
    "OUTCOME_ANALYSIS",
    "OUTCOME_CORRECT",
    "OUTCOME_FAULT",
    "OUTCOME_NON_ANSWER",
    "OUTCOME_UNCHANGED",
    "PRESETS",
    "PRESET_OPTIONS",
    "REFERENCE_TEMPERATURE",
    "REPAIR_KINDS",
    "WITHOUT_FAILING_TEST",
    "WITHOUT_TRACEBACK",
    "Fault",
    "FaultChecker",
    "FaultWeights",
    "RepairRates",
    "SyntheticAnswer",
    "SyntheticCoder",
    "SyntheticPreset",
    "difficulty",
    "estimate_tokens",
    "fault_candidates",
    "first_pass_probability",
    "load_synthetic",
    "preset_named",
]
