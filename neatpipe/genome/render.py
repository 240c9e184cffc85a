"""Pictures of a pipeline: Graphviz DOT text, and SVG/PNG drawn with matplotlib.

The pictures need no system Graphviz: ``layered_layout`` places nodes in columns by their longest
distance from the problem (a pipeline reads left to right) and orders each column by the mean
row of its inputs, which keeps stage chains straight and best-of-n fans tidy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from neatpipe.genome.genes import OUTPUT, PROBLEM, NodeGene, Role
from neatpipe.genome.graphs import topological_order
from neatpipe.genome.prompts import prompt_pool
from neatpipe.genome.structure import default_name
from neatpipe.io import atomic_write_with

if TYPE_CHECKING:  # the genome class only annotates here: what is drawn is its data
    from neatpipe.genome.genome import PipelineGenome

_COLOURS = {
    "problem": "#e8e8e8",
    "output": "#e8e8e8",
    Role.GENERATOR: "#cfe2ff",
    Role.EXECUTOR: "#fff3cd",
    Role.ANALYZER: "#e2d9f3",
    Role.REFINER: "#d1e7dd",
    Role.SELECTOR: "#f8d7da",
}


def node_label_lines(gene: NodeGene, name: str) -> list[str]:
    """The lines a picture shows for a node: its id and role, then its settings."""
    lines = [f"{name} ({gene.role.value})"]
    if gene.calls_model:
        pool = prompt_pool(gene.role.value)
        prompt = (
            pool[gene.prompt].name
            if gene.prompt is not None and 0 <= gene.prompt < len(pool)
            else gene.prompt
        )
        lines.append(f"{gene.model}, {gene.max_tokens} tokens")
        lines.append(f"prompt {prompt}, T={gene.temperature}")
    if gene.role == Role.REFINER:
        lines.append(f"x{gene.iterations}" + (", early stop" if gene.early_stop else ", no early stop"))
    elif gene.role == Role.EXECUTOR:
        lines.append(f"{gene.feedback} tests, {gene.time_limit:g}s")
    elif gene.role == Role.SELECTOR:
        lines.append(str(gene.strategy))
    return lines


def _names(genome: PipelineGenome, names: Mapping[int, str] | None) -> dict[int, str]:
    out = {PROBLEM: "problem", OUTPUT: "output"}
    for k, g in genome.nodes.items():
        out[k] = (names or {}).get(k) or default_name(g)
    return out


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def genome_to_dot(genome: PipelineGenome, names: Mapping[int, str] | None = None) -> str:
    """Graphviz DOT text (left to right, one colour per role); any Graphviz can draw it."""
    ids = _names(genome, names)
    lines = [
        "digraph pipeline {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
    ]
    if genome.description:
        lines.append(f"  label={_quote(genome.description)}; labelloc=t;")
    lines.append(f'  {_quote("problem")} [shape=oval, fillcolor="{_COLOURS["problem"]}"];')
    for key in topological_order(genome.nodes, genome.connections):
        gene = genome.nodes[key]
        label = "\\n".join(
            line.replace("\\", "\\\\").replace('"', '\\"') for line in node_label_lines(gene, ids[key])
        )
        lines.append(
            f'  {_quote(ids[key])} [label="{label}", fillcolor="{_COLOURS[gene.role]}", role={gene.role.value}];'
        )
    lines.append(f'  {_quote("output")} [shape=oval, fillcolor="{_COLOURS["output"]}"];')
    for c in sorted(genome.connections.values(), key=lambda c: c.innovation):
        lines.append(f"  {_quote(ids[c.source])} -> {_quote(ids[c.target])} [innovation={c.innovation}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def layered_layout(genome: PipelineGenome) -> dict[int, tuple[float, float]]:
    """(x, y) per node key, pins included: x is the longest path from the problem, y the row."""
    keys = [PROBLEM, *topological_order(genome.nodes, genome.connections), OUTPUT]
    preds: dict[int, list[int]] = {k: [] for k in keys}
    for s, t in genome.connections:
        preds[t].append(s)
    layer = {PROBLEM: 0}
    for k in keys[1:-1]:
        layer[k] = 1 + max((layer[p] for p in preds[k] if p in layer), default=0)
    layer[OUTPUT] = 1 + max((layer[p] for p in preds[OUTPUT] if p in layer), default=0)
    columns: dict[int, list[int]] = {}
    for k in keys:
        columns.setdefault(layer[k], []).append(k)
    pos: dict[int, tuple[float, float]] = {}
    for x in sorted(columns):
        column = columns[x]
        if x > 0:
            column.sort(
                key=lambda k: (sum(pos[p][1] for p in preds[k] if p in pos) / max(1, len(preds[k])), k)
            )
        height = len(column)
        for row, k in enumerate(column):
            pos[k] = (float(x), (height - 1) / 2.0 - row)
    return pos


def render_image(
    genome: PipelineGenome,
    path: str | os.PathLike[str],
    fmt: str | None = None,
    names: Mapping[int, str] | None = None,
) -> None:
    """Draws the pipeline to an SVG or PNG file with matplotlib (Agg), atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch

    target = Path(path)
    fmt = fmt or target.suffix.lstrip(".").lower()
    if fmt not in ("svg", "png"):
        raise ValueError(f"render_image draws svg or png, not {fmt!r}")
    ids = _names(genome, names)
    pos = layered_layout(genome)
    box_w, box_h, x_gap, y_gap = 2.6, 1.0, 3.4, 1.5
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    width = (max(xs) - min(xs)) * x_gap + box_w + 1.0
    height = (max(ys) - min(ys)) * y_gap + box_h + 1.2
    fig = Figure(figsize=(max(4.0, width * 0.9), max(2.0, height * 0.9)))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(min(xs) * x_gap - box_w / 2 - 0.5, max(xs) * x_gap + box_w / 2 + 0.5)
    ax.set_ylim(min(ys) * y_gap - box_h / 2 - 0.6, max(ys) * y_gap + box_h / 2 + 0.6)
    ax.set_axis_off()
    centre = {k: (x * x_gap, y * y_gap) for k, (x, y) in pos.items()}
    for s, t in genome.connections:
        (x0, y0), (x1, y1) = centre[s], centre[t]
        ax.annotate(
            "",
            xy=(x1 - box_w / 2, y1),
            xytext=(x0 + box_w / 2, y0),
            arrowprops={"arrowstyle": "-|>", "color": "#555555", "lw": 1.2, "shrinkA": 2, "shrinkB": 2},
        )
    for k, (cx, cy) in centre.items():
        if k in (PROBLEM, OUTPUT):
            lines, colour = [ids[k]], _COLOURS[ids[k]]
        else:
            lines, colour = node_label_lines(genome.nodes[k], ids[k]), _COLOURS[genome.nodes[k].role]
        ax.add_patch(
            FancyBboxPatch(
                (cx - box_w / 2, cy - box_h / 2),
                box_w,
                box_h,
                boxstyle="round,pad=0.02,rounding_size=0.15",
                facecolor=colour,
                edgecolor="#333333",
                linewidth=1.0,
            )
        )
        ax.text(cx, cy, "\n".join(lines), ha="center", va="center", fontsize=7, family="DejaVu Sans")
    if genome.description:
        fig.suptitle(genome.description, fontsize=8)
    atomic_write_with(target, lambda tmp: fig.savefig(tmp, format=fmt, dpi=110))
