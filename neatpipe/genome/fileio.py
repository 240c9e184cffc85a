"""Graph files: a genome as YAML (the human-editable format), JSON, GraphML and networkx.

Every format goes through one plain-data form (``genome_to_data`` / ``genome_from_data``), so
there is one parser and one set of error messages: an error names the file and the node, edge or
field that is wrong. Writes are atomic: the text goes to a temporary file in the target's folder,
which then replaces the target, so a crash never leaves a half-written file under the real name
(:mod:`neatpipe.io`, whose writers and strict YAML loader this module re-exports).

The format is documented in ``docs/genome-format.md``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from neatpipe.errors import shown
from neatpipe.genome.errors import GenomeError, Issue
from neatpipe.genome.genes import (
    ATTRIBUTE_FIELDS,
    OUTPUT,
    PIN_NAMES,
    PROBLEM,
    ROLE_FIELDS,
    ConnectionGene,
    NodeGene,
    Role,
)
from neatpipe.genome.genome import PipelineGenome
from neatpipe.genome.graphs import topological_order
from neatpipe.genome.prompts import prompt_pool
from neatpipe.genome.render import genome_to_dot, render_image
from neatpipe.genome.settings import GenomeSettings
from neatpipe.genome.structure import Rules, default_name, find_problems
from neatpipe.io import (
    FileError,
    atomic_write_text,
    load_yaml,
    read_text,
)

FORMAT = "neatpipe-genome/1"
_TOP_FIELDS = ("format", "description", "key", "fitness", "nodes", "edges")
_PIN_BY_NAME = {name: key for key, name in PIN_NAMES.items()}
#: What a hand-written file may leave out, per field (``model`` never has a default).
_DEFAULTS = GenomeSettings()


@dataclass(frozen=True)
class LoadedGenome:
    """A genome read from a file, with the node ids the file used (for messages and rewrites)."""

    genome: PipelineGenome
    names: Mapping[int, str]
    source: str


# -- plain data ---------------------------------------------------------------------------------


def _prompt_out(role: Role, index: int) -> str | int:
    pool = prompt_pool(role.value)
    return pool[index].name if 0 <= index < len(pool) else index


def genome_to_data(genome: PipelineGenome, names: Mapping[int, str] | None = None) -> dict[str, Any]:
    """The genome as plain data (the YAML/JSON document): every field written, nodes in
    topological order, prompts by variant name, keys and innovation numbers kept."""
    names = dict(names or {})
    ids = {PROBLEM: "problem", OUTPUT: "output"}
    for key, gene in genome.nodes.items():
        ids[key] = names.get(key) or default_name(gene)
    order = topological_order(genome.nodes, genome.connections)
    nodes: dict[str, Any] = {}
    for key in order:
        gene = genome.nodes[key]
        entry: dict[str, Any] = {"role": gene.role.value, "key": key}
        for f, value in gene.attributes().items():
            entry[f] = _prompt_out(gene.role, value) if f == "prompt" and isinstance(value, int) else value
        nodes[ids[key]] = entry
    rank = {k: i for i, k in enumerate([PROBLEM, *order, OUTPUT])}
    edges = [
        [ids[c.source], ids[c.target], c.innovation]
        for c in sorted(
            genome.connections.values(), key=lambda c: (rank.get(c.source, 0), rank.get(c.target, 0))
        )
    ]
    data: dict[str, Any] = {"format": FORMAT}
    if genome.description:
        data["description"] = genome.description
    if genome.key is not None:
        data["key"] = genome.key
    if genome.fitness is not None:
        data["fitness"] = genome.fitness
    data["nodes"] = nodes
    data["edges"] = edges
    return data


def genome_from_data(
    data: Any, source: str = "<data>", models: Sequence[str] | None = None, rules: Rules | None = None
) -> LoadedGenome:
    """Parses and validates a genome document; raises ``GenomeError`` naming ``source`` and every
    node, edge or field that is wrong. ``models`` (a pool) makes unknown model names errors;
    ``rules`` replaces the default checks (e.g. ``Rules.from_settings`` of an experiment)."""
    problems: list[Issue] = []

    def fail(where: str, message: str) -> GenomeError:
        return GenomeError([*problems, Issue(where, message)], source)

    if not isinstance(data, Mapping):
        raise fail("", "a genome file must be a mapping with 'nodes' and 'edges'")
    for name in data:
        if name not in _TOP_FIELDS:
            problems.append(Issue(f"field '{name}'", f"unknown field (known: {', '.join(_TOP_FIELDS)})"))
    fmt = data.get("format", FORMAT)
    if fmt != FORMAT:
        problems.append(
            Issue("field 'format'", f"unsupported format {shown(fmt)} (this version reads {FORMAT})")
        )
    raw_nodes = data.get("nodes")
    raw_edges = data.get("edges")
    if not isinstance(raw_nodes, Mapping) or not raw_nodes:
        raise fail("field 'nodes'", "missing or empty: a mapping from node id to its role and attributes")
    if not isinstance(raw_edges, list):
        raise fail("field 'edges'", "missing: a list of [from, to] or [from, to, innovation] items")

    # Node ids and keys: explicit keys first, then the next free integers in file order.
    explicit: dict[str, int] = {}
    for node_id, entry in raw_nodes.items():
        node_id = str(node_id)
        if node_id in _PIN_BY_NAME:
            problems.append(Issue(f"node '{node_id}'", "this id is reserved for a pin; pick another id"))
            continue
        if isinstance(entry, Mapping) and "key" in entry:
            key = entry["key"]
            if not isinstance(key, int) or isinstance(key, bool) or key < 1:
                problems.append(
                    Issue(f"node '{node_id}' field 'key'", f"must be a positive integer, not {shown(key)}")
                )
            elif key in explicit.values():
                other = next(n for n, k in explicit.items() if k == key)
                problems.append(
                    Issue(f"node '{node_id}' field 'key'", f"key {key} is also node '{other}'s key")
                )
            else:
                explicit[node_id] = key
    keys: dict[str, int] = dict(explicit)
    next_key = max(explicit.values(), default=0) + 1
    for node_id in raw_nodes:
        node_id = str(node_id)
        if node_id not in keys and node_id not in _PIN_BY_NAME:
            keys[node_id] = next_key
            next_key += 1

    genes: list[NodeGene] = []
    for node_id, entry in raw_nodes.items():
        node_id = str(node_id)
        if node_id not in keys:
            continue
        gene = _parse_node(node_id, keys[node_id], entry, problems)
        if gene is not None:
            genes.append(gene)

    ids = {**_PIN_BY_NAME, **keys}
    edges: list[tuple[tuple[int, int], int | None, str]] = []
    for i, item in enumerate(raw_edges):
        parsed = _parse_edge(i, item, ids, problems)
        if parsed is not None:
            edges.append(parsed)
    seen: dict[tuple[int, int], str] = {}
    used_innovations: dict[int, str] = {}
    for key, innovation, where in edges:
        if key in seen:
            problems.append(Issue(where, f"duplicate of {seen[key]}"))
        seen.setdefault(key, where)
        if innovation is not None:
            if innovation in used_innovations:
                problems.append(
                    Issue(where, f"innovation {innovation} is also {used_innovations[innovation]}'s")
                )
            used_innovations.setdefault(innovation, where)
    next_innovation = max([next_key - 1, *used_innovations]) + 1
    connections: dict[tuple[int, int], ConnectionGene] = {}
    for key, innovation, _ in edges:
        if key in connections:
            continue
        if innovation is None or used_innovations.get(innovation) != seen[key]:
            innovation, next_innovation = next_innovation, next_innovation + 1
        connections[key] = ConnectionGene(key, innovation)

    genome_key = data.get("key")
    if genome_key is not None and (not isinstance(genome_key, int) or isinstance(genome_key, bool)):
        problems.append(Issue("field 'key'", f"a genome key must be an integer, not {shown(genome_key)}"))
        genome_key = None
    fitness = data.get("fitness")
    if fitness is not None and (not isinstance(fitness, (int, float)) or isinstance(fitness, bool)):
        problems.append(Issue("field 'fitness'", f"must be a number, not {shown(fitness)}"))
        fitness = None
    description = data.get("description") or ""
    if not isinstance(description, str):
        problems.append(Issue("field 'description'", "must be text"))
        description = ""
    names = {k: n for n, k in keys.items()}
    if rules is None:
        rules = Rules(models=tuple(models) if models is not None else None)
    elif models is not None:
        rules = replace(rules, models=tuple(models))
    node_map = {g.key: g for g in genes}
    if len(node_map) == len(keys):  # structure checks need every node parsed
        problems.extend(find_problems(node_map, connections, rules, names))
    if problems:
        raise GenomeError(problems, source)
    genome = PipelineGenome.from_genes(
        genome_key, genes, connections.values(), float(fitness) if fitness is not None else None, description
    )
    return LoadedGenome(genome, names, source)


def _parse_node(node_id: str, key: int, entry: Any, problems: list[Issue]) -> NodeGene | None:
    where = f"node '{node_id}'"
    if not isinstance(entry, Mapping):
        problems.append(Issue(where, "must be a mapping with a 'role' and the role's attributes"))
        return None
    role_name = entry.get("role")
    try:
        role = Role(role_name)
    except ValueError:
        problems.append(
            Issue(
                f"{where} field 'role'",
                f"unknown role {shown(role_name)} (roles: {', '.join(r.value for r in Role)})"
                if role_name is not None
                else "missing (roles: " + ", ".join(r.value for r in Role) + ")",
            )
        )
        return None
    wanted = ROLE_FIELDS[role]
    ok = True
    for name in entry:
        if name in ("role", "key"):
            continue
        if name not in ATTRIBUTE_FIELDS:
            problems.append(
                Issue(f"{where} field '{name}'", f"unknown field (a {role.value} has: {', '.join(wanted)})")
            )
            ok = False
        elif name not in wanted:
            problems.append(
                Issue(
                    f"{where} field '{name}'",
                    f"does not apply to a {role.value} (a {role.value} has: {', '.join(wanted)})",
                )
            )
            ok = False
    values: dict[str, Any] = {}
    for name in wanted:
        value = entry.get(name)
        if value is None:
            value = _default(role, name)
            if value is None:
                problems.append(
                    Issue(f"{where} field '{name}'", f"missing (a {role.value} needs {', '.join(wanted)})")
                )
                ok = False
                continue
        if name == "prompt" and isinstance(value, str):
            names = [v.name for v in prompt_pool(role.value)]
            if value not in names:
                problems.append(
                    Issue(
                        f"{where} field 'prompt'",
                        f"unknown {role.value} prompt {shown(value)} (known: {', '.join(names)})",
                    )
                )
                ok = False
                continue
            value = names.index(value)
        if name in ("temperature", "time_limit") and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if name in ("temperature", "time_limit") and isinstance(value, float) and not math.isfinite(value):
            problems.append(Issue(f"{where} field '{name}'", f"must be a finite number, not {shown(value)}"))
            ok = False
            continue
        values[name] = value
    return NodeGene(key=key, role=role, **values) if ok else None


def _default(role: Role, name: str) -> Any:
    """What a hand-written file may leave out; ``None`` where a value is required."""
    if name == "prompt":
        return 0
    if name == "temperature":
        return _DEFAULTS.temperature_init
    if name == "max_tokens":
        return _DEFAULTS.max_tokens(role)
    if name == "early_stop":
        return _DEFAULTS.early_stop_init
    if name == "feedback":
        return _DEFAULTS.executor_feedback
    if name == "time_limit":
        return _DEFAULTS.executor_time_limit
    if name == "strategy":
        return _DEFAULTS.selector_strategy
    return None  # model, iterations


def _parse_edge(
    i: int, item: Any, ids: Mapping[str, int], problems: list[Issue]
) -> tuple[tuple[int, int], int | None, str] | None:
    if isinstance(item, Mapping):
        unknown = sorted(set(item) - {"from", "to", "innovation"})
        if unknown:
            problems.append(
                Issue(
                    f"edges[{i}]",
                    f"unknown field(s) {', '.join(map(str, unknown))} (an edge has from, to, innovation)",
                )
            )
            return None
        parts = [item.get("from"), item.get("to"), item.get("innovation")]
    elif isinstance(item, list) and len(item) in (2, 3):
        parts = [*item, None][:3]
    else:
        problems.append(
            Issue(f"edges[{i}]", f"an edge is [from, to] or [from, to, innovation], not {shown(item)}")
        )
        return None
    source, target, innovation = str(parts[0]), str(parts[1]), parts[2]
    where = f"edge {source} -> {target}"
    bad = [n for n in (source, target) if n not in ids]
    if bad:
        problems.append(Issue(where, f"refers to node '{bad[0]}', which is not defined under 'nodes'"))
        return None
    if innovation is not None and (
        not isinstance(innovation, int) or isinstance(innovation, bool) or innovation < 1
    ):
        problems.append(Issue(where, f"innovation must be a positive integer, not {shown(innovation)}"))
        return None
    return (ids[source], ids[target]), innovation, where


# -- YAML and JSON ------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    pass


def _represent_list(dumper: yaml.SafeDumper, value: list) -> yaml.Node:
    # Edges ([from, to, innovation]) on one line each; everything else in block style.
    flow = all(not isinstance(v, (list, dict)) for v in value) and len(value) <= 3
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def genome_to_yaml(genome: PipelineGenome, names: Mapping[int, str] | None = None) -> str:
    header = "# neatpipe pipeline genome (format: docs/genome-format.md)\n"
    return header + yaml.dump(
        genome_to_data(genome, names),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )


def genome_to_json(genome: PipelineGenome, names: Mapping[int, str] | None = None) -> str:
    return json.dumps(genome_to_data(genome, names), indent=2) + "\n"


def genome_from_yaml(
    text: str, source: str = "<yaml>", models: Sequence[str] | None = None, rules: Rules | None = None
) -> LoadedGenome:
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise GenomeError(f"not valid YAML: {exc}", source) from None
    return genome_from_data(data, source, models, rules)


def genome_from_json(
    text: str, source: str = "<json>", models: Sequence[str] | None = None, rules: Rules | None = None
) -> LoadedGenome:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise ValueError(f"duplicate key {k!r}")
            out[k] = v
        return out

    try:
        data = json.loads(text, object_pairs_hook=no_duplicates)
    except ValueError as exc:
        raise GenomeError(f"not valid JSON: {exc}", source) from None
    return genome_from_data(data, source, models, rules)


# -- networkx and GraphML -----------------------------------------------------------------------


def to_networkx(genome: PipelineGenome, names: Mapping[int, str] | None = None):
    """A ``networkx.DiGraph`` of the pipeline: nodes by file id (pins ``problem`` and ``output``
    included, role ``problem``/``output``), each with ``role``, ``key`` and its role's attributes
    (``prompt`` as the index, ``prompt_name`` for reading); edges with ``innovation``; graph
    attributes ``format``, ``description``, ``genome_key`` and ``fitness`` where set."""
    import networkx as nx

    data = genome_to_data(genome, names)
    g = nx.DiGraph()
    g.graph["format"] = FORMAT
    for name, graph_key in (("description", "description"), ("key", "genome_key"), ("fitness", "fitness")):
        if name in data:
            g.graph[graph_key] = data[name]
    g.add_node("problem", role="problem")
    for node_id, entry in data["nodes"].items():
        attrs = dict(entry)
        key = attrs["key"]
        if "prompt" in attrs:
            attrs["prompt"] = genome.nodes[key].prompt
            attrs["prompt_name"] = str(entry["prompt"])
        g.add_node(node_id, **attrs)
    g.add_node("output", role="output")
    for source, target, innovation in data["edges"]:
        g.add_edge(source, target, innovation=innovation)
    return g


def from_networkx(
    graph, source: str = "<networkx>", models: Sequence[str] | None = None, rules: Rules | None = None
) -> LoadedGenome:
    """The inverse of ``to_networkx``; checked like any file (``prompt_name`` is display only)."""
    nodes: dict[str, Any] = {}
    for node_id, attrs in graph.nodes(data=True):
        if str(node_id) in _PIN_BY_NAME and attrs.get("role") in (None, str(node_id)):
            continue
        entry = {k: v for k, v in attrs.items() if k != "prompt_name"}
        nodes[str(node_id)] = entry
    edges = []
    for s, t, attrs in graph.edges(data=True):
        edges.append(
            [str(s), str(t), attrs.get("innovation")]
            if attrs.get("innovation") is not None
            else [str(s), str(t)]
        )
    data: dict[str, Any] = {"format": graph.graph.get("format", FORMAT), "nodes": nodes, "edges": edges}
    for graph_key, name in (("description", "description"), ("genome_key", "key"), ("fitness", "fitness")):
        if graph.graph.get(graph_key) is not None:
            data[name] = graph.graph[graph_key]
    return genome_from_data(data, source, models, rules)


def genome_to_graphml(genome: PipelineGenome, names: Mapping[int, str] | None = None) -> str:
    import networkx as nx

    return "\n".join(nx.generate_graphml(to_networkx(genome, names))) + "\n"


def genome_from_graphml(
    text: str, source: str = "<graphml>", models: Sequence[str] | None = None, rules: Rules | None = None
) -> LoadedGenome:
    import networkx as nx

    try:
        graph = nx.parse_graphml(text)
    except Exception as exc:  # networkx raises several exception types for bad GraphML
        raise GenomeError(f"not valid GraphML: {exc}", source) from None
    if not graph.is_directed():
        raise GenomeError("a pipeline GraphML graph must be directed", source)
    return from_networkx(graph, source, models, rules)


# -- files --------------------------------------------------------------------------------------

READ_FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".graphml": "graphml"}
WRITE_FORMATS = ("yaml", "json", "graphml", "dot", "svg", "png")
_EXTENSIONS = {
    "yaml": ".yaml",
    "json": ".json",
    "graphml": ".graphml",
    "dot": ".dot",
    "svg": ".svg",
    "png": ".png",
}


def read_genome(
    path: str | os.PathLike[str], models: Sequence[str] | None = None, rules: Rules | None = None
) -> LoadedGenome:
    """Reads a YAML, JSON or GraphML genome file (by extension), with its node ids."""
    p = Path(path)
    fmt = READ_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise GenomeError(
            f"cannot read a genome from a {p.suffix or 'extensionless'} file "
            f"(readable: {', '.join(READ_FORMATS)})",
            str(p),
        )
    try:
        text = read_text(p)
    except FileError as exc:
        raise GenomeError(exc.reason, str(p)) from None
    reader = {"yaml": genome_from_yaml, "json": genome_from_json, "graphml": genome_from_graphml}[fmt]
    return reader(text, str(p), models, rules)


def load_genome(
    path: str | os.PathLike[str], models: Sequence[str] | None = None, rules: Rules | None = None
) -> PipelineGenome:
    """The genome in a YAML, JSON or GraphML file; ``GenomeError`` names the file and the problem."""
    return read_genome(path, models, rules).genome


def format_for(path: str | os.PathLike[str]) -> str:
    suffix = Path(path).suffix.lower()
    for fmt, ext in _EXTENSIONS.items():
        if suffix == ext or (fmt == "yaml" and suffix == ".yml") or (fmt == "dot" and suffix == ".gv"):
            return fmt
    raise ValueError(f"no genome format for extension {suffix!r} (formats: {', '.join(WRITE_FORMATS)})")


def save_genome(
    genome: PipelineGenome,
    path: str | os.PathLike[str],
    fmt: str | None = None,
    names: Mapping[int, str] | None = None,
) -> Path:
    """Writes ``genome`` atomically as ``fmt`` (default: from the extension): yaml, json, graphml,
    dot, or an svg/png picture drawn with matplotlib (no Graphviz needed)."""
    fmt = fmt or format_for(path)
    if fmt not in WRITE_FORMATS:
        raise ValueError(f"unknown format {shown(fmt)} (formats: {', '.join(WRITE_FORMATS)})")
    target = Path(path)
    if fmt in ("svg", "png"):
        render_image(genome, target, fmt, names)
        return target
    if fmt == "dot":
        text = genome_to_dot(genome, names)
    else:
        text = {"yaml": genome_to_yaml, "json": genome_to_json, "graphml": genome_to_graphml}[fmt](
            genome, names
        )
    atomic_write_text(target, text)
    return target
