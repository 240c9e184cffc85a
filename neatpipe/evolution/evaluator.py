"""The evaluator: scores genomes on problems with repeats (derived seeds), running only the problem
evaluations its ``ResultStore`` lacks, so identical genomes, elites carried into the next generation
and a request for more repeats pay only for what is new; racing rounds; champion validation.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from neatpipe.bench.problem import Problem, ProblemSet
from neatpipe.costs import Cost
from neatpipe.evolution.fitness import (
    STUDY_PENALTY,
    Evaluation,
    Penalty,
    fitness_of,
    mean_sd,
)
from neatpipe.evolution.racing import RaceRound, Racing
from neatpipe.evolution.store import ProblemResult, ResultStore, get_field, result_from_trajectory, result_key
from neatpipe.evolution.validation import ValidationResult
from neatpipe.genome.errors import GenomeError
from neatpipe.runtime.runner import FEEDBACK_POLICIES, PipelineJob, StreamStats
from neatpipe.seeds import derive_seed

# -- seeds ---------------------------------------------------------------------------------------


def repeat_seeds(seed: int, repeats: int) -> tuple[int, ...]:
    """The sampling seed of each repeat: repeat r always gets the same seed for the same ``seed``,
    so asking for more repeats adds seeds and keeps the earlier ones."""
    return tuple(derive_seed("neatpipe-repeat", seed, r) for r in range(repeats))


# -- the evaluator -------------------------------------------------------------------------------


def _as_problems(problems: ProblemSet | Sequence[Problem]) -> list[Problem]:
    seen: set[str] = set()
    out = []
    for p in problems:
        if p.task_id not in seen:
            seen.add(p.task_id)
            out.append(p)
    if not out:
        raise ValueError("no problems to evaluate on")
    return out


def _identity(backend: Any) -> str:
    try:
        ident = backend.identity()
    except (AttributeError, NotImplementedError, TypeError):
        ident = None
    return str(ident) if ident else f"{type(backend).__module__}.{type(backend).__qualname__}"


def _genome_models(genome: Any) -> set[str]:
    nodes = getattr(genome, "nodes", {}) or {}
    return {g.model for g in nodes.values() if getattr(g, "model", None)}


def _default_runner() -> Callable[..., Any]:
    from neatpipe.runtime import run_pipelines

    return run_pipelines


#: How the evaluator groups pipeline runs: ``generation`` runs everything one call asks for (a
#: population, a racing round, the champions) as one stream of batches; ``genome`` runs them one
#: after another (for comparison: ``neatpipe bench evaluation``).
BATCHING = ("generation", "genome")


@dataclass(frozen=True)
class _Want:
    """One genome to score: on ``problems`` with ``repeats`` repeats, under ``label``."""

    genome: Any
    problems: list[Problem]
    repeats: int
    label: str
    racing_rounds: int = 0


def _label(key: Any, genome: Any) -> str:
    description = getattr(genome, "description", "") or ""
    return description or (f"genome {key}" if key is not None else genome.behaviour_hash()[:12])


class Evaluator:
    """Scores genomes on problems with ``repeats`` repeats, reusing every earlier problem evaluation.

    ``models`` maps the model names genomes use to backends; ``sandbox`` is a started sandbox;
    ``feedback`` is the experiment's feedback policy (``visible``, ``hidden``, or ``None`` for each
    executor's own setting). ``result_cache``: ``True`` (a store in memory), ``False`` (no reuse),
    a ``ResultStore``, or a path to an SQLite store. ``runner`` runs a list of
    :class:`~neatpipe.runtime.PipelineJob` as one stream (default ``neatpipe.runtime.run_pipelines``,
    whose signature it has); ``batching`` is ``generation`` (every genome one call scores, in one
    stream) or ``genome`` (one stream per pipeline run). ``on_run`` is called with every
    ``PipelineRun`` as it finishes (e.g. to write trajectories). ``context`` is extra text that
    separates stored results (e.g. a prompt-pool version); the feedback policy and every model's
    identity are always part of it.

    Counters: ``pipeline_runs`` (pipeline runs made: one per genome and repeat that lacked
    results), ``problem_runs`` (problem evaluations run), ``problem_reuses`` (problem evaluations
    served by the store), and ``stream`` (a :class:`~neatpipe.runtime.StreamStats`: backend calls,
    batch sizes, sandbox batches).
    """

    def __init__(
        self,
        models: Mapping[str, Any],
        sandbox: Any,
        *,
        feedback: str | None = "visible",
        penalty: Penalty = STUDY_PENALTY,
        repeats: int = 1,
        seed: int = 0,
        result_cache: bool | ResultStore | str | os.PathLike[str] = True,
        runner: Callable[..., Any] | None = None,
        on_run: Callable[[Any], None] | None = None,
        context: str = "",
        batching: str = "generation",
    ) -> None:
        if batching not in BATCHING:
            raise ValueError(f"batching must be one of {', '.join(BATCHING)}, got {batching!r}")
        if feedback not in FEEDBACK_POLICIES:
            raise ValueError(f"feedback must be 'visible', 'hidden' or None, got {feedback!r}")
        if repeats < 1:
            raise ValueError(f"repeats must be at least 1, got {repeats}")
        self.models = models
        self.sandbox = sandbox
        self.feedback = feedback
        self.penalty = penalty
        self.repeats = repeats
        self.seed = seed
        self.runner = runner if runner is not None else _default_runner()
        self.batching = batching
        self.on_run = on_run
        if isinstance(result_cache, ResultStore):
            self.store: ResultStore | None = result_cache
        elif result_cache is True:
            self.store = ResultStore()
        elif result_cache is False or result_cache is None:
            self.store = None
        else:
            self.store = ResultStore(result_cache)
        identities = {name: _identity(b) for name, b in sorted(models.items())}
        self.context = hashlib.sha256(
            json.dumps({"feedback": self.feedback, "models": identities, "extra": context}).encode()
        ).hexdigest()[:16]
        self._synthetic = {name: bool(getattr(b, "synthetic", False)) for name, b in models.items()}
        self.pipeline_runs = 0
        self.stream = StreamStats()
        self.problem_runs = 0
        self.problem_reuses = 0
        self.last_race: list[RaceRound] = []

    # -- seeds and keys ----------------------------------------------------------------------

    def seeds(self, repeats: int | None = None) -> tuple[int, ...]:
        return repeat_seeds(self.seed, repeats or self.repeats)

    @property
    def feedback_source(self) -> str:
        return self.feedback or "genome"

    @contextmanager
    def observing_runs(self, observer: Callable[[Any], None]) -> Iterator[None]:
        """Inside the block, ``observer(run)`` sees every ``PipelineRun`` as soon as it is made, before
        its results are stored (``on_run`` is still called)."""
        previous = self.on_run

        def both(run: Any) -> None:
            observer(run)
            if previous is not None:
                previous(run)

        self.on_run = both
        try:
            yield
        finally:
            self.on_run = previous

    @contextmanager
    def collecting_runs(self) -> Iterator[list[Any]]:
        """Every ``PipelineRun`` made inside the block, in a list (``on_run`` is still called)."""
        runs: list[Any] = []
        with self.observing_runs(runs.append):
            yield runs

    def _uses_synthetic(self, genome: Any) -> bool:
        used = _genome_models(genome) & set(self._synthetic)
        return any(self._synthetic[m] for m in (used or self._synthetic))

    # -- running what is missing -------------------------------------------------------------

    def _run_jobs(
        self, jobs: list[Any], on_run: Callable[[int, Any], None]
    ) -> tuple[list[Any], list[tuple[int, float]]]:
        """Every job's outcome (a run or a ``GenomeError``), and for each job the stream it ran in and
        how long that stream took until the job finished: one stream for all jobs (``generation``) or
        one per job (``genome``)."""
        if not jobs:
            return [], []
        if self.batching == "generation":
            groups = [list(range(len(jobs)))]
        else:
            groups = [[j] for j in range(len(jobs))]
        outcomes: list[Any] = [None] * len(jobs)
        timing: list[tuple[int, float]] = [(0, 0.0)] * len(jobs)
        seen: set[int] = set()
        for stream, group in enumerate(groups):
            started = time.perf_counter()

            def finished(
                i: int, run: Any, group: list[int] = group, stream: int = stream, started: float = started
            ) -> None:
                wall = get_field(run, "wall_s", None)
                timing[group[i]] = (
                    stream,
                    float(wall if wall is not None else time.perf_counter() - started),
                )
                seen.add(group[i])
                on_run(group[i], run)

            got = self.runner(
                [jobs[j] for j in group], self.models, self.sandbox, on_run=finished, stats=self.stream
            )
            if len(got) != len(group):
                raise RuntimeError(f"runner returned {len(got)} outcomes for {len(group)} pipeline runs")
            for i, (j, outcome) in enumerate(zip(group, got, strict=True)):
                outcomes[j] = outcome
                if j not in seen and not isinstance(outcome, GenomeError):  # a runner that did not report it
                    finished(i, outcome)
        return outcomes, timing

    def _score_many(
        self,
        wants: Sequence[_Want],
        store: ResultStore | None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Evaluation]:
        """Evaluations of every want, running what ``store`` lacks for all of them together: one
        pipeline run per (genome, repeat) over that repeat's missing problems, all in one stream."""
        hashes = [w.genome.behaviour_hash() for w in wants]
        found: list[dict[tuple[str, int], ProblemResult]] = [{} for _ in wants]
        jobs: list[Any] = []
        owners: list[list[int]] = []  # the wants each job serves
        keys_of: list[dict[str, str]] = []
        seed_of: list[int] = []
        by_key: dict[tuple[str, int, tuple[str, ...]], int] = {}
        for w, want in enumerate(wants):
            for repeat, seed in enumerate(self.seeds(want.repeats)):
                keys = {p.task_id: result_key(self.context, hashes[w], p, seed) for p in want.problems}
                missing = []
                for p in want.problems:
                    hit = store.get(keys[p.task_id]) if store is not None else None
                    if hit is None:
                        missing.append(p)
                    else:
                        found[w][(p.task_id, seed)] = hit
                        self.problem_reuses += 1
                if not missing:
                    continue
                job_key = (hashes[w], seed, tuple(p.task_id for p in missing))
                if job_key in by_key:
                    owners[by_key[job_key]].append(w)
                    continue
                by_key[job_key] = len(jobs)
                jobs.append(PipelineJob(want.genome, tuple(missing), self.feedback, seed, repeat, want.label))
                owners.append([w])
                keys_of.append(keys)
                seed_of.append(seed)
        left = [0] * len(wants)
        for serves in owners:
            for w in serves:
                left[w] += 1
        ran = [0] * len(wants)
        reported = 0

        def report(w: int) -> None:
            nonlocal reported
            reported += 1
            if progress is not None:
                progress(reported, len(wants))

        for w in range(len(wants)):
            if left[w] == 0:
                report(w)

        def finished(j: int, run: Any) -> None:
            if self.on_run is not None:
                self.on_run(run)
            trajectories = list(get_field(run, "trajectories", ()))
            missing = jobs[j].problems
            if len(trajectories) != len(missing):
                raise RuntimeError(
                    f"runner returned {len(trajectories)} trajectories for {len(missing)} problems"
                )
            synthetic = self._uses_synthetic(jobs[j].genome)
            batch = []
            for p, t in zip(missing, trajectories, strict=True):
                result = result_from_trajectory(t, seed_of[j], synthetic)
                if result.task_id != p.task_id:
                    raise RuntimeError(f"runner returned {result.task_id!r} where {p.task_id!r} was expected")
                for w in owners[j]:
                    found[w][(p.task_id, seed_of[j])] = result
                batch.append((keys_of[j][p.task_id], result))
            if store is not None:
                store.put_many(batch)
            self.pipeline_runs += 1
            self.problem_runs += len(missing)
            for w in owners[j]:
                ran[w] += len(missing)
                left[w] -= 1
                if left[w] == 0:
                    report(w)

        outcomes, timing = self._run_jobs(jobs, finished)
        errors: dict[int, GenomeError] = {}
        walls: list[dict[int, float]] = [{} for _ in wants]
        for j, outcome in enumerate(outcomes):
            for w in owners[j]:
                if isinstance(outcome, GenomeError):
                    errors.setdefault(w, outcome)
                else:
                    stream, wall = timing[j]
                    walls[w][stream] = max(walls[w].get(stream, 0.0), wall)
        for w in range(len(wants)):
            if w in errors:
                report(w)
        return [
            self._evaluation(want, hashes[w], found[w], ran[w], sum(walls[w].values()), errors.get(w))
            for w, want in enumerate(wants)
        ]

    def _evaluation(
        self,
        want: _Want,
        ghash: str,
        found: Mapping[tuple[str, int], ProblemResult],
        ran: int,
        wall: float,
        error: GenomeError | None,
    ) -> Evaluation:
        genome, problems, repeats = want.genome, want.problems, want.repeats
        seeds = self.seeds(repeats)
        benchmark = ",".join(sorted({p.benchmark for p in problems}))
        common = {
            "genome": ghash,
            "label": want.label,
            "benchmark": benchmark,
            "problems": tuple(p.task_id for p in problems),
            "repeats": repeats,
            "seeds": seeds,
            "feedback": self.feedback_source,
            "penalty_spec": self.penalty.to_dict(),
            "racing_rounds": want.racing_rounds,
        }
        if error is not None:  # a genome that cannot run scores 0, explicitly
            penalty = self.penalty.value(genome, 0.0)
            return Evaluation(
                **common,
                pass_rates=tuple(0.0 for _ in seeds),
                mean=0.0,
                sd=0.0 if repeats > 1 else None,
                per_problem={p.task_id: 0 for p in problems},
                prompt_tokens=0,
                completion_tokens=0,
                model_calls=0,
                cache_hits=0,
                wall_s=0.0,
                synthetic=self._uses_synthetic(genome),
                penalty=penalty,
                fitness=fitness_of(0.0, penalty),
                rests_on=0,
                error=f"{type(error).__name__}: {error}",
            )
        results = list(found.values())
        pass_rates = tuple(sum(found[(p.task_id, s)].passed for p in problems) / len(problems) for s in seeds)
        mean, sd = mean_sd(pass_rates)
        rests_on = len(results)
        cost = Cost.total(results)
        penalty = self.penalty.value(genome, cost.tokens / rests_on if rests_on else 0.0)
        return Evaluation(
            **common,
            pass_rates=pass_rates,
            mean=mean,
            sd=sd,
            per_problem={p.task_id: sum(found[(p.task_id, s)].passed for s in seeds) for p in problems},
            **cost.fields(),
            wall_s=wall,
            synthetic=any(r.synthetic for r in results) or self._uses_synthetic(genome),
            penalty=penalty,
            fitness=fitness_of(mean, penalty),
            rests_on=rests_on,
            new_evaluations=ran,
        )

    # -- public API --------------------------------------------------------------------------

    def evaluate(
        self,
        genome: Any,
        problems: ProblemSet | Sequence[Problem],
        repeats: int | None = None,
        *,
        label: str | None = None,
    ) -> Evaluation:
        """``genome`` on ``problems`` with ``repeats`` repeats (default: the evaluator's), paying only
        for the problem evaluations the store does not hold yet."""
        repeats = repeats or self.repeats
        if repeats < 1:
            raise ValueError(f"repeats must be at least 1, got {repeats}")
        label = label or _label(getattr(genome, "key", None), genome)
        (evaluation,) = self._score_many([_Want(genome, _as_problems(problems), repeats, label)], self.store)
        return evaluation

    def evaluate_population(
        self,
        genomes: Iterable[tuple[Any, Any]],
        problems: ProblemSet | Sequence[Problem],
        repeats: int | None = None,
        *,
        racing: Racing | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[Any, Evaluation]:
        """Evaluations of ``(key, genome)`` pairs, by key, in input order. Genomes with the same
        behaviour hash are scored once. With ``racing``, genomes that cannot be among the best are
        dropped early (``Evaluation.problems`` and ``rests_on`` say how far each was scored;
        ``last_race`` has the rounds). All genomes are scored together (see ``batching``); a racing
        round is one stream over the genomes still in the race. ``progress(done, total)`` is called
        as each distinct genome's score is complete (with racing: in each round)."""
        pairs = list(genomes)
        repeats = repeats or self.repeats
        plist = _as_problems(problems)
        groups: dict[str, list[tuple[Any, Any]]] = {}
        for key, genome in pairs:
            groups.setdefault(genome.behaviour_hash(), []).append((key, genome))
        by_hash: dict[str, Evaluation]
        if racing is None:
            self.last_race = []
            wants = [_Want(members[0][1], plist, repeats, _label(*members[0])) for members in groups.values()]
            by_hash = dict(zip(groups, self._score_many(wants, self.store, progress), strict=True))
        else:
            by_hash = self._race(groups, plist, repeats, racing, progress)
        out = {}
        for key, genome in pairs:
            ev = by_hash[genome.behaviour_hash()]
            label = _label(key, genome)
            out[key] = ev if ev.label == label else _relabel(ev, label)
        return out

    def _race(
        self,
        groups: Mapping[str, list[tuple[Any, Any]]],
        plist: list[Problem],
        repeats: int,
        racing: Racing,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Evaluation]:
        order = list(plist)
        if racing.shuffle:
            random.Random(derive_seed("neatpipe-race", self.seed, *(p.task_id for p in plist))).shuffle(order)
        store = self.store if self.store is not None else ResultStore()
        alive = list(groups)
        latest: dict[str, Evaluation] = {}
        self.last_race = []
        sizes = racing.sizes(len(order))
        for round_no, size in enumerate(sizes, start=1):
            part = order[:size]
            wants = [
                _Want(groups[h][0][1], part, repeats, _label(*groups[h][0]), racing_rounds=round_no)
                for h in alive
            ]
            latest.update(zip(alive, self._score_many(wants, store, progress), strict=True))
            if size == len(order) or len(alive) <= racing.top_k:
                self.last_race.append(RaceRound(size, len(alive), (), None))
                if size == len(order):
                    break
                continue
            lower = {}
            upper = {}
            for h in alive:
                ev = latest[h]
                lo, hi = ev.interval(racing.confidence, racing.bound)
                lower[h], upper[h] = lo - ev.penalty, hi - ev.penalty
            threshold = sorted(lower.values(), reverse=True)[racing.top_k - 1]
            best = max(latest[h].fitness for h in alive)
            dropped = tuple(
                h
                for h in alive
                if upper[h] < threshold
                and (racing.margin is None or latest[h].fitness < best - racing.margin)
            )
            self.last_race.append(RaceRound(size, len(alive), dropped, threshold))
            alive = [h for h in alive if h not in dropped]
        return latest

    def validate_champions(
        self,
        genomes: Iterable[Any],
        held_out_problems: ProblemSet | Sequence[Problem],
        repeats: int = 5,
        *,
        search: Mapping[Any, Evaluation] | None = None,
    ) -> list[ValidationResult]:
        """Re-scores each genome (or ``(key, genome)`` pair) on held-out problems with ``repeats``
        repeats and sets the result next to its search score. ``search`` maps keys to the search
        evaluations; without it the genome's own ``fitness`` is the search score."""
        pairs = [item if isinstance(item, tuple) else (getattr(item, "key", None), item) for item in genomes]
        plist = _as_problems(held_out_problems)
        wants = [_Want(genome, plist, repeats, _label(key, genome)) for key, genome in pairs]
        out = []
        for (key, genome), want, validated in zip(
            pairs, wants, self._score_many(wants, self.store), strict=True
        ):
            label = want.label
            found = search.get(key) if search is not None else None
            if found is not None:
                out.append(
                    ValidationResult(
                        key, validated.genome, label, found.fitness, found.mean, found.rests_on, validated
                    )
                )
            else:
                fitness = getattr(genome, "fitness", None)
                if fitness is None:
                    raise ValueError(f"{label}: no search evaluation given and the genome has no fitness")
                out.append(
                    ValidationResult(key, validated.genome, label, float(fitness), None, None, validated)
                )
        return out


def _relabel(ev: Evaluation, label: str) -> Evaluation:
    return replace(ev, label=label)


def validate_champions(
    evaluator: Evaluator,
    genomes: Iterable[Any],
    held_out_problems: ProblemSet | Sequence[Problem],
    repeats: int = 5,
    *,
    search: Mapping[Any, Evaluation] | None = None,
) -> list[ValidationResult]:
    """``evaluator.validate_champions(...)`` as a function."""
    return evaluator.validate_champions(genomes, held_out_problems, repeats, search=search)
