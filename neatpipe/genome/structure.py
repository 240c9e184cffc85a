"""The wiring rules of a pipeline graph, checked on plain genes.

A pipeline is a DAG between two pins, ``problem`` (PROBLEM) and ``output`` (OUTPUT). Edges are
typed by the roles at their ends:

=================  ==========================================================
source             may feed
=================  ==========================================================
problem            generator
generator,         executor (which starts a refine stage), selector, output
refiner, selector
executor           analyzer, refiner (of its own stage)
analyzer           refiner (of its own stage)
=================  ==========================================================

and each role has fixed in- and out-degrees: a generator reads the problem; an executor looks at
exactly one candidate and feeds exactly one refiner (and at most one analyzer); an analyzer reads
one executor and feeds that executor's refiner; a refiner is fed by exactly one executor and
optionally one analyzer of the same stage; a selector takes two or more candidates; exactly one
candidate reaches the output; every node lies on a path from problem to output. Loops live in a
refiner's ``iterations``, never in the graph.

``find_problems`` returns every rule a set of genes breaks, each naming the node, edge or field.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from neatpipe.errors import shown
from neatpipe.genome.errors import GenomeError, Issue
from neatpipe.genome.genes import (
    ATTRIBUTE_FIELDS,
    CANDIDATE_ROLES,
    FEEDBACK_CHOICES,
    OUTPUT,
    PIN_NAMES,
    PROBLEM,
    ROLE_FIELDS,
    SELECTOR_STRATEGIES,
    NodeGene,
    Role,
)
from neatpipe.genome.graphs import find_cycle, reach
from neatpipe.genome.graphs import topological_order as topological_order  # evolution/run.py imports it here
from neatpipe.genome.prompts import default_pool_sizes
from neatpipe.genome.settings import GenomeSettings

_SHORT = {
    Role.GENERATOR: "gen",
    Role.EXECUTOR: "exec",
    Role.ANALYZER: "analyze",
    Role.REFINER: "refine",
    Role.SELECTOR: "select",
}


def default_name(gene: NodeGene) -> str:
    """The id a node gets in written graph files: short role name and key, e.g. ``refine-7``."""
    return f"{_SHORT[gene.role]}-{gene.key}"


@dataclass(frozen=True)
class Rules:
    """What ``find_problems`` checks beyond the wiring: attribute ranges, the model pool and the
    size limits. ``None`` means "not checked" (a graph file read without an experiment has no
    model pool and no limits)."""

    models: tuple[str, ...] | None = None
    prompt_sizes: Mapping[str, int] = field(default_factory=default_pool_sizes)
    temperature_min: float = 0.0
    temperature_max: float = 2.0
    iterations_min: int = 1
    iterations_max: int = 10
    max_nodes: int | None = None
    max_stages: int | None = None
    max_generators: int | None = None

    @classmethod
    def from_settings(cls, settings: GenomeSettings) -> Rules:
        return cls(
            models=tuple(settings.models),
            prompt_sizes={
                r.value: settings.prompt_pool_size(r) for r in (Role.GENERATOR, Role.ANALYZER, Role.REFINER)
            },
            temperature_min=settings.temperature_min,
            temperature_max=settings.temperature_max,
            iterations_min=settings.iterations_min,
            iterations_max=settings.iterations_max,
            max_nodes=settings.max_nodes,
            max_stages=settings.max_stages,
            max_generators=settings.max_generators,
        )


def _allowed_targets(source_role: Role | str) -> frozenset:
    if source_role == "problem":
        return frozenset({Role.GENERATOR})
    if source_role in CANDIDATE_ROLES:
        return frozenset({Role.EXECUTOR, Role.SELECTOR, "output"})
    if source_role == Role.EXECUTOR:
        return frozenset({Role.ANALYZER, Role.REFINER})
    if source_role == Role.ANALYZER:
        return frozenset({Role.REFINER})
    return frozenset()


def kind_of(key: int, nodes: Mapping[int, NodeGene]) -> Role | str | None:
    """A node's role, ``"problem"``/``"output"`` for the pins, ``None`` for an unknown key."""
    if key == PROBLEM:
        return "problem"
    if key == OUTPUT:
        return "output"
    gene = nodes.get(key)
    return gene.role if gene is not None else None


def edge_allowed(source: int, target: int, nodes: Mapping[int, NodeGene]) -> bool:
    """Whether an edge between these ends has a legal type (degrees are checked elsewhere)."""
    s, t = kind_of(source, nodes), kind_of(target, nodes)
    return s is not None and t is not None and source != target and t in _allowed_targets(s)


class _Namer:
    def __init__(self, nodes: Mapping[int, NodeGene], names: Mapping[int, str] | None) -> None:
        self.nodes, self.names = nodes, names or {}

    def __call__(self, key: int) -> str:
        if key in self.names:
            return self.names[key]
        if key in PIN_NAMES:
            return PIN_NAMES[key]
        if key in self.nodes:
            return default_name(self.nodes[key])
        return str(key)

    def node(self, key: int) -> str:
        return f"node '{self(key)}'"

    def edge(self, edge: tuple[int, int]) -> str:
        return f"edge {self(edge[0])} -> {self(edge[1])}"


def find_problems(
    nodes: Mapping[int, NodeGene],
    edges: Iterable[tuple[int, int]],
    rules: Rules | None = None,
    names: Mapping[int, str] | None = None,
) -> list[Issue]:
    """Every rule these genes break; empty when they form a valid pipeline.

    ``names`` maps node keys to the ids a file used, so problems name what the user wrote."""
    rules = rules or Rules()
    name = _Namer(nodes, names)
    problems: list[Issue] = []
    for key, gene in nodes.items():
        if key != gene.key:
            problems.append(Issue(name.node(key), f"gene key {gene.key} differs from its node key {key}"))
        if key in PIN_NAMES:
            problems.append(Issue(name.node(key), f"key {key} is reserved for the {PIN_NAMES[key]} pin"))
        problems.extend(attribute_problems(gene, rules, name.node(key)))

    edge_list = list(dict.fromkeys(edges))
    legal: list[tuple[int, int]] = []
    for e in edge_list:
        s, t = e
        if kind_of(s, nodes) is None or kind_of(t, nodes) is None:
            missing = s if kind_of(s, nodes) is None else t
            problems.append(Issue(name.edge(e), f"refers to node '{name(missing)}', which does not exist"))
        elif s == t:
            problems.append(
                Issue(name.edge(e), "a node cannot feed itself (loops are a refiner's iterations)")
            )
        elif not edge_allowed(s, t, nodes):
            problems.append(Issue(name.edge(e), f"a {kind_of(s, nodes)} cannot feed a {kind_of(t, nodes)}"))
        else:
            legal.append(e)

    inputs: dict[int, list[int]] = {k: [] for k in (*nodes, PROBLEM, OUTPUT)}
    outputs: dict[int, list[int]] = {k: [] for k in (*nodes, PROBLEM, OUTPUT)}
    for s, t in legal:
        outputs[s].append(t)
        inputs[t].append(s)

    def of_role(keys: list[int], role: Role) -> list[int]:
        return [k for k in keys if k in nodes and nodes[k].role == role]

    for key, gene in nodes.items():
        where = name.node(key)
        ins, outs = inputs[key], outputs[key]
        if gene.role == Role.GENERATOR and ins != [PROBLEM]:
            problems.append(
                Issue(
                    where, f"missing feed: a generator reads the problem (add an edge problem -> {name(key)})"
                )
            )
        elif gene.role == Role.EXECUTOR:
            if len(ins) != 1:
                problems.append(
                    Issue(
                        where,
                        f"missing feed: an executor looks at exactly one candidate (has {len(ins)})"
                        if not ins
                        else f"an executor looks at exactly one candidate (has {len(ins)})",
                    )
                )
            refiners, analyzers = of_role(outs, Role.REFINER), of_role(outs, Role.ANALYZER)
            if len(refiners) != 1:
                problems.append(
                    Issue(where, f"an executor feeds exactly one refiner (feeds {len(refiners)})")
                )
            if len(analyzers) > 1:
                problems.append(
                    Issue(where, f"an executor feeds at most one analyzer (feeds {len(analyzers)})")
                )
        elif gene.role == Role.ANALYZER:
            if len(ins) != 1:
                problems.append(
                    Issue(
                        where,
                        f"missing feed: an analyzer reads exactly one executor (has {len(ins)})"
                        if not ins
                        else f"an analyzer reads exactly one executor (has {len(ins)})",
                    )
                )
            if len(outs) != 1:
                problems.append(Issue(where, f"an analyzer feeds exactly one refiner (feeds {len(outs)})"))
        elif gene.role == Role.REFINER:
            execs, analyzers = of_role(ins, Role.EXECUTOR), of_role(ins, Role.ANALYZER)
            if len(execs) != 1:
                problems.append(
                    Issue(
                        where,
                        f"missing feed: a refiner is fed by exactly one executor (has {len(execs)})"
                        if not execs
                        else f"a refiner is fed by exactly one executor (has {len(execs)})",
                    )
                )
            if len(analyzers) > 1:
                problems.append(Issue(where, f"a refiner takes at most one analyzer (has {len(analyzers)})"))
            if len(execs) == 1:
                for a in analyzers:
                    if inputs[a] and inputs[a] != execs:
                        problems.append(
                            Issue(
                                name.edge((a, key)),
                                f"analyzer '{name(a)}' reads executor "
                                f"'{name(inputs[a][0])}', not this refiner's executor '{name(execs[0])}'",
                            )
                        )
        elif gene.role == Role.SELECTOR and len(ins) < 2:
            problems.append(
                Issue(where, f"missing feed: a selector takes two or more candidates (has {len(ins)})")
            )
    if len(inputs[OUTPUT]) != 1:
        fed = ", ".join(name(k) for k in inputs[OUTPUT]) or "nothing"
        problems.append(Issue("node 'output'", f"exactly one candidate must reach the output (fed by {fed})"))

    cycle = find_cycle(legal)
    if cycle:
        path = " -> ".join(name(k) for k in (*cycle, cycle[0]))
        problems.append(
            Issue(f"cycle {path}", "the graph must be acyclic (loops are a refiner's iterations)")
        )
    else:
        from_problem = reach(PROBLEM, legal)
        to_output = reach(OUTPUT, legal, forward=False)
        for key in nodes:
            if key not in from_problem or key not in to_output:
                side = "the problem" if key not in from_problem else "the output"
                problems.append(
                    Issue(name.node(key), f"is not on a path from problem to output (cut off from {side})")
                )

    problems.extend(limit_problems(nodes, rules))
    return problems


def limit_problems(nodes: Mapping[int, NodeGene], rules: Rules) -> list[Issue]:
    out = []
    counts = count_roles(nodes)
    if rules.max_nodes is not None and len(nodes) > rules.max_nodes:
        out.append(Issue("genome", f"{len(nodes)} nodes, more than max_nodes = {rules.max_nodes}"))
    if rules.max_stages is not None and counts[Role.REFINER] > rules.max_stages:
        out.append(
            Issue(
                "genome", f"{counts[Role.REFINER]} refine stages, more than max_stages = {rules.max_stages}"
            )
        )
    if rules.max_generators is not None and counts[Role.GENERATOR] > rules.max_generators:
        out.append(
            Issue(
                "genome",
                f"{counts[Role.GENERATOR]} generators, more than max_generators = {rules.max_generators}",
            )
        )
    return out


def count_roles(nodes: Mapping[int, NodeGene]) -> dict[Role, int]:
    counts = {role: 0 for role in Role}
    for gene in nodes.values():
        counts[gene.role] += 1
    return counts


def attribute_problems(gene: NodeGene, rules: Rules, where: str) -> list[Issue]:
    """Problems with one node's fields: missing, not for its role, wrong type, out of range."""
    out: list[Issue] = []
    if not isinstance(gene.role, Role):
        return [Issue(where, f"unknown role {gene.role!r} (roles: {', '.join(r.value for r in Role)})")]
    wanted = ROLE_FIELDS[gene.role]

    def bad(field_name: str, message: str) -> None:
        out.append(Issue(f"{where} field '{field_name}'", message))

    for f in ATTRIBUTE_FIELDS:
        value = getattr(gene, f)
        if f not in wanted:
            if value is not None:
                bad(f, f"does not apply to a {gene.role.value}")
            continue
        if value is None:
            bad(f, f"missing (a {gene.role.value} needs {', '.join(wanted)})")
            continue
        if f == "model":
            if not isinstance(value, str) or not value.strip():
                bad(f, "must be a model pool name")
            elif rules.models is not None and value not in rules.models:
                bad(f, f"unknown model {shown(value)} (pool: {', '.join(rules.models)})")
        elif f == "prompt":
            size = rules.prompt_sizes.get(gene.role.value, 0)
            if not _is_int(value) or not 0 <= value < size:
                bad(f, f"prompt index {shown(value)} is outside the {gene.role.value} pool (0..{size - 1})")
        elif f == "temperature":
            if not _is_number(value) or not rules.temperature_min <= value <= rules.temperature_max:
                bad(
                    f,
                    f"bad temperature {shown(value)}: must lie in [{rules.temperature_min}, {rules.temperature_max}]",
                )
        elif f == "max_tokens":
            if not _is_int(value) or value < 1:
                bad(f, f"token budget {shown(value)} must be a positive integer")
        elif f == "iterations":
            if not _is_int(value) or not rules.iterations_min <= value <= rules.iterations_max:
                bad(
                    f,
                    f"iterations {shown(value)} must be an integer in [{rules.iterations_min}, {rules.iterations_max}]",
                )
        elif f == "early_stop":
            if not isinstance(value, bool):
                bad(f, f"must be true or false, not {shown(value)}")
        elif f == "feedback":
            if value not in FEEDBACK_CHOICES:
                bad(f, f"{shown(value)} is not one of {', '.join(FEEDBACK_CHOICES)}")
        elif f == "time_limit":
            if not _is_number(value) or value <= 0:
                bad(f, f"time limit {shown(value)} must be a positive number of seconds")
        elif f == "strategy":
            if value not in SELECTOR_STRATEGIES:
                bad(f, f"{shown(value)} is not one of {', '.join(SELECTOR_STRATEGIES)}")
    return out


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check(
    nodes: Mapping[int, NodeGene],
    edges: Iterable[tuple[int, int]],
    rules: Rules | None = None,
    names: Mapping[int, str] | None = None,
    source: str | None = None,
) -> None:
    """Raises ``GenomeError`` listing every problem, if there is any."""
    problems = find_problems(nodes, edges, rules, names)
    if problems:
        raise GenomeError(problems, source)
