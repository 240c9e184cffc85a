"""What a pipeline does, independent of how its genes are numbered: the behavioural hash, and the
complexity measures a fitness penalty uses.

Two genomes describe the same pipeline when a renaming of node keys maps one onto the other with
the same roles, attributes and wiring. Keys and innovation numbers are history, not behaviour, so
the hash ignores them; it is what evaluation caching keys on.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from neatpipe.genome.genes import OUTPUT, PROBLEM, NodeGene, Role

#: Above this many orderings of look-alike nodes, the hash stops trying them all and uses the
#: refined labels alone (still equal for equal pipelines; a clash of two different pipelines then
#: needs a contrived graph with many identical, differently wired nodes).
MAX_TIE_ORDERINGS = 5040


@dataclass(frozen=True)
class Complexity:
    """Size measures of a pipeline, per problem, for a fitness penalty and for reports.

    ``model_calls`` is the worst case: every generator once, every refine stage all its
    iterations (one refiner call each, plus one analyzer call when the stage has one).
    ``program_runs`` counts the executor's runs and one run per selector input.
    """

    nodes: int
    edges: int
    model_nodes: int
    model_calls: int
    program_runs: int

    def penalty(
        self,
        per_node: float = 0.0,
        per_edge: float = 0.0,
        per_model_node: float = 0.0,
        per_model_call: float = 0.0,
    ) -> float:
        """A weighted sum of the measures: what a fitness function subtracts."""
        return (
            per_node * self.nodes
            + per_edge * self.edges
            + per_model_node * self.model_nodes
            + per_model_call * self.model_calls
        )


def complexity(nodes: Mapping[int, NodeGene], edges: Iterable[tuple[int, int]]) -> Complexity:
    edge_list = list(edges)
    calls = runs = 0
    for key, gene in nodes.items():
        if gene.role == Role.GENERATOR:
            calls += 1
        elif gene.role == Role.REFINER:
            iterations = gene.iterations or 0
            has_analyzer = any(
                t == key and nodes.get(s) is not None and nodes[s].role == Role.ANALYZER for s, t in edge_list
            )
            calls += iterations * (2 if has_analyzer else 1)
            runs += iterations
        elif gene.role == Role.SELECTOR:
            runs += sum(1 for _, t in edge_list if t == key)
    return Complexity(
        nodes=len(nodes),
        edges=len(edge_list),
        model_nodes=sum(1 for g in nodes.values() if g.calls_model),
        model_calls=calls,
        program_runs=runs,
    )


def _label(gene: NodeGene) -> str:
    attrs = gene.attributes()
    for name in ("temperature", "time_limit"):  # 1 and 1.0 are the same setting
        if isinstance(attrs.get(name), int) and not isinstance(attrs.get(name), bool):
            attrs[name] = float(attrs[name])
    return json.dumps([gene.role.value, sorted(attrs.items())], default=repr)


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()[:24]


def canonical_form(nodes: Mapping[int, NodeGene], edges: Iterable[tuple[int, int]]) -> str:
    """A string equal for two genomes exactly when they describe the same pipeline (up to renaming
    node keys), as JSON: node labels in canonical order and the edges between those positions."""
    edge_list = sorted(set(edges))
    keys = [PROBLEM, OUTPUT, *sorted(nodes)]
    base = {PROBLEM: "problem", OUTPUT: "output", **{k: _label(g) for k, g in nodes.items()}}
    preds: dict[int, list[int]] = {k: [] for k in keys}
    succs: dict[int, list[int]] = {k: [] for k in keys}
    for s, t in edge_list:
        if s in preds and t in preds:
            succs[s].append(t)
            preds[t].append(s)

    # Colour refinement: a node's colour absorbs the multisets of its inputs' and outputs' colours
    # until the partition stops splitting. Equal pipelines get equal colours by construction.
    colour = {k: _digest(base[k]) for k in keys}
    for _ in range(len(keys) + 1):
        new = {
            k: _digest(colour[k], sorted(colour[p] for p in preds[k]), sorted(colour[s] for s in succs[k]))
            for k in keys
        }
        if len(set(new.values())) == len(set(colour.values())):
            colour = new
            break
        colour = new

    groups: dict[str, list[int]] = {}
    for k in keys:
        groups.setdefault(colour[k], []).append(k)
    ordered_groups = [groups[c] for c in sorted(groups)]
    orderings = 1
    for g in ordered_groups:
        for n in range(2, len(g) + 1):
            orderings *= n

    def encode(order: list[int]) -> str:
        pos = {k: i for i, k in enumerate(order)}
        wiring = sorted((pos[s], pos[t]) for s, t in edge_list if s in pos and t in pos)
        return json.dumps([[base[k] for k in order], wiring], separators=(",", ":"))

    if orderings > MAX_TIE_ORDERINGS:
        return json.dumps(
            [
                sorted(base[k] for k in keys),
                sorted(colour.values()),
                sorted((colour[s], colour[t]) for s, t in edge_list),
            ],
            separators=(",", ":"),
        )
    best: str | None = None
    for choice in itertools.product(*(itertools.permutations(g) for g in ordered_groups)):
        code = encode([k for group in choice for k in group])
        if best is None or code < best:
            best = code
    assert best is not None
    return best


def behaviour_hash(nodes: Mapping[int, NodeGene], edges: Iterable[tuple[int, int]]) -> str:
    """SHA-256 (hex) of ``canonical_form``: the evaluation cache key of a pipeline."""
    return hashlib.sha256(canonical_form(nodes, edges).encode()).hexdigest()
