"""Structural edits of a pipeline graph, and the repair that makes any typed edge set valid again.

Mutations and crossover work on a ``Draft`` (mutable dicts of node genes and edge innovations)
and hand the result back to the genome. Each edit keeps the graph valid by construction; ``repair``
is what makes a crossover child (whose edges come from two parents) or a removal valid, by
dropping what cannot be kept and reconnecting what can, always preferring older genes (lower
historical markings), which both parents are more likely to share.

New keys and innovation numbers come from an ``Alloc``: a function with the signature of
neat-python's ``InnovationTracker.get_innovation_number(a, b, kind)``, so the same structural
edit in two genomes of one generation gets the same numbers.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable
from typing import Any

from neatpipe.genome.genes import CANDIDATE_ROLES, OUTPUT, PROBLEM, NodeGene, Role
from neatpipe.genome.graphs import find_cycle, reach
from neatpipe.genome.structure import Rules, count_roles, edge_allowed

Alloc = Callable[[Hashable, Hashable, str], int]


class Draft:
    """A genome's structure while it is being edited: node genes by key, edge innovation by edge."""

    def __init__(self, nodes: dict[int, NodeGene], edges: dict[tuple[int, int], int]) -> None:
        self.nodes = dict(nodes)
        self.edges = dict(edges)

    def inputs(self, key: int) -> list[int]:
        """Sources feeding ``key``, oldest edge first."""
        return [s for (s, t), _ in sorted(self.edges.items(), key=lambda kv: kv[1]) if t == key]

    def outputs(self, key: int) -> list[int]:
        """Targets fed by ``key``, oldest edge first."""
        return [t for (s, t), _ in sorted(self.edges.items(), key=lambda kv: kv[1]) if s == key]

    def of_role(self, role: Role) -> list[int]:
        return sorted(k for k, g in self.nodes.items() if g.role == role)

    def candidates(self) -> list[int]:
        return sorted(k for k, g in self.nodes.items() if g.role in CANDIDATE_ROLES)

    def role(self, key: int) -> Role | None:
        gene = self.nodes.get(key)
        return gene.role if gene else None

    def connect(self, source: int, target: int, alloc: Alloc) -> None:
        if (source, target) not in self.edges:
            self.edges[(source, target)] = alloc(source, target, "edge")

    def disconnect(self, source: int, target: int) -> None:
        self.edges.pop((source, target), None)

    def remove_node(self, key: int) -> None:
        self.nodes.pop(key, None)
        for e in [e for e in self.edges if key in e]:
            del self.edges[e]

    def stage(self, refiner: int) -> tuple[int | None, int | None]:
        """The (executor, analyzer) feeding a refiner, ``None`` where missing."""
        ins = self.inputs(refiner)
        execs = [k for k in ins if self.role(k) == Role.EXECUTOR]
        analyzers = [k for k in ins if self.role(k) == Role.ANALYZER]
        return (execs[0] if execs else None, analyzers[0] if analyzers else None)


# -- edits that keep a valid graph valid ------------------------------------------------------


def insert_stage(d: Draft, producer: int, executor: NodeGene, refiner: NodeGene, alloc: Alloc) -> None:
    """Puts a refine stage after ``producer``: producer -> executor -> refiner, and the refiner
    takes over everything the producer fed."""
    consumers = d.outputs(producer)
    for c in consumers:
        d.disconnect(producer, c)
    d.nodes[executor.key] = executor
    d.nodes[refiner.key] = refiner
    d.connect(producer, executor.key, alloc)
    d.connect(executor.key, refiner.key, alloc)
    for c in consumers:
        d.connect(refiner.key, c, alloc)


def add_analyzer(d: Draft, refiner: int, analyzer: NodeGene, alloc: Alloc) -> None:
    """executor -> analyzer -> refiner inside the refiner's stage."""
    executor, existing = d.stage(refiner)
    assert executor is not None and existing is None, f"stage of refiner {refiner} cannot take an analyzer"
    d.nodes[analyzer.key] = analyzer
    d.connect(executor, analyzer.key, alloc)
    d.connect(analyzer.key, refiner, alloc)


def add_parallel_generator(
    d: Draft, target: int, generator: NodeGene, selector: NodeGene | None, alloc: Alloc
) -> None:
    """A new generator in parallel with ``target``: into ``target`` if it is a selector, otherwise
    into a new ``selector`` inserted after ``target`` (best-of-n)."""
    d.nodes[generator.key] = generator
    d.connect(PROBLEM, generator.key, alloc)
    if d.role(target) == Role.SELECTOR:
        d.connect(generator.key, target, alloc)
        return
    assert selector is not None
    consumers = d.outputs(target)
    for c in consumers:
        d.disconnect(target, c)
    d.nodes[selector.key] = selector
    d.connect(target, selector.key, alloc)
    d.connect(generator.key, selector.key, alloc)
    for c in consumers:
        d.connect(selector.key, c, alloc)


def remove_stage(d: Draft, refiner: int, alloc: Alloc) -> None:
    """Drops a whole refine stage; the candidate the stage refined takes over what it fed."""
    executor, analyzer = d.stage(refiner)
    producer = d.inputs(executor)[0] if executor is not None and d.inputs(executor) else None
    consumers = d.outputs(refiner)
    for k in (refiner, executor, analyzer):
        if k is not None:
            d.remove_node(k)
    if producer is not None:
        for c in consumers:
            d.connect(producer, c, alloc)
    repair(d, alloc)


def remove_unit(d: Draft, key: int, alloc: Alloc) -> None:
    """Removes a node and what cannot live without it, then repairs.

    An analyzer goes alone; an executor or refiner takes its stage with it; a selector keeps its
    oldest input in its place; a generator just goes (its selector collapses if one input is left).
    """
    role = d.role(key)
    if role == Role.ANALYZER:
        d.remove_node(key)
    elif role == Role.REFINER:
        remove_stage(d, key, alloc)
        return
    elif role == Role.EXECUTOR:
        refiners = [t for t in d.outputs(key) if d.role(t) == Role.REFINER]
        if refiners:
            remove_stage(d, refiners[0], alloc)
            return
        d.remove_node(key)
    elif role == Role.SELECTOR:
        ins, outs = d.inputs(key), d.outputs(key)
        d.remove_node(key)
        if ins:
            for c in outs:
                d.connect(ins[0], c, alloc)
    else:
        d.remove_node(key)
    repair(d, alloc)


def removable(d: Draft) -> list[int]:
    """Nodes whose removal leaves a pipeline: anything but the last generator."""
    generators = d.of_role(Role.GENERATOR)
    return sorted(k for k in d.nodes if not (d.role(k) == Role.GENERATOR and len(generators) < 2))


# -- repair -------------------------------------------------------------------------------------


def repair(d: Draft, alloc: Alloc, max_rounds: int = 100) -> None:
    """Makes the draft's wiring valid, round by round, until nothing changes.

    Size limits are not this function's concern (see ``enforce_limits``); a draft with no
    generator left cannot be repaired and stays invalid, which callers check for.
    """
    for _ in range(max_rounds):
        if not _repair_round(d, alloc):
            return


def _keep_oldest(d: Draft, edges: list[tuple[int, int]]) -> bool:
    """Keeps the oldest of ``edges`` and drops the rest; True if any was dropped."""
    if len(edges) < 2:
        return False
    for e in sorted(edges, key=lambda e: d.edges[e])[1:]:
        del d.edges[e]
    return True


def _repair_round(d: Draft, alloc: Alloc) -> bool:
    # 1. Edges with a missing end or an illegal type.
    bad = [e for e in d.edges if not edge_allowed(e[0], e[1], d.nodes)]
    for e in bad:
        del d.edges[e]
    if bad:
        return True

    # 2. Cycles: drop the newest edge of one cycle per round.
    cycle = find_cycle(d.edges)
    if cycle:
        ring = list(zip(cycle, cycle[1:] + cycle[:1], strict=True))
        del d.edges[max(ring, key=lambda e: d.edges[e])]
        return True

    # 3. Degrees, role by role.
    for key in sorted(d.nodes):
        gene = d.nodes[key]
        ins, outs = d.inputs(key), d.outputs(key)
        if gene.role == Role.GENERATOR:
            if PROBLEM not in ins:
                d.connect(PROBLEM, key, alloc)
                return True
        elif gene.role == Role.EXECUTOR:
            refiners = [t for t in outs if d.role(t) == Role.REFINER]
            analyzers = [t for t in outs if d.role(t) == Role.ANALYZER]
            if not ins or not refiners:
                d.remove_node(key)
                return True
            if (
                _keep_oldest(d, [(s, key) for s in ins])
                | _keep_oldest(d, [(key, t) for t in refiners])
                | _keep_oldest(d, [(key, t) for t in analyzers])
            ):
                return True
        elif gene.role == Role.ANALYZER:
            if not ins or not outs:
                d.remove_node(key)
                return True
            if _keep_oldest(d, [(s, key) for s in ins]) | _keep_oldest(d, [(key, t) for t in outs]):
                return True
        elif gene.role == Role.REFINER:
            execs = [s for s in ins if d.role(s) == Role.EXECUTOR]
            analyzers = [s for s in ins if d.role(s) == Role.ANALYZER]
            if not execs:
                d.remove_node(key)
                return True
            if _keep_oldest(d, [(s, key) for s in execs]) | _keep_oldest(d, [(s, key) for s in analyzers]):
                return True
            executor = execs[0]
            for a in analyzers:
                if d.inputs(a) != [executor]:
                    d.disconnect(a, key)
                    return True
        elif gene.role == Role.SELECTOR:
            if not ins:
                d.remove_node(key)
                return True
            if len(ins) == 1:
                d.remove_node(key)
                for c in outs:
                    d.connect(ins[0], c, alloc)
                return True

    # 4. Exactly one candidate reaches the output.
    finals = d.inputs(OUTPUT)
    if _keep_oldest(d, [(s, OUTPUT) for s in finals]):
        return True
    if not finals:
        sink = _best_sink(d)
        if sink is not None:
            d.connect(sink, OUTPUT, alloc)
            return True

    # 5. Nodes off every problem -> output path.
    stray = set(d.nodes) - (reach(PROBLEM, d.edges) & reach(OUTPUT, d.edges, forward=False))
    for k in stray:
        d.remove_node(k)
    return bool(stray)


def _best_sink(d: Draft) -> int | None:
    """The candidate to wire to an unconnected output: one reachable from the problem that feeds
    nothing, with the most nodes upstream (keeping the most structure), newest key on ties."""
    reachable = reach(PROBLEM, d.edges)
    sinks = [k for k in d.candidates() if k in reachable and not d.outputs(k)]
    if not sinks:
        return None
    return max(sinks, key=lambda k: (len(reach(k, d.edges, forward=False)), k))


def enforce_limits(d: Draft, rules: Rules, alloc: Alloc, rng: Any = random) -> None:
    """Removes analyzers, stages and generators (in that order of preference, at random among
    them) until the draft fits ``max_nodes``, ``max_stages`` and ``max_generators``.

    ``rng`` is anything with ``choice`` (the ``random`` module by default, which neat-python seeds
    and checkpoints)."""
    for _ in range(len(d.nodes) + 1):
        counts = count_roles(d.nodes)
        too_many_stages = rules.max_stages is not None and counts[Role.REFINER] > rules.max_stages
        too_many_gens = rules.max_generators is not None and counts[Role.GENERATOR] > rules.max_generators
        too_many_nodes = rules.max_nodes is not None and len(d.nodes) > rules.max_nodes
        if too_many_stages:
            remove_unit(d, rng.choice(d.of_role(Role.REFINER)), alloc)
        elif too_many_gens:
            remove_unit(d, rng.choice(d.of_role(Role.GENERATOR)), alloc)
        elif too_many_nodes:
            for role in (Role.ANALYZER, Role.REFINER, Role.GENERATOR):
                keys = d.of_role(role)
                if keys and (role != Role.GENERATOR or len(keys) > 1):
                    remove_unit(d, rng.choice(keys), alloc)
                    break
            else:
                return
        else:
            return
