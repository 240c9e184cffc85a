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
a missing import, a dropped colon, a changed comparison, a constant off by one, a missing ``range``...:
:mod:`neatpipe.synthetic.faults`), and each candidate is *run* against the hidden tests (by
:mod:`neatpipe.synthetic.checker`, through the caller's sandbox, once per candidate, memoised) so that an
intended AssertionError really fails an assert. When no candidate of a kind produces that
error, another kind is used; a dropped colon on the ``def`` line is the last resort that always works.

Determinism
-----------
An answer depends only on the preset, the problem, the role, the request's seed (only when sampling:
at temperature 0 the seed is ignored, as for a real greedy model and as the completion cache assumes),
the temperature, and the text of the user message (so the previous code and its feedback). All draws
come from ``random.Random`` instances seeded by SHA-256 of those parts; there is no global random state,
and the answer to a request never depends on the rest of its batch.

Token counts are estimates (:mod:`neatpipe.synthetic.tokens`): one token per word (``\\w+``) or
punctuation character, which is close to what code tokenizers give for Python. Latency is reported as 0.

This module holds the decisions (which outcome, which fault, which repair chance) and the backend
protocol; the numbers behind the decisions are in :mod:`neatpipe.synthetic.presets` and
:mod:`neatpipe.synthetic.calibration`, the wording in :mod:`neatpipe.synthetic.writing`.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from neatpipe.bench.assemble import reference_answer
from neatpipe.bench.humaneval import BenchmarkDataError, load_humaneval
from neatpipe.bench.mbpp import load_mbpp
from neatpipe.bench.problem import Problem, ProblemSet
from neatpipe.models.base import Backend
from neatpipe.models.errors import SpecError
from neatpipe.models.spec import SyntheticSpec, parse_spec
from neatpipe.models.types import ChatRequest, Completion
from neatpipe.runtime.messages import Feedback
from neatpipe.synthetic import draws
from neatpipe.synthetic.calibration import first_pass_probability, fixability, relative_understanding
from neatpipe.synthetic.checker import CHECK_TIMEOUT_S, FaultChecker, Runner
from neatpipe.synthetic.faults import Fault, FaultMaker
from neatpipe.synthetic.messages import ProblemIndex, Reading, norm, read_request
from neatpipe.synthetic.presets import (
    DIFFICULTY_DEPENDENCE,
    ERROR_KINDS,
    ERROR_TYPES,
    MAX_REPAIR_PROBABILITY,
    PRESET_OPTIONS,
    WITHOUT_FAILING_TEST,
    WITHOUT_TRACEBACK,
    SyntheticPreset,
    preset_named,
    repair_kind,
)
from neatpipe.synthetic.tokens import estimate_tokens, truncate_tokens
from neatpipe.synthetic.writing import analysis_text, code_text, non_answer_text

# Bump when answers change for the same request, so completion caches keyed on identity() stay honest.
BEHAVIOUR_VERSION = 1

# At most this many candidates of one fault kind are tried for one answer before the next kind.
TRIES_PER_KIND = 10

OUTCOME_CORRECT = "correct"  # the reference solution
OUTCOME_FAULT = "fault"  # the reference with one fault
OUTCOME_UNCHANGED = "unchanged"  # a refiner that returned the previous code as it was
OUTCOME_ANALYSIS = "analysis"  # an analyzer's explanation
OUTCOME_NON_ANSWER = "non-answer"  # a request about no known problem
OUTCOMES = (OUTCOME_CORRECT, OUTCOME_FAULT, OUTCOME_UNCHANGED, OUTCOME_ANALYSIS, OUTCOME_NON_ANSWER)


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


def _plus_sets() -> list[ProblemSet]:
    """HumanEval+ and MBPP+ where their release files are already on this machine (never downloaded)."""
    from neatpipe.bench.plus import RELEASES, load_plus

    sets = []
    for name in RELEASES:
        try:
            sets.append(load_plus(name, download=False))
        except BenchmarkDataError:
            pass  # their requests then get the labelled non-answer
    return sets


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
        self._index = ProblemIndex([p for s in sets for p in s])
        self._makers: dict[tuple[str, str], FaultMaker] = {}
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
            return (*sets, *_plus_sets())
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
        sets += _plus_sets()
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
                text, finish = truncate_tokens(text, request.max_tokens), "length"
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
            readings = [read_request(r, self._index) for r in requests]
            plans = [self._plan(r, reading) for r, reading in zip(requests, readings, strict=True)]
            self._resolve([p for p in plans if isinstance(p, _Need)])
            return [self._render(reading, plan) for reading, plan in zip(readings, plans, strict=True)]

    # -- per-problem fault material -----------------------------------------------------------------

    def _maker(self, problem: Problem) -> FaultMaker:
        key = (problem.benchmark, problem.task_id)
        if key not in self._makers:
            self._makers[key] = FaultMaker(problem)
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
                norm(maker.code): None,
                norm(problem.reference_solution): None,
            }
            for kind in ERROR_KINDS:
                for f in self._faults(problem, kind):
                    known.setdefault(norm(f.code), f)
            last = maker.last_resort()
            known.setdefault(norm(last.code), last)
            self._known[key] = known
        known = self._known[key]
        text = norm(code)
        context = norm(problem.context)
        if context and text.startswith(context):
            text = norm(text[len(context) :])
        if text not in known:
            return False, None
        fault = known[text]
        return fault is None, fault

    # -- deciding -----------------------------------------------------------------------------------

    def _plan(self, request: ChatRequest, reading: Reading) -> _Need | _Plan:
        problem = reading.problem
        seed = request.seed if request.temperature > 0 else 0  # greedy: the seed changes nothing
        user_sha = hashlib.sha256(reading.user.encode()).hexdigest()
        if problem is None:
            return _Plan(OUTCOME_NON_ANSWER, None, draws.rng(user_sha))
        base = (problem.benchmark, problem.task_id, reading.role, seed, request.temperature, user_sha)
        rng = draws.rng(self.preset.name, *base, "choices")
        text_rng = draws.rng(self.preset.name, *base, "text")

        def done(outcome: str, payload: object = None) -> _Plan:
            return _Plan(outcome, payload, text_rng)

        weights = self.preset.faults.as_dict()

        def need(exclude: Iterable[str] = ()) -> _Need:
            kinds = draws.weighted_order(weights, rng)
            return _Need(problem, kinds, base, frozenset(norm(c) for c in exclude), rng)

        if reading.role == "generator":
            u = draws.uniform("first-pass", problem.benchmark, problem.task_id, seed)
            if u < first_pass_probability(self.preset, problem, request.temperature):
                return done(OUTCOME_CORRECT, None)
            return need()

        fb = reading.feedback
        is_reference, own = self._recognise(problem, fb.code)
        if reading.role == "analyzer":
            return done(OUTCOME_ANALYSIS, own)

        # refiner
        u = draws.uniform("repair", *base)
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

    def _repair_probability(self, problem: Problem, fb: Feedback, own: Fault | None) -> float:
        kind = repair_kind(fb.error_type)
        preset = self.preset
        relative = relative_understanding(preset, problem)
        dependence = DIFFICULTY_DEPENDENCE[kind]
        p = preset.repair.of(kind) * fixability(problem) * (1.0 - dependence + dependence * relative)
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
            draws.rng("order", kind, *need.salt).shuffle(faults)
            yield from (f for f in faults[:TRIES_PER_KIND] if norm(f.code) not in need.exclude)
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

    def _render(self, reading: Reading, plan: _Need | _Plan) -> SyntheticAnswer:
        problem = reading.problem
        if problem is None:
            return SyntheticAnswer(
                non_answer_text(self.label, (s.benchmark for s in self.problem_sets)),
                reading.role,
                None,
                OUTCOME_NON_ANSWER,
            )
        if isinstance(plan, _Need):
            assert plan.fault is not None
            text = code_text(reading.role, plan.fault.code, plan.rng)
            return SyntheticAnswer(text, reading.role, problem.task_id, OUTCOME_FAULT, plan.fault)
        if plan.outcome == OUTCOME_CORRECT:
            text = code_text(reading.role, reference_answer(problem, "chat"), plan.rng)
            return SyntheticAnswer(text, reading.role, problem.task_id, plan.outcome)
        if plan.outcome == OUTCOME_UNCHANGED:
            assert isinstance(plan.payload, str)
            text = code_text(reading.role, plan.payload, plan.rng)
            return SyntheticAnswer(text, reading.role, problem.task_id, plan.outcome)
        own = plan.payload if isinstance(plan.payload, Fault) else None
        text = analysis_text(reading.feedback, own, self.preset.analysis_accuracy, plan.rng)
        return SyntheticAnswer(text, reading.role, problem.task_id, OUTCOME_ANALYSIS, own)


def load_synthetic(
    spec: SyntheticSpec, *, pool: object = None, runner: Runner | None = None
) -> SyntheticCoder:
    """The registry's loader for ``synthetic:<preset>`` (``pool`` is unused: nothing to load); its
    candidates run through ``runner`` when given, else through a sandbox of its own."""
    return SyntheticCoder.from_spec(spec, runner=runner)
