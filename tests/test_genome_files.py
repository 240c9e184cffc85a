"""Graph files: baselines, every export format, error messages, atomic writes, networkx."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_genome_kit import BASELINES

from neatpipe.genome import GenomeError, from_networkx, load_genome, read_genome, save_genome, to_networkx
from neatpipe.genome.fileio import genome_from_yaml
from neatpipe.genome.summary import summary
from neatpipe.io import FileError, atomic_write_text

POOL = ["qwen2.5-coder-1.5b", "qwen2.5-coder-3b", "qwen2.5-1.5b", "qwen2.5-3b", "llama3.2-1b", "llama3.2-3b"]
FORMATS = ("yaml", "json", "graphml", "dot", "svg", "png")


@pytest.mark.parametrize("path", BASELINES, ids=lambda p: p.stem)
def test_baseline_validates_shows_and_exports(path: Path, tmp_path: Path) -> None:
    loaded = read_genome(path, models=POOL)
    text = summary(loaded.genome, loaded.names)
    assert "complexity:" in text and "generator" in text
    for fmt in FORMATS:
        out = save_genome(loaded.genome, tmp_path / f"{path.stem}.{fmt}", names=loaded.names)
        data = out.read_bytes()
        assert data, fmt
        if fmt == "png":
            assert data.startswith(b"\x89PNG")
        elif fmt == "svg":
            assert b"<svg" in data[:2000]
        elif fmt == "dot":
            assert data.startswith(b"digraph pipeline {")
        else:
            again = read_genome(out, models=POOL)
            assert again.genome.nodes == loaded.genome.nodes
            assert again.genome.connections == loaded.genome.connections
            assert dict(again.names) == dict(loaded.names)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_baseline_shapes() -> None:
    by_name = {p.stem: load_genome(p) for p in BASELINES}
    roles = {name: sorted(n.role.value for n in g.nodes.values()) for name, g in by_name.items()}
    assert roles["solo"] == ["generator"]
    assert roles["analyzer-stage"] == ["analyzer", "executor", "generator", "refiner"]
    assert roles["best-of-3"] == ["generator"] * 3 + ["selector"]
    refiner = {
        name: next((n for n in g.nodes.values() if n.role.value == "refiner"), None)
        for name, g in by_name.items()
    }
    assert (refiner["self-refine"].iterations, refiner["self-refine"].early_stop) == (3, True)
    assert refiner["self-refine-no-early-stop"].early_stop is False
    cross = by_name["cross-model"]
    gen = next(n for n in cross.nodes.values() if n.role.value == "generator")
    assert (gen.model, refiner["cross-model"].model) == ("qwen2.5-coder-1.5b", "llama3.2-3b")


def test_networkx_round_trip_keeps_every_attribute() -> None:
    loaded = read_genome(BASELINES[0])
    graph = to_networkx(loaded.genome, loaded.names)
    assert {"problem", "output"} <= set(graph.nodes)
    for _, attrs in graph.nodes(data=True):
        if attrs["role"] in ("problem", "output"):
            continue
        gene = loaded.genome.nodes[attrs["key"]]
        assert attrs["role"] == gene.role.value
        for name, value in gene.attributes().items():
            assert attrs[name] == value
    assert all("innovation" in a for _, _, a in graph.edges(data=True))
    back = from_networkx(graph).genome
    assert back.nodes == loaded.genome.nodes and back.connections == loaded.genome.connections


GOOD = """
nodes:
  gen: {role: generator, model: llama3.2-3b, prompt: edge-cases, temperature: 0.2}
  exec: {role: executor}
  fix: {role: refiner, model: llama3.2-3b, prompt: keep-signature, iterations: 2}
edges:
  - [problem, gen]
  - [gen, exec]
  - [exec, fix]
  - [fix, output]
"""

# (name, text replacement applied to GOOD or a whole file, what the message must name)
BAD = [
    (
        "unknown role",
        ("exec: {role: executor}", "exec: {role: tester}"),
        ["node 'exec'", "unknown role 'tester'"],
    ),
    ("missing feed", ("  - [exec, fix]\n", ""), ["node 'fix'", "missing feed"]),
    ("cycle", ("  - [fix, output]\n", "  - [fix, output]\n  - [fix, exec]\n"), ["cycle", "exec"]),
    (
        "two outputs",
        ("  - [fix, output]\n", "  - [fix, output]\n  - [gen, output]\n"),
        ["node 'output'", "exactly one candidate", "gen"],
    ),
    ("bad temperature", ("temperature: 0.2", "temperature: 7.5"), ["node 'gen' field 'temperature'", "7.5"]),
    (
        "temperature not a number",
        ("temperature: 0.2", "temperature: hot"),
        ["node 'gen' field 'temperature'"],
    ),
    (
        "unknown field",
        ("exec: {role: executor}", "exec: {role: executor, colour: red}"),
        ["node 'exec' field 'colour'", "unknown field"],
    ),
    (
        "field of another role",
        ("exec: {role: executor}", "exec: {role: executor, iterations: 2}"),
        ["node 'exec' field 'iterations'", "does not apply"],
    ),
    ("unknown prompt", ("prompt: edge-cases", "prompt: shout"), ["node 'gen' field 'prompt'", "shout"]),
    (
        "missing model",
        ("model: llama3.2-3b, prompt: keep", "prompt: keep"),
        ["node 'fix' field 'model'", "missing"],
    ),
    (
        "undefined node",
        ("  - [fix, output]\n", "  - [fix, output]\n  - [ghost, exec]\n"),
        ["edge ghost -> exec", "ghost"],
    ),
    (
        "illegal edge",
        ("  - [exec, fix]\n", "  - [exec, fix]\n  - [problem, exec]\n"),
        ["edge problem -> exec", "cannot feed"],
    ),
    ("top-level typo", ("nodes:", "nodez: {}\nnodes:"), ["field 'nodez'"]),
    (
        "duplicate node id",
        ("  exec: {role: executor}\n", "  exec: {role: executor}\n  exec: {role: executor}\n"),
        ["duplicate key 'exec'"],
    ),
    ("iterations out of range", ("iterations: 2", "iterations: 0"), ["node 'fix' field 'iterations'"]),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_loading_a_mistake_names_file_and_place(case, tmp_path: Path) -> None:
    _, (old, new), expected = case
    assert old in GOOD
    path = tmp_path / "broken.yaml"
    path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(GenomeError) as info:
        load_genome(path)
    message = str(info.value)
    assert str(path) in message
    for part in expected:
        assert part in message, message


def test_unknown_model_is_an_error_only_with_a_pool(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(GOOD.replace("model: llama3.2-3b, prompt: edge", "model: gpt-99, prompt: edge"))
    load_genome(path)
    with pytest.raises(GenomeError, match="node 'gen' field 'model'.*unknown model 'gpt-99'"):
        load_genome(path, models=POOL)


def test_hand_written_file_gets_defaults_and_keys() -> None:
    g = genome_from_yaml(GOOD).genome
    assert sorted(g.nodes) == [1, 2, 3]
    fix = g.nodes[3]
    assert (fix.max_tokens, fix.early_stop, fix.temperature) == (768, True, 0.2)
    assert g.nodes[2].feedback == "visible"


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "genome.yaml"
    atomic_write_text(target, "old")
    from neatpipe.io import atomic_write_with

    def failing(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise OSError("disk full")

    with pytest.raises(FileError, match="genome.yaml: cannot write: disk full"):
        atomic_write_with(target, failing)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["genome.yaml"]


def test_unreadable_and_unknown_formats(tmp_path: Path) -> None:
    with pytest.raises(GenomeError, match="cannot read"):
        load_genome(tmp_path / "missing.yaml")
    (tmp_path / "g.txt").write_text("x")
    with pytest.raises(GenomeError, match="readable"):
        load_genome(tmp_path / "g.txt")
    (tmp_path / "g.yaml").write_text("nodes: [")
    with pytest.raises(GenomeError, match="not valid YAML"):
        load_genome(tmp_path / "g.yaml")
