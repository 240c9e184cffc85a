"""A readable text summary of a pipeline: what ``neatpipe show`` prints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from neatpipe.genome.genes import OUTPUT, PROBLEM, Role
from neatpipe.genome.graphs import topological_order
from neatpipe.genome.render import node_label_lines
from neatpipe.genome.structure import default_name

if TYPE_CHECKING:  # the genome class only annotates here: what is summarised is its data
    from neatpipe.genome.genome import PipelineGenome


def summary(genome: PipelineGenome, names: Mapping[int, str] | None = None) -> str:
    """Roles and counts, each node's settings, the wiring (stage by stage), and complexity."""
    ids = {PROBLEM: "problem", OUTPUT: "output"}
    ids.update({k: (names or {}).get(k) or default_name(g) for k, g in genome.nodes.items()})
    roles = genome.roles()
    c = genome.complexity()
    out = []
    if genome.description:
        out.append(genome.description)
    head = f"pipeline genome {genome.key}" if genome.key is not None else "pipeline genome"
    if genome.fitness is not None:
        head += f" (fitness {genome.fitness:g})"
    out.append(head)
    out.append("roles: " + ", ".join(f"{n} {r.value}{'s' if n != 1 else ''}" for r, n in roles.items() if n))
    out.append("nodes:")
    width = max(len(ids[k]) for k in genome.nodes) if genome.nodes else 0
    try:
        order = topological_order(genome.nodes, genome.connections)
    except ValueError:
        order = sorted(genome.nodes)
    for key in order:
        lines = node_label_lines(genome.nodes[key], ids[key])
        out.append(f"  {ids[key].ljust(width)}  {genome.nodes[key].role.value:<9}  " + "; ".join(lines[1:]))
    out.append("wiring:")
    for key in [PROBLEM, *order]:
        targets = sorted((t for s, t in genome.connections if s == key), key=lambda t: ids[t])
        if targets:
            out.append(f"  {ids[key]} -> {', '.join(ids[t] for t in targets)}")
    stages = [k for k in order if genome.nodes[k].role == Role.REFINER]
    for r in stages:
        ins = [s for s, t in genome.connections if t == r]
        analyzer = [s for s in ins if genome.nodes.get(s) and genome.nodes[s].role == Role.ANALYZER]
        gene = genome.nodes[r]
        out.append(
            f"  stage {ids[r]}: up to {gene.iterations} iteration{'s' if gene.iterations != 1 else ''}, "
            f"{'early stop' if gene.early_stop else 'no early stop'}"
            + (f", analyzer {ids[analyzer[0]]}" if analyzer else "")
        )
    out.append(
        f"complexity: {c.nodes} nodes, {c.edges} edges, {c.model_nodes} model-calling nodes, "
        f"worst case {c.model_calls} model calls and {c.program_runs} program runs per problem"
    )
    out.append(f"behaviour hash: {genome.behaviour_hash()[:16]}")
    return "\n".join(out)
