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
from neatpipe.runtime.runner import FEEDBACK_POLICIES
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
    from neatpipe.runtime import run_pipeline

    return run_pipeline


def _label(key: Any, genome: Any) -> str:
    description = getattr(genome, "description", "") or ""
    return description or (f"genome {key}" if key is not None else genome.behaviour_hash()[:12])


class Evaluator:
    """Scores genomes on problems with ``repeats`` repeats, reusing every earlier problem evaluation.

    ``models`` maps the model names genomes use to backends; ``sandbox`` is a started sandbox;
    ``feedback`` is the experiment's feedback policy (``visible``, ``hidden``, or ``None`` for each
    executor's own setting). ``result_cache``: ``True`` (a store in memory), ``False`` (no reuse),
    a ``ResultStore``, or a path to an SQLite store. ``runner`` is the function that runs a genome
    over problems (default ``neatpipe.runtime.run_pipeline``); ``on_run`` is called with every
    ``PipelineRun`` (e.g. to write trajectories). ``context`` is extra text that separates stored
    results (e.g. a prompt-pool version); the feedback policy and every model's identity are
    always part of it.

    Counters: ``runner_calls`` (calls to ``runner``), ``problem_runs`` (problem evaluations run)
    and ``problem_reuses`` (problem evaluations served by the store).
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
    ) -> None:
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
        self.runner_calls = 0
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

    def _ensure(
        self,
        genome: Any,
        genome_hash: str,
        problems: list[Problem],
        seeds: tuple[int, ...],
        store: ResultStore | None,
        label: str,
    ) -> tuple[dict[tuple[str, int], ProblemResult], int, float]:
        """Results for every (problem, seed), running only what ``store`` lacks: one runner call per
        repeat over that repeat's missing problems. Returns the results, how many were run, and the
        wall time of the runs."""
        found: dict[tuple[str, int], ProblemResult] = {}
        ran = 0
        wall = 0.0
        synthetic = self._uses_synthetic(genome)
        for repeat, seed in enumerate(seeds):
            keys = {p.task_id: result_key(self.context, genome_hash, p, seed) for p in problems}
            missing = []
            for p in problems:
                hit = store.get(keys[p.task_id]) if store is not None else None
                if hit is None:
                    missing.append(p)
                else:
                    found[(p.task_id, seed)] = hit
                    self.problem_reuses += 1
            if not missing:
                continue
            started = time.perf_counter()
            run = self.runner(
                genome,
                missing,
                self.models,
                self.sandbox,
                feedback=self.feedback,
                seed=seed,
                repeat=repeat,
                label=label,
            )
            elapsed = time.perf_counter() - started
            self.runner_calls += 1
            if self.on_run is not None:
                self.on_run(run)
            trajectories = list(get_field(run, "trajectories", ()))
            if len(trajectories) != len(missing):
                raise RuntimeError(
                    f"runner returned {len(trajectories)} trajectories for {len(missing)} problems"
                )
            batch = []
            for p, t in zip(missing, trajectories, strict=True):
                result = result_from_trajectory(t, seed, synthetic)
                if result.task_id != p.task_id:
                    raise RuntimeError(f"runner returned {result.task_id!r} where {p.task_id!r} was expected")
                found[(p.task_id, seed)] = result
                batch.append((keys[p.task_id], result))
            if store is not None:
                store.put_many(batch)
            ran += len(missing)
            self.problem_runs += len(missing)
            wall += float(get_field(run, "wall_s", elapsed) or elapsed)
        return found, ran, wall

    def _score(
        self,
        genome: Any,
        problems: list[Problem],
        repeats: int,
        label: str,
        store: ResultStore | None,
        racing_rounds: int = 0,
    ) -> Evaluation:
        ghash = genome.behaviour_hash()
        seeds = self.seeds(repeats)
        benchmark = ",".join(sorted({p.benchmark for p in problems}))
        try:
            found, ran, wall = self._ensure(genome, ghash, problems, seeds, store, label)
        except GenomeError as exc:  # a genome that cannot run scores 0, explicitly
            penalty = self.penalty.value(genome, 0.0)
            return Evaluation(
                genome=ghash,
                label=label,
                benchmark=benchmark,
                problems=tuple(p.task_id for p in problems),
                repeats=repeats,
                seeds=seeds,
                pass_rates=tuple(0.0 for _ in seeds),
                mean=0.0,
                sd=0.0 if repeats > 1 else None,
                per_problem={p.task_id: 0 for p in problems},
                prompt_tokens=0,
                completion_tokens=0,
                model_calls=0,
                cache_hits=0,
                wall_s=0.0,
                feedback=self.feedback_source,
                synthetic=self._uses_synthetic(genome),
                penalty=penalty,
                fitness=fitness_of(0.0, penalty),
                rests_on=0,
                penalty_spec=self.penalty.to_dict(),
                racing_rounds=racing_rounds,
                error=f"{type(exc).__name__}: {exc}",
            )
        results = list(found.values())
        pass_rates = tuple(sum(found[(p.task_id, s)].passed for p in problems) / len(problems) for s in seeds)
        mean, sd = mean_sd(pass_rates)
        rests_on = len(results)
        cost = Cost.total(results)
        penalty = self.penalty.value(genome, cost.tokens / rests_on if rests_on else 0.0)
        return Evaluation(
            genome=ghash,
            label=label,
            benchmark=benchmark,
            problems=tuple(p.task_id for p in problems),
            repeats=repeats,
            seeds=seeds,
            pass_rates=pass_rates,
            mean=mean,
            sd=sd,
            per_problem={p.task_id: sum(found[(p.task_id, s)].passed for s in seeds) for p in problems},
            **cost.fields(),
            wall_s=wall,
            feedback=self.feedback_source,
            synthetic=any(r.synthetic for r in results) or self._uses_synthetic(genome),
            penalty=penalty,
            fitness=fitness_of(mean, penalty),
            rests_on=rests_on,
            new_evaluations=ran,
            penalty_spec=self.penalty.to_dict(),
            racing_rounds=racing_rounds,
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
        return self._score(
            genome,
            _as_problems(problems),
            repeats,
            label or _label(getattr(genome, "key", None), genome),
            self.store,
        )

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
        ``last_race`` has the rounds). ``progress(done, total)`` is called after each distinct genome
        is scored (with racing: after each genome's score in each round, over all rounds' work)."""
        pairs = list(genomes)
        repeats = repeats or self.repeats
        plist = _as_problems(problems)
        groups: dict[str, list[tuple[Any, Any]]] = {}
        for key, genome in pairs:
            groups.setdefault(genome.behaviour_hash(), []).append((key, genome))
        by_hash: dict[str, Evaluation]
        if racing is None:
            self.last_race = []
            by_hash = {}
            for done, (h, members) in enumerate(groups.items(), start=1):
                by_hash[h] = self._score(members[0][1], plist, repeats, _label(*members[0]), self.store)
                if progress is not None:
                    progress(done, len(groups))
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
            for i, h in enumerate(alive, start=1):
                key, genome = groups[h][0]
                latest[h] = self._score(
                    genome, part, repeats, _label(key, genome), store, racing_rounds=round_no
                )
                if progress is not None:
                    progress(i, len(alive))
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
        out = []
        for item in genomes:
            key, genome = item if isinstance(item, tuple) else (getattr(item, "key", None), item)
            label = _label(key, genome)
            validated = self._score(genome, _as_problems(held_out_problems), repeats, label, self.store)
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
    from dataclasses import replace

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
