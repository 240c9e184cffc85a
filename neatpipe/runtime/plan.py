"""A genome compiled into the order its nodes run in: the plan.

A pipeline genome is a DAG between the ``problem`` and ``output`` pins. The runner does not walk the
graph node by node; it walks *steps*, each of which emits one candidate per problem:

* ``generate``: a generator writes a candidate from the problem (one model call per step).
* ``select``: a selector picks one of its two or more input candidates.
* ``stage``: a refine stage, i.e. an executor, an optional analyzer and a refiner. Its input is the
  candidate the executor looks at; it loops up to the refiner's ``iterations`` and emits the last
  candidate (see :mod:`neatpipe.runtime.runner`).

Executors and analyzers never appear as steps of their own: they belong to the stage of the refiner
they feed (the wiring rules guarantee exactly one). Steps are listed in a topological order of the
graph with ties broken by node key, so every step's inputs are produced by earlier steps and the order
is the same every time.

A plan is plain, frozen data: it holds genes (frozen too) and names, never a model or a sandbox.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from neatpipe.genome.errors import GenomeError
from neatpipe.genome.genes import OUTPUT, PROBLEM, NodeGene, Role
from neatpipe.genome.genome import PipelineGenome
from neatpipe.genome.graphs import topological_order
from neatpipe.genome.structure import Rules, default_name, find_problems

STEP_KINDS = ("generate", "select", "stage")


@dataclass(frozen=True)
class Step:
    """One step of a plan: a node that emits a candidate per problem, with what it reads.

    ``node`` is the emitting node's key (the generator, the selector, or the stage's refiner) and
    ``name`` its id in files and trajectories. ``inputs`` are the keys of the steps whose candidates
    it reads: none for a generator, two or more for a selector, one for a stage (the candidate its
    executor looks at). A stage also carries its ``executor`` and, when it has one, its ``analyzer``.
    """

    kind: str
    node: int
    name: str
    gene: NodeGene
    inputs: tuple[int, ...] = ()
    executor: NodeGene | None = None
    analyzer: NodeGene | None = None
    executor_name: str | None = None
    analyzer_name: str | None = None

    @property
    def model_genes(self) -> tuple[NodeGene, ...]:
        """The genes of this step that call a model, in the order they run."""
        if self.kind == "generate":
            return (self.gene,)
        if self.kind == "stage":
            return (self.analyzer, self.gene) if self.analyzer is not None else (self.gene,)
        return ()

    def describe(self, names: Mapping[int, str] | None = None) -> str:
        shown = ", ".join((names or {}).get(k, str(k)) for k in self.inputs)
        if self.kind == "stage":
            parts = [self.executor_name or "?"]
            if self.analyzer_name:
                parts.append(self.analyzer_name)
            parts.append(self.name)
            loop = f"x{self.gene.iterations}" + (" early-stop" if self.gene.early_stop else "")
            return f"stage {' -> '.join(parts)} {loop} (input {shown})"
        if self.kind == "select":
            return f"select {self.name} [{self.gene.strategy}] from {shown}"
        return f"generate {self.name} ({self.gene.model})"


@dataclass(frozen=True)
class Plan:
    """The steps of a genome in run order, the step whose candidate reaches the output, and names.

    ``genome_hash`` is the genome's behaviour hash: equal plans come from genomes that behave alike.
    """

    steps: tuple[Step, ...]
    output: int
    names: Mapping[int, str]
    genome_hash: str

    @property
    def models(self) -> tuple[str, ...]:
        """The model-pool names the plan uses, sorted."""
        return tuple(sorted({g.model for s in self.steps for g in s.model_genes if g.model is not None}))

    def model_nodes(self) -> dict[str, list[str]]:
        """Model-pool name -> the nodes that use it (for error messages)."""
        out: dict[str, list[str]] = {}
        for s in self.steps:
            for g in s.model_genes:
                out.setdefault(str(g.model), []).append(self.names[g.key])
        return out

    def step(self, node: int) -> Step:
        for s in self.steps:
            if s.node == node:
                return s
        raise KeyError(f"no step emits node {node}")

    @property
    def stages(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.kind == "stage")

    def describe(self) -> str:
        """One line per step, for logs."""
        return "\n".join(f"{i + 1}. {s.describe(self.names)}" for i, s in enumerate(self.steps))


def compile_plan(
    genome: PipelineGenome,
    names: Mapping[int, str] | None = None,
    rules: Rules | None = None,
) -> Plan:
    """The plan of ``genome``; raises ``GenomeError`` listing every problem if the genome is invalid.

    ``names`` are the node ids a graph file used (``LoadedGenome.names``); nodes without one get
    ``default_name`` (``gen-3``, ``refine-7``). ``rules`` adds the checks of an experiment (model
    pool, prompt pool sizes, limits); by default only the wiring and attribute ranges are checked.
    """
    if not isinstance(genome, PipelineGenome):
        raise TypeError(f"compile_plan expects a PipelineGenome, got {type(genome).__name__}")
    problems = find_problems(genome.nodes, genome.connections, rules, names)
    if problems:
        raise GenomeError(problems)
    nodes = genome.nodes
    edges = list(genome.connections)
    ids = {k: (names or {}).get(k) or default_name(g) for k, g in nodes.items()}
    inputs: dict[int, list[int]] = {k: [] for k in (*nodes, OUTPUT)}
    for s, t in edges:
        if t in inputs and s != PROBLEM:
            inputs[t].append(s)

    steps: list[Step] = []
    for key in topological_order(nodes, edges):
        gene = nodes[key]
        if gene.role == Role.GENERATOR:
            steps.append(Step("generate", key, ids[key], gene))
        elif gene.role == Role.SELECTOR:
            steps.append(Step("select", key, ids[key], gene, tuple(sorted(inputs[key]))))
        elif gene.role == Role.REFINER:
            executor = _only(k for k in inputs[key] if nodes[k].role == Role.EXECUTOR)
            analyzers = [k for k in inputs[key] if nodes[k].role == Role.ANALYZER]
            analyzer = analyzers[0] if analyzers else None
            steps.append(
                Step(
                    "stage",
                    key,
                    ids[key],
                    gene,
                    (_only(inputs[executor]),),
                    executor=nodes[executor],
                    analyzer=nodes[analyzer] if analyzer is not None else None,
                    executor_name=ids[executor],
                    analyzer_name=ids[analyzer] if analyzer is not None else None,
                )
            )
    return Plan(
        steps=tuple(steps),
        output=_only(inputs[OUTPUT]),
        names=dict(ids),
        genome_hash=genome.behaviour_hash(),
    )


def _only(keys: Iterable[int]) -> int:
    found = list(keys)
    if len(found) != 1:  # find_problems rules this out; a failure here is a bug in the rules
        raise AssertionError(f"expected exactly one node, found {found}")
    return found[0]


__all__ = ["STEP_KINDS", "Plan", "Step", "compile_plan"]
