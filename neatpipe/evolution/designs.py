"""Fixed designs: named genomes scored with repeats, their refinement tables, and the files they leave.

One mechanism serves ``neatpipe evaluate GENOME...``, experiments with ``mode: evaluate`` (the reference
study's designs) and the baselines an evolution run validates next to its champions. The files it writes
(``trajectories.jsonl`` and ``evaluation.json``) are what ``neatpipe analyze`` and ``neatpipe compare`` read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVALUATION_FILE = "evaluation.json"
TRAJECTORIES_FILE = "trajectories.jsonl"


@dataclass(frozen=True)
class Design:
    """A genome with the label its results carry (``source`` says where it came from)."""

    label: str
    genome: Any  # PipelineGenome
    source: str = ""


@dataclass
class DesignResult:
    design: Design
    evaluation: Any  # neatpipe.evolution.fitness.Evaluation
    trajectories: list[Any]  # neatpipe.runtime.Trajectory, labelled with the design's label
    ci: tuple[float, float] | None = None
    tables: dict[str, Any] = field(default_factory=dict)
    plus: list[float] | None = None  # HumanEval+ / MBPP+: pass@1 on base and plus inputs, per repeat

    @property
    def plus_mean(self) -> float | None:
        return None if not self.plus else sum(self.plus) / len(self.plus)


def with_models(genome: Any, mapping: Mapping[str, str]) -> Any:
    """A copy of ``genome`` whose nodes use ``mapping[model]`` instead of ``model`` (one file, many models)."""
    if not mapping:
        return genome
    from neatpipe.genome import PipelineGenome

    nodes = [
        dataclasses.replace(g, model=mapping[g.model]) if g.model in mapping else g
        for g in genome.nodes.values()
    ]
    return PipelineGenome.from_genes(
        genome.key, nodes, genome.connections.values(), genome.fitness, genome.description
    )


def with_temperature(genome: Any, temperature: float) -> Any:
    """A copy of ``genome`` whose model-calling nodes all sample at ``temperature`` (harvesting samples)."""
    from neatpipe.genome import PipelineGenome

    nodes = [dataclasses.replace(g, temperature=temperature) if g.model else g for g in genome.nodes.values()]
    return PipelineGenome.from_genes(
        genome.key, nodes, genome.connections.values(), genome.fitness, genome.description
    )


def experiment_designs(experiment: Any) -> list[Design]:
    """The ``evaluate.genomes`` of an experiment, read and with their models swapped."""
    from neatpipe.genome import load_genome

    return [
        Design(e.label, with_models(load_genome(e.path), dict(e.replace_models)), e.path)
        for e in experiment.evaluate.genomes
    ]


def evaluate_designs(
    evaluator: Any,
    designs: Sequence[Design],
    problems: Sequence[Any],
    *,
    repeats: int | None = None,
    seed: int = 0,
) -> list[DesignResult]:
    """Score every design on ``problems`` with ``repeats`` repeats and compute its tables."""
    from neatpipe.analysis import bootstrap_pass_at_1, early_stopping_table, error_fix_table, transition_table
    from neatpipe.analysis.iterations import neatpipe_sets_from_records

    labels = [d.label for d in designs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"design labels must be unique, got {labels}")
    with evaluator.collecting_runs() as runs:  # every design in one stream of batches
        evaluations = evaluator.evaluate_population([(d.label, d.genome) for d in designs], problems, repeats)
    by_genome: dict[str, list[Any]] = {}
    for run in sorted(runs, key=lambda r: r.repeat):
        by_genome.setdefault(run.genome, []).extend(run.trajectories)
    results = []
    for d in designs:
        ev = dataclasses.replace(evaluations[d.label], label=d.label)
        trajectories = [
            dataclasses.replace(t, label=d.label) for t in by_genome.get(d.genome.behaviour_hash(), [])
        ]
        results.append(DesignResult(d, ev, trajectories))
    sets = neatpipe_sets_from_records(
        (f"{r.design.label} / {t.task_id}", t.to_dict()) for r in results for t in r.trajectories
    )
    for r in results:
        by_repeat: dict[int, list[bool]] = {}
        plus_by_repeat: dict[int, list[bool]] = {}
        for t in r.trajectories:
            by_repeat.setdefault(t.repeat, []).append(bool(t.passed))
            if t.plus_passed is not None:
                plus_by_repeat.setdefault(t.repeat, []).append(bool(t.plus_passed))
        if plus_by_repeat:
            r.plus = [sum(v) / len(v) for _, v in sorted(plus_by_repeat.items())]
        if by_repeat:
            outcomes = [by_repeat[k] for k in sorted(by_repeat)]
            ci = bootstrap_pass_at_1(outcomes if len(outcomes) > 1 else outcomes[0], seed=seed)
            r.ci = (ci.low, ci.high)
        ts = sets.get(r.design.label)
        if ts is not None:
            r.tables = {
                "early_stopping": early_stopping_table(ts.trajectories),
                "error_fix": error_fix_table(ts.trajectories),
                "transitions": transition_table(ts.trajectories),
            }
    return results


def designs_cross_tables(results: Sequence[DesignResult]) -> Any:
    """The cross-configuration tables (:mod:`neatpipe.analysis.cross`) of two designs or more: problems
    none solves, problems a solo design solves and another does not, consistency over repeats; None for
    one design."""
    if len(results) < 2:
        return None
    from neatpipe.analysis.cross import cross_tables
    from neatpipe.analysis.iterations import neatpipe_sets_from_records

    sets = neatpipe_sets_from_records(
        (f"{r.design.label} / {t.task_id}", t.to_dict()) for r in results for t in r.trajectories
    )
    return cross_tables([sets[r.design.label] for r in results if r.design.label in sets])


def designs_report(
    results: Sequence[DesignResult], benchmark: str, n_problems: int, temperature: float | None = None
) -> dict[str, Any]:
    """The content of ``evaluation.json`` (``temperature``: the one every model node sampled at, None when
    each genome kept its own)."""
    entries = []
    for r in results:
        entry = r.evaluation.to_dict()
        entry["label"] = r.design.label
        entry["file"] = r.design.source
        entry["bootstrap_ci"] = list(r.ci) if r.ci else None
        entry["tables"] = {k: v.to_dict() for k, v in r.tables.items()}
        if r.plus is not None:  # base (the hidden tests, ``mean``) and plus side by side
            entry["plus"] = {"mean": r.plus_mean, "per_repeat": r.plus, "base_mean": r.evaluation.mean}
        entries.append(entry)
    report = {
        "benchmark": benchmark,
        "problems": n_problems,
        "temperature": temperature,
        "evaluations": entries,
    }
    cross = designs_cross_tables(results)
    if cross is not None:
        report["cross_configuration"] = cross.to_dict()
    return report


def render_designs(
    results: Sequence[DesignResult],
    benchmark: str,
    n_problems: int,
    style: str = "text",
    temperature: float | None = None,
) -> str:
    """pass@1 with spread, cost and the three tables of every design (plain text or Markdown)."""
    from neatpipe.analysis.render import render, render_cross

    parts = []
    for r in results:
        ev = r.evaluation
        tag = "  [SYNTHETIC models]" if ev.synthetic else ""
        sd = f" ± {ev.sd:.3f}" if ev.sd is not None else " (one evaluation: no spread)"
        ci = f" (95% bootstrap CI {r.ci[0]:.3f}-{r.ci[1]:.3f})" if r.ci else ""
        head = f"== {r.design.label}{tag}" if style == "text" else f"### {r.design.label}{tag}"
        lines = [
            head,
            "",
            f"pass@1 {ev.mean:.3f}{sd} over {ev.repeats} repeat(s) of {n_problems} {benchmark} problems{ci}; "
            f"feedback: {ev.feedback}"
            + ("" if temperature is None else f"; every model node sampled at temperature {temperature:g}"),
            *(
                [
                    f"base pass@1 {ev.mean:.3f} | plus pass@1 {r.plus_mean:.3f} (base and plus inputs, as EvalPlus scores)"
                ]
                if r.plus_mean is not None
                else []
            ),
            "",
            f"fitness {ev.fitness:.3f} (penalty {ev.penalty:.3f}); cost: {ev.prompt_tokens:,} prompt + "
            f"{ev.completion_tokens:,} completion tokens, {ev.model_calls:,} model requests ({ev.cache_hits:,} "
            f"answered by the completion cache), {ev.wall_s:.1f} s",
        ]
        for key in ("early_stopping", "error_fix", "transitions"):
            if key in r.tables:
                lines += ["", render(r.tables[key], style)]
        parts.append("\n".join(lines))
    cross = designs_cross_tables(results)
    if cross is not None:
        head = f"Across the {len(results)} designs"
        parts.append(
            (f"== {head}" if style == "text" else f"### {head}") + "\n\n" + render_cross(cross, style)
        )
    return "\n\n".join(parts)


def write_design_files(out_dir: Path, results: Sequence[DesignResult], report: Mapping[str, Any]) -> None:
    """``trajectories.jsonl`` and ``evaluation.json`` in ``out_dir`` (both written atomically), and the
    prompts and answers the trajectories name in ``texts.sqlite`` (stored first)."""
    from neatpipe.evolution.runlog import write_json
    from neatpipe.runtime.texts import store_texts
    from neatpipe.runtime.trajectory import write_trajectories

    out_dir.mkdir(parents=True, exist_ok=True)
    store_texts(out_dir, [t for r in results for t in r.trajectories])
    write_trajectories(out_dir / TRAJECTORIES_FILE, [t for r in results for t in r.trajectories])
    write_json(out_dir / EVALUATION_FILE, dict(report))
