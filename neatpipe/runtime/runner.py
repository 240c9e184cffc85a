"""Runs a pipeline genome over a batch of problems: one model call per node step, one sandbox batch per
executor step, never a loop over problems calling a model.

>>> run = run_pipeline(genome, problems, {"qwen2.5-coder-1.5b": backend}, sandbox, seed=0)   # doctest: +SKIP
>>> run.pass_rate, run.requests, run.wall_s                                                 # doctest: +SKIP

How each step runs (all problems of the batch at once; see ``docs/runtime.md``):

* generate: one ``generate`` call with every problem's request; the candidate is the code extracted
  from the answer (the raw text is kept in the trajectory).
* select: the inputs' candidates of every problem run on the visible tests in one sandbox batch
  (strategy ``visible-tests``); per problem the candidate with the best (all visible tests passed,
  visible tests passed, agreement, shortest code, smallest code) wins, so input order never matters.
* stage (executor, optional analyzer, refiner; ``iterations`` k, ``early_stop``): for i in 1..k the
  current candidates of the still-active problems run on the feedback tests (one sandbox batch); with
  early stopping a problem whose candidate passes leaves the loop; the analyzer (one call) explains the
  failures and the refiner (one call) rewrites the code. Candidates from the last refinement get a
  closing check on the feedback tests, so every candidate of a stage has a feedback verdict.

Every candidate any step emits also runs on the hidden tests (one batch at the end of the run) so the
trajectory says whether it passes; the candidate that reaches the output, scored so, is pass@1.

Program runs are memoised within a run by (problem, test set, time limit, code): the same code is never
run twice on the same tests, so a sandbox batch may be smaller than the number of active problems.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from neatpipe.bench.assemble import assemble
from neatpipe.bench.extract import extract_code
from neatpipe.bench.problem import Problem
from neatpipe.costs import Cost
from neatpipe.errors import NeatpipeError
from neatpipe.genome.errors import GenomeError
from neatpipe.genome.fileio import LoadedGenome
from neatpipe.genome.genes import NodeGene
from neatpipe.genome.genome import PipelineGenome
from neatpipe.models.base import Backend
from neatpipe.models.types import MAX_SEED, ChatMessage, ChatRequest, Completion
from neatpipe.runtime.messages import (
    analyzer_messages,
    generator_messages,
    refiner_messages,
    result_error_type,
)
from neatpipe.runtime.plan import Plan, Step, compile_plan
from neatpipe.runtime.texts import text_key
from neatpipe.runtime.trajectory import (
    TEXT_LIMIT,
    FeedbackResult,
    FinalResult,
    HiddenResult,
    RequestRecord,
    StageIteration,
    StageTrace,
    TraceStep,
    Trajectory,
)
from neatpipe.sandbox.program import ExecResult, Program
from neatpipe.seeds import seed_from_text
from neatpipe.vocab import FEEDBACK_CHOICES, GENOME_FEEDBACK

#: Values of ``run_pipeline(feedback=...)``: force visible or hidden feedback for every executor, or
#: ``None`` to use each executor gene's own ``feedback`` (recorded as ``"genome"``).
FEEDBACK_POLICIES = (*FEEDBACK_CHOICES, None)
GENOME_POLICY = GENOME_FEEDBACK

StepDone = Callable[[str, int, int], None]  # progress(step, done, total) over a plan's steps


@dataclass(frozen=True)
class ModelWork:
    """What a pipeline waits for at a model step: answers to ``items`` (chat requests) from ``model``."""

    model: str
    items: tuple[ChatRequest, ...]


@dataclass(frozen=True)
class SandboxWork:
    """What a pipeline waits for at a sandbox step: the results of ``items`` (programs)."""

    items: tuple[Program, ...]


Work = ModelWork | SandboxWork
_T = TypeVar("_T")
Flow = Generator[Work, Any, _T]
"""A pipeline step as a generator: it yields the work it waits for and is sent the answers."""


class PipelineError(NeatpipeError, ValueError):
    """A pipeline cannot run with what it was given (a model missing from the pool, bad arguments)."""


def request_seed(seed: int, task_id: str, node: int, iteration: int) -> int:
    """The sampling seed of one request: a hash of (run seed, task id, node key, iteration).

    The same run seed gives the same requests (so the completion cache hits and runs reproduce);
    another run seed gives other samples at temperature > 0.
    """
    return seed_from_text(f"{seed}\x00{task_id}\x00{node}\x00{iteration}", MAX_SEED.bit_length())


# -- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepStats:
    """Cost of one node step of a run (all problems together).

    ``kind`` is ``model`` (one backend call: ``requests`` requests, ``cache_hits`` of them served by
    the cache) or ``sandbox`` (one sandbox batch: ``requests`` programs asked for, ``programs_run``
    actually run after the in-run memo). Tokens count every completion, cached or not.
    """

    label: str
    node: str
    role: str
    iteration: int
    kind: str
    requests: int
    cache_hits: int = 0
    programs_run: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0


@dataclass
class PipelineRun:
    """The outcome of ``run_pipeline``: one trajectory per problem (input order) and the run's cost.

    Cost figures: ``requests`` is every model request the pipeline made (what the pipeline costs,
    independent of any cache); ``model_calls`` the requests a model actually answered (cache misses)
    and ``cache_hits`` the rest; ``backend_calls`` the ``generate`` calls (one per model node step).
    ``prompt_tokens``/``completion_tokens`` count every completion, cached or not, so a score's cost
    never depends on the state of a cache. ``programs_run`` counts sandbox programs actually run.
    """

    trajectories: list[Trajectory]
    plan: Plan
    label: str
    genome: str
    feedback: str
    seed: int
    repeat: int
    synthetic: bool
    steps: list[StepStats] = field(default_factory=list)
    requests: int = 0
    model_calls: int = 0
    cache_hits: int = 0
    backend_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    sandbox_batches: int = 0
    programs_run: int = 0
    wall_s: float = 0.0

    @property
    def passed(self) -> int:
        return sum(t.passed for t in self.trajectories)

    @property
    def total(self) -> int:
        return len(self.trajectories)

    @property
    def pass_rate(self) -> float:
        return self.passed / self.total if self.total else 0.0

    def summary(self) -> dict[str, Any]:
        """The run's numbers, for logs and JSON output."""
        return {
            "label": self.label,
            "genome": self.genome,
            "feedback": self.feedback,
            "seed": self.seed,
            "repeat": self.repeat,
            "synthetic": self.synthetic,
            "passed": self.passed,
            "total": self.total,
            "pass_rate": self.pass_rate,
            "requests": self.requests,
            "model_calls": self.model_calls,
            "cache_hits": self.cache_hits,
            "backend_calls": self.backend_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "sandbox_batches": self.sandbox_batches,
            "programs_run": self.programs_run,
            "wall_s": self.wall_s,
        }


# -- the run ------------------------------------------------------------------------------------------


@dataclass
class _Rec:
    """A trajectory step under construction (``hidden`` is filled after the final scoring batch)."""

    node: str
    role: str
    iteration: int
    model: str | None
    code: str
    text: str = ""
    feedback_result: FeedbackResult | None = None
    scored: bool = False  # whether ``code`` is a candidate this step emitted (gets a hidden verdict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    duration_s: float = 0.0
    selected: str | None = None
    request: RequestRecord | None = None


@dataclass
class _StageRec:
    step: Step
    feedback: str
    codes: list[str]
    visible: list[bool | None]


def _is_synthetic(backend: Any) -> bool:
    seen = 0
    while backend is not None and seen < 10:
        if getattr(backend, "synthetic", False):
            return True
        backend = getattr(backend, "inner", None)
        seen += 1
    return False


def _identity(backend: Any) -> str:
    """The backend's identity (exact model and revision), for the record of which model answered; the
    label for a backend without one."""
    identity = getattr(backend, "identity", None)
    return str(identity()) if callable(identity) else str(getattr(backend, "label", type(backend).__name__))


def _feedback_of(result: ExecResult, source: str, total: int) -> FeedbackResult:
    return FeedbackResult(
        source=source,
        status=result.status.value,
        error_type=result_error_type(result),
        failing_test=result.failing_test,
        tests_passed=result.tests_passed,
        tests_total=total,
        time_limit_s=result.cpu_limit_s,
    )


def normalised_code(code: str) -> str:
    """The form selectors compare candidates by: the ``ast.dump`` of the code with docstrings
    removed (so comments, blank lines, formatting and docstrings do not count); for code that does
    not parse, its non-blank lines with trailing spaces removed."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return "\n".join(line.rstrip() for line in code.splitlines() if line.strip())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False)


class _Runner:
    def __init__(
        self,
        plan: Plan,
        problems: Sequence[Problem],
        policy: str | None,
        seed: int,
        progress: StepDone | None,
    ) -> None:
        self.plan, self.problems = plan, list(problems)
        self.policy, self.seed, self.progress = policy, seed, progress
        n = len(self.problems)
        self.cands: dict[int, list[str]] = {}
        self.recs: list[list[_Rec]] = [[] for _ in range(n)]
        self.texts: list[dict[str, str]] = [{} for _ in range(n)]  # per problem: key -> prompt/answer text
        self.stages: list[list[_StageRec]] = [[] for _ in range(n)]
        self.memo: dict[tuple[int, str, float, str], ExecResult] = {}
        self.stats: list[StepStats] = []
        self.sandbox_batches = 0
        self.programs_run = 0

    # -- the two costly operations ------------------------------------------------------------------

    def execute(
        self, label: str, node: str, role: str, iteration: int, items: Sequence[tuple[int, str, str, float]]
    ) -> Flow[list[ExecResult]]:
        """Results of (problem index, code, test set, time limit) items: one sandbox batch for the
        ones the run has not executed yet, none when every item is memoised."""
        t0 = time.perf_counter()
        todo: dict[tuple[int, str, float, str], Any] = {}
        for i, code, tests, limit in items:
            key = (i, tests, limit, code)
            if key not in self.memo and key not in todo:
                todo[key] = assemble(
                    self.problems[i], code, tests=tests, extract=False, seed=self.seed, timeout_s=limit
                )
        if todo:
            results = yield SandboxWork(tuple(todo.values()))
            self.memo.update(zip(todo, results, strict=True))
            self.sandbox_batches += 1
            self.programs_run += len(todo)
        self.stats.append(
            StepStats(
                label,
                node,
                role,
                iteration,
                "sandbox",
                requests=len(items),
                programs_run=len(todo),
                wall_s=time.perf_counter() - t0,
            )
        )
        return [self.memo[(i, tests, limit, code)] for i, code, tests, limit in items]

    def call(
        self,
        label: str,
        gene: NodeGene,
        name: str,
        iteration: int,
        items: Sequence[tuple[int, Sequence[ChatMessage]]],
    ) -> Flow[list[tuple[ChatRequest, Completion]]]:
        """One model step on ``gene``'s model with one request per (problem index, messages); each
        request with its completion."""
        requests = [
            ChatRequest(
                messages=tuple(msgs),
                temperature=float(gene.temperature or 0.0),
                max_tokens=int(gene.max_tokens or 512),
                seed=request_seed(self.seed, self.problems[i].task_id, gene.key, iteration),
            )
            for i, msgs in items
        ]
        t0 = time.perf_counter()
        completions = yield ModelWork(str(gene.model), tuple(requests))
        self.stats.append(
            StepStats(
                label,
                name,
                gene.role.value,
                iteration,
                "model",
                requests=len(requests),
                cache_hits=sum(c.cached for c in completions),
                prompt_tokens=sum(c.prompt_tokens for c in completions),
                completion_tokens=sum(c.completion_tokens for c in completions),
                wall_s=time.perf_counter() - t0,
            )
        )
        return list(zip(requests, completions, strict=True))

    def _record(self, i: int, request: ChatRequest, c: Completion) -> RequestRecord:
        """The request and full answer of problem ``i``'s model step, by key; the texts are kept for the
        trajectory (which its writer puts in the run directory's text store)."""
        texts = self.texts[i]

        def key(text: str) -> str:
            k = text_key(text)
            texts[k] = text
            return k

        return RequestRecord(
            messages=tuple((m.role, key(m.content)) for m in request.messages),
            temperature=request.temperature,
            top_p=request.top_p,
            max_tokens=request.max_tokens,
            stop=request.stop,
            seed=request.seed,
            answer=key(c.text),
        )

    def _model_rec(
        self,
        i: int,
        name: str,
        gene: NodeGene,
        iteration: int,
        code: str,
        answered: tuple[ChatRequest, Completion],
        scored: bool,
    ) -> _Rec:
        request, c = answered
        return _Rec(
            node=name,
            role=gene.role.value,
            iteration=iteration,
            model=gene.model,
            code=code,
            text=c.text[:TEXT_LIMIT],
            scored=scored,
            prompt_tokens=c.prompt_tokens,
            completion_tokens=c.completion_tokens,
            cached=c.cached,
            duration_s=c.latency_s,
            request=self._record(i, request, c),
        )

    # -- steps --------------------------------------------------------------------------------------

    def run(self) -> Flow[None]:
        total = len(self.plan.steps) + 1
        for done, step in enumerate(self.plan.steps, start=1):
            yield from {"generate": self.generate, "select": self.select, "stage": self.stage}[step.kind](
                step
            )
            if self.progress is not None:
                self.progress(step.name, done, total)
        yield from self.score()
        if self.progress is not None:
            self.progress("hidden tests", total, total)

    def generate(self, step: Step) -> Flow[None]:
        gene = step.gene
        items = [(i, generator_messages(p, gene.prompt or 0)) for i, p in enumerate(self.problems)]
        completions = (yield from self.call(step.name, gene, step.name, 0, items)) if items else []
        codes = []
        for i, (request, c) in enumerate(completions):
            code = extract_code(c.text, self.problems[i].entry_point)
            codes.append(code)
            self.recs[i].append(self._model_rec(i, step.name, gene, 0, code, (request, c), scored=True))
        self.cands[step.node] = codes

    def select(self, step: Step) -> Flow[None]:
        names = [self.plan.names[k] for k in step.inputs]
        by_problem = [[self.cands[k][i] for k in step.inputs] for i in range(len(self.problems))]
        use_tests = step.gene.strategy == "visible-tests"
        results: dict[tuple[int, str], ExecResult] = {}
        if use_tests:
            items = [
                (i, code, "visible", self.problems[i].time_limit_s)
                for i, codes in enumerate(by_problem)
                for code in dict.fromkeys(codes)
            ]
            verdicts = yield from self.execute(step.name, step.name, "selector", 0, items)
            for (i, code, _, _), r in zip(items, verdicts, strict=True):
                results[(i, code)] = r
        chosen = []
        for i, codes in enumerate(by_problem):
            forms = [normalised_code(c) for c in codes]

            def rank(j: int, i: int = i, codes: list[str] = codes, forms: list[str] = forms) -> tuple:
                agreement = sum(1 for f in forms if f == forms[j]) - 1
                tests: tuple = ()
                if use_tests:
                    r = results[(i, codes[j])]
                    tests = (not r.passed, -r.tests_passed)
                return (*tests, -agreement, len(codes[j]), codes[j], names[j])

            best = min(range(len(codes)), key=rank)
            code = codes[best]
            chosen.append(code)
            result = results.get((i, code))
            fb = _feedback_of(result, "visible", len(self.problems[i].visible_tests)) if result else None
            self.recs[i].append(
                _Rec(
                    node=step.name,
                    role="selector",
                    iteration=0,
                    model=None,
                    code=code,
                    feedback_result=fb,
                    scored=True,
                    duration_s=result.duration_s if result else 0.0,
                    selected=names[best],
                )
            )
        self.cands[step.node] = chosen

    def stage(self, step: Step) -> Flow[None]:
        gene, executor, analyzer = step.gene, step.executor, step.analyzer
        assert executor is not None
        source = self.policy or str(executor.feedback)
        limit = float(executor.time_limit or 5.0)
        exec_name = step.executor_name or "executor"
        current = list(self.cands[step.inputs[0]])
        records = [_StageRec(step, source, [current[i]], [None]) for i in range(len(self.problems))]
        for i, r in enumerate(records):
            self.stages[i].append(r)
        k = int(gene.iterations or 1)

        def check(active: list[int], iteration: int) -> Flow[dict[int, ExecResult]]:
            items = [(i, current[i], source, limit) for i in active]
            verdicts = yield from self.execute(exec_name, exec_name, "executor", iteration, items)
            out = dict(zip(active, verdicts, strict=True))
            for i, res in out.items():
                tests = (
                    self.problems[i].visible_tests if source == "visible" else self.problems[i].hidden_tests
                )
                self.recs[i].append(
                    _Rec(
                        node=exec_name,
                        role="executor",
                        iteration=iteration,
                        model=None,
                        code=current[i],
                        feedback_result=_feedback_of(res, source, len(tests)),
                        duration_s=res.duration_s,
                    )
                )
                records[i].visible[iteration] = res.passed
            return out

        active = list(range(len(self.problems)))
        closed = False
        for it in range(1, k + 1):
            results = yield from check(active, it - 1)
            if gene.early_stop:
                active = [i for i in active if not results[i].passed]
            if not active:
                closed = True
                break
            analyses: dict[int, str] = {}
            if analyzer is not None:
                a_name = step.analyzer_name or "analyzer"
                items = [
                    (
                        i,
                        analyzer_messages(
                            self.problems[i],
                            analyzer.prompt or 0,
                            current[i],
                            results[i],
                            feedback_source=source,
                        ),
                    )
                    for i in active
                ]
                answers = yield from self.call(a_name, analyzer, a_name, it, items)
                for i, a in zip(active, answers, strict=True):
                    analyses[i] = a[1].text
                    self.recs[i].append(self._model_rec(i, a_name, analyzer, it, current[i], a, scored=False))
            items = [
                (
                    i,
                    refiner_messages(
                        self.problems[i],
                        gene.prompt or 0,
                        current[i],
                        results[i],
                        analyses.get(i),
                        feedback_source=source,
                    ),
                )
                for i in active
            ]
            answers = yield from self.call(step.name, gene, step.name, it, items)
            for i, a in zip(active, answers, strict=True):
                current[i] = extract_code(a[1].text, self.problems[i].entry_point)
                self.recs[i].append(self._model_rec(i, step.name, gene, it, current[i], a, scored=True))
                records[i].codes.append(current[i])
                records[i].visible.append(None)
        if not closed and active:
            yield from check(active, k)  # the closing check of the last refinement's candidates
        self.cands[step.node] = current

    def score(self) -> Flow[None]:
        """Every candidate on the hidden tests, in one batch."""
        items = []
        for i, p in enumerate(self.problems):
            codes = [r.code for r in self.recs[i] if r.scored]
            codes += [c for st in self.stages[i] for c in st.codes]
            codes.append(self.cands[self.plan.output][i])
            items += [(i, c, "hidden", p.time_limit_s) for c in dict.fromkeys(codes)]
            if p.plus_tests:  # HumanEval+ / MBPP+: the final candidate on base and plus inputs too
                items.append((i, self.cands[self.plan.output][i], "plus", p.time_limit_s))
        yield from self.execute("hidden tests", "output", "score", 0, items)

    def hidden(self, i: int, code: str) -> ExecResult:
        return self.memo[(i, "hidden", self.problems[i].time_limit_s, code)]

    # -- trajectories -------------------------------------------------------------------------------

    def trajectories(self, meta: dict[str, Any]) -> list[Trajectory]:
        out = []
        for i, p in enumerate(self.problems):
            steps = []
            for r in self.recs[i]:
                hidden = None
                if r.scored:
                    h = self.hidden(i, r.code)
                    hidden = HiddenResult(h.passed, h.status.value, result_error_type(h))
                steps.append(
                    TraceStep(
                        node=r.node,
                        role=r.role,
                        iteration=r.iteration,
                        model=r.model,
                        code=r.code,
                        text=r.text,
                        feedback_result=r.feedback_result,
                        hidden=hidden,
                        prompt_tokens=r.prompt_tokens,
                        completion_tokens=r.completion_tokens,
                        cached=r.cached,
                        duration_s=round(r.duration_s, 6),
                        selected=r.selected,
                        request=r.request,
                    )
                )
            stages = []
            for st in self.stages[i]:
                its = []
                for n, (code, vis) in enumerate(zip(st.codes, st.visible, strict=True)):
                    h = self.hidden(i, code)
                    its.append(StageIteration(n, h.passed, result_error_type(h), bool(vis)))
                stages.append(
                    StageTrace(
                        node=st.step.name,
                        early_stop=bool(st.step.gene.early_stop),
                        max_iterations=int(st.step.gene.iterations or 1),
                        feedback=st.feedback,
                        iterations=tuple(its),
                    )
                )
            final_code = self.cands[self.plan.output][i]
            h = self.hidden(i, final_code)
            model_steps = [r for r in self.recs[i] if r.model is not None]
            out.append(
                Trajectory(
                    task_id=p.task_id,
                    benchmark=p.benchmark,
                    passed=h.passed,
                    plus_passed=self.memo[(i, "plus", p.time_limit_s, final_code)].passed
                    if p.plus_tests
                    else None,
                    final=FinalResult(
                        final_code, h.status.value, result_error_type(h), h.failing_test, h.cpu_limit_s
                    ),
                    steps=tuple(steps),
                    stages=tuple(stages),
                    prompt_tokens=sum(r.prompt_tokens for r in model_steps),
                    completion_tokens=sum(r.completion_tokens for r in model_steps),
                    model_calls=len(model_steps),
                    duration_s=round(sum(r.duration_s for r in self.recs[i]), 6),
                    texts=self.texts[i],
                    **meta,
                )
            )
        return out


@dataclass(frozen=True, eq=False)
class PipelineJob:
    """One pipeline run to make: ``genome`` (a genome, a genome read with its file's node ids, or a
    compiled plan) on ``problems`` with the arguments of :func:`run_pipeline`."""

    genome: PipelineGenome | LoadedGenome | Plan
    problems: tuple[Problem, ...]
    feedback: str | None = "visible"
    seed: int = 0
    repeat: int = 0
    label: str | None = None
    progress: StepDone | None = None


@dataclass
class StreamStats:
    """What a stream of pipelines cost when run together (:func:`run_pipelines`), summed over calls.

    ``requests`` counts the model requests the pipelines made and ``requests_sent`` the distinct ones
    the backends were asked for (identical requests of several pipelines are sent once);
    ``programs``/``programs_sent`` the same for sandbox programs. ``backend_calls`` counts
    ``generate`` calls, ``largest_batch`` the most requests in one of them; ``rounds`` the lock-step
    rounds.
    """

    pipelines: int = 0
    rounds: int = 0
    backend_calls: int = 0
    requests: int = 0
    requests_sent: int = 0
    largest_batch: int = 0
    sandbox_batches: int = 0
    programs: int = 0
    programs_sent: int = 0
    wall_s: float = 0.0

    @property
    def mean_batch(self) -> float:
        return self.requests_sent / self.backend_calls if self.backend_calls else 0.0


class _Pipeline:
    """A prepared job: its plan, its runner and the meta data its trajectories carry."""

    def __init__(self, job: PipelineJob, models: Mapping[str, Backend]) -> None:
        genome, feedback = job.genome, job.feedback
        if isinstance(genome, Plan):
            plan = genome
        elif isinstance(genome, LoadedGenome):
            plan = compile_plan(genome.genome, genome.names)
        else:
            plan = compile_plan(genome)
        if feedback not in FEEDBACK_POLICIES:
            raise PipelineError(
                f"feedback must be 'visible', 'hidden' or None (use the genome's), got {feedback!r}"
            )
        for name, value in (("seed", job.seed), ("repeat", job.repeat)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PipelineError(f"{name} must be an integer >= 0, got {value!r}")
        missing = {m: nodes for m, nodes in plan.model_nodes().items() if m not in models}
        if missing:
            pool = ", ".join(sorted(models)) or "empty"
            detail = "; ".join(f"{m!r} (used by {', '.join(nodes)})" for m, nodes in sorted(missing.items()))
            raise PipelineError(f"model(s) not in the model pool: {detail}; the pool has: {pool}")
        seen: set[str] = set()
        for p in job.problems:
            if not isinstance(p, Problem):
                raise PipelineError(f"problems must be benchmark Problems, got {type(p).__name__}")
            if p.task_id in seen:
                raise PipelineError(f"problem {p.task_id!r} appears twice in the batch")
            seen.add(p.task_id)
        for s in plan.stages:  # the messages module checks this too, but only once a model has run
            if s.executor is not None and feedback is None and s.executor.feedback not in FEEDBACK_CHOICES:
                raise PipelineError(f"executor {s.executor_name!r} has no valid feedback setting")
        used = {m: models[m] for m in plan.models}
        self.job, self.plan, self.used = job, plan, used
        self.synthetic = any(_is_synthetic(b) for b in used.values())
        self.runner = _Runner(plan, job.problems, feedback, job.seed, job.progress)
        self.policy = feedback if feedback is not None else GENOME_POLICY
        self.meta = {
            "genome": plan.genome_hash,
            "label": job.label if job.label is not None else plan.genome_hash[:12],
            "repeat": job.repeat,
            "seed": job.seed,
            "feedback": self.policy,
            "synthetic": self.synthetic,
            "models": {m: str(getattr(b, "label", type(b).__name__)) for m, b in used.items()},
        }

    def result(self, wall_s: float) -> PipelineRun:
        runner = self.runner
        self.meta["model_ids"] = {m: _identity(self.used[m]) for m in sorted(self.used)}
        model_stats = [s for s in runner.stats if s.kind == "model"]
        requests = sum(s.requests for s in model_stats)
        cost = Cost.total(model_stats)
        return PipelineRun(
            trajectories=runner.trajectories(self.meta),
            plan=self.plan,
            label=self.meta["label"],
            genome=self.plan.genome_hash,
            feedback=self.policy,
            seed=self.job.seed,
            repeat=self.job.repeat,
            synthetic=self.synthetic,
            steps=runner.stats,
            requests=requests,
            model_calls=requests - cost.cache_hits,
            cache_hits=cost.cache_hits,
            backend_calls=len(model_stats),
            prompt_tokens=cost.prompt_tokens,
            completion_tokens=cost.completion_tokens,
            sandbox_batches=runner.sandbox_batches,
            programs_run=runner.programs_run,
            wall_s=wall_s,
        )


def _answer(
    waiting: Mapping[int, Work], send: Callable[[list[Any]], list[Any]], kind: type, stats: StreamStats
) -> dict[int, list[Any]]:
    """One batch for every waiting pipeline's items of ``kind``: identical items are sent once and
    every pipeline gets its answers back in its own order."""
    distinct: dict[Any, int] = {}
    for work in waiting.values():
        for item in work.items:
            distinct.setdefault(item, len(distinct))
    answers = send(list(distinct))
    if len(answers) != len(distinct):
        raise RuntimeError(f"{len(answers)} answers for {len(distinct)} {kind.__name__} items")
    if kind is ModelWork:
        stats.backend_calls += 1
        stats.requests += sum(len(w.items) for w in waiting.values())
        stats.requests_sent += len(distinct)
        stats.largest_batch = max(stats.largest_batch, len(distinct))
    else:
        stats.sandbox_batches += 1
        stats.programs += sum(len(w.items) for w in waiting.values())
        stats.programs_sent += len(distinct)
    return {i: [answers[distinct[item]] for item in work.items] for i, work in waiting.items()}


def run_pipelines(
    jobs: Sequence[PipelineJob],
    models: Mapping[str, Backend],
    sandbox: Any,
    *,
    on_run: Callable[[int, PipelineRun], None] | None = None,
    stats: StreamStats | None = None,
) -> list[PipelineRun | GenomeError]:
    """Runs every job as one stream of batches; the runs (or a job's ``GenomeError``) in job order.

    The pipelines advance in lock-step rounds: in each round every pipeline that is waiting for a
    model gets its requests answered in one ``generate`` call per model (all pipelines' requests
    together, identical requests sent once), and every pipeline waiting for the sandbox gets its
    programs run in one batch (identical programs run once). A pipeline's results depend only on its
    own requests and programs (per-request seeds, CPU-time verdicts), so a job gets the same
    trajectories alone as inside any stream. ``on_run(index, run)`` is called as each job finishes;
    ``stats`` (a :class:`StreamStats`) is added to.

    A job whose genome cannot run gets its ``GenomeError`` in its place and the others run; a bad
    argument or a model missing from ``models`` raises ``PipelineError`` before anything runs.
    """
    started = time.perf_counter()
    stats = stats if stats is not None else StreamStats()
    out: list[PipelineRun | GenomeError | None] = [None] * len(jobs)
    pipelines: dict[int, _Pipeline] = {}
    for index, job in enumerate(jobs):
        try:
            pipelines[index] = _Pipeline(job, models)
        except GenomeError as exc:
            out[index] = exc
    flows = {i: p.runner.run() for i, p in pipelines.items()}
    waiting: dict[int, Work] = {}

    def advance(index: int, value: Any) -> None:
        try:
            waiting[index] = flows[index].send(value)
        except StopIteration:
            waiting.pop(index, None)
            run = pipelines[index].result(time.perf_counter() - started)
            out[index] = run
            if on_run is not None:
                on_run(index, run)

    for index in flows:
        advance(index, None)
    while waiting:
        stats.rounds += 1
        answers: dict[int, list[Any]] = {}
        for model in sorted({w.model for w in waiting.values() if isinstance(w, ModelWork)}):
            group = {i: w for i, w in waiting.items() if isinstance(w, ModelWork) and w.model == model}
            answers.update(_answer(group, models[model].generate, ModelWork, stats))
        group = {i: w for i, w in waiting.items() if isinstance(w, SandboxWork)}
        if group:
            answers.update(_answer(group, sandbox.run_many, SandboxWork, stats))
        for index in sorted(answers):
            advance(index, answers[index])
    stats.pipelines += len(pipelines)
    stats.wall_s += time.perf_counter() - started
    return [r for r in out if r is not None]


def run_pipeline(
    genome: PipelineGenome | LoadedGenome | Plan,
    problems: Sequence[Problem],
    models: Mapping[str, Backend],
    sandbox: Any,
    *,
    feedback: str | None = "visible",
    seed: int = 0,
    repeat: int = 0,
    label: str | None = None,
    progress: StepDone | None = None,
) -> PipelineRun:
    """Runs ``genome`` (a genome, a genome read with its file's node ids, or a compiled plan) on every problem and scores the output on the hidden tests.

    ``models`` maps the model-pool names the genome's nodes use to backends; ``sandbox`` is a started
    :class:`~neatpipe.sandbox.Sandbox` (anything with ``run_many``). ``feedback`` is the run's feedback
    policy: ``"visible"`` or ``"hidden"`` forces that test set for every executor, ``None`` uses each
    executor gene's own ``feedback`` (recorded as ``"genome"``). ``seed`` derives every request's seed
    (:func:`request_seed`) and the programs' seeds; ``repeat`` is recorded. ``label`` names the genome
    in trajectories (default: the first 12 characters of its behaviour hash). ``progress(step, done,
    total)`` is called after each plan step and after the final scoring. Several pipelines run
    together with :func:`run_pipelines`.

    Raises ``GenomeError`` for an invalid genome and ``PipelineError`` for a model name missing from
    ``models`` (listing the pool), a bad feedback policy or seed, or duplicate task ids, all before
    any model or program runs.
    """
    job = PipelineJob(genome, tuple(problems), feedback, seed, repeat, label, progress)
    (outcome,) = run_pipelines([job], models, sandbox)
    if isinstance(outcome, GenomeError):
        raise outcome
    return outcome


__all__ = [
    "FEEDBACK_POLICIES",
    "GENOME_POLICY",
    "ModelWork",
    "PipelineError",
    "PipelineJob",
    "PipelineRun",
    "SandboxWork",
    "StreamStats",
    "StepStats",
    "normalised_code",
    "request_seed",
    "run_pipeline",
    "run_pipelines",
]
