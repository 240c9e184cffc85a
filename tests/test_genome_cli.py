"""``neatpipe validate | show | export | import-paper``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from test_genome_kit import BASELINES, REPO

from neatpipe.errors import NeatpipeError
from neatpipe.genome import load_genome
from neatpipe.genome.cli import register
from neatpipe.genome.paper import closest_prompt, import_paper, pool_name_for_tag


def run(argv: list[str]) -> int:
    """Runs one genome subcommand the way ``neatpipe.cli.main`` does (exit 2 on a user error),
    without importing the other areas' command modules."""
    parser = argparse.ArgumentParser(prog="neatpipe")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except NeatpipeError as exc:  # what main catches
        print(f"neatpipe: error: {exc}")
        return 2


SELF_REFINE = str(REPO / "genomes" / "self-refine.yaml")


def test_validate_good_file(capsys) -> None:
    assert run(["validate", SELF_REFINE, "--models", "qwen2.5-coder-1.5b,llama3.2-3b"]) == 0
    assert "valid pipeline (3 nodes, 4 edges)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ("role: executor", "role: runner", ["node 'exec'", "unknown role 'runner'"]),
        ("  - [exec, refine]\n", "", ["node 'refine'", "missing feed"]),
        ("  - [refine, output]\n", "  - [refine, output]\n  - [refine, exec]\n", ["cycle"]),
        ("  - [refine, output]\n", "  - [refine, output]\n  - [gen, output]\n", ["node 'output'"]),
        (
            "temperature: 0.2\n    max_tokens: 512",
            "temperature: -1\n    max_tokens: 512",
            ["node 'gen' field 'temperature'"],
        ),
        (
            "time_limit: 5.0",
            "time_limit: 5.0\n    retries: 3",
            ["node 'exec' field 'retries'", "unknown field"],
        ),
    ],
)
def test_validate_bad_file_names_the_problem(
    old: str, new: str, named: list[str], tmp_path: Path, capsys
) -> None:
    text = Path(SELF_REFINE).read_text()
    assert old in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(old, new, 1))
    assert run(["validate", str(bad)]) == 2
    out = capsys.readouterr().out
    assert str(bad) in out
    for part in named:
        assert part in out, out


def test_validate_unknown_model_with_pool(capsys) -> None:
    assert run(["validate", SELF_REFINE, "--models", "llama3.2-3b"]) == 2
    assert "unknown model 'qwen2.5-coder-1.5b'" in capsys.readouterr().out


def test_show_prints_roles_models_wiring_iterations_complexity(capsys) -> None:
    assert run(["show", str(REPO / "genomes" / "analyzer-stage.yaml")]) == 0
    out = capsys.readouterr().out
    for part in (
        "roles: 1 generator, 1 executor, 1 analyzer, 1 refiner",
        "llama3.2-3b",
        "exec -> analyze, refine",
        "up to 2 iterations, early stop, analyzer analyze",
        "worst case 5 model calls",
    ):
        assert part in out, out


@pytest.mark.parametrize("fmt", ["yaml", "json", "graphml", "dot", "svg", "png"])
def test_export_every_format(fmt: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / f"pipeline.{fmt}"
    assert run(["export", str(BASELINES[0]), "--format", fmt, "-o", str(out)]) == 0
    assert out.stat().st_size > 0
    assert f"({fmt})" in capsys.readouterr().out


def test_export_needs_a_known_format(tmp_path: Path, capsys) -> None:
    assert run(["export", SELF_REFINE, "-o", str(tmp_path / "x.bmp")]) == 2
    assert "x.bmp" in capsys.readouterr().out


def test_import_paper_champion(shared_data: Path, tmp_path: Path, capsys) -> None:
    champion = shared_data / "paper" / "v2_champion.json"
    out = tmp_path / "champion.yaml"
    assert (
        run(["import-paper", str(champion), "-o", str(out), "--models", "llama3.2-3b,qwen2.5-coder-1.5b"])
        == 0
    )
    genome = load_genome(out, models=["llama3.2-3b"])
    by_role = {}
    for node in genome.nodes.values():
        by_role.setdefault(node.role.value, []).append(node)
    assert sorted(by_role) == ["executor", "generator", "refiner"]
    (gen,), (refiner,) = by_role["generator"], by_role["refiner"]
    assert (gen.model, gen.prompt, gen.temperature) == ("llama3.2-3b", 2, 0.25)  # 2 = edge-cases
    assert (refiner.model, refiner.prompt, refiner.iterations, refiner.early_stop) == (
        "llama3.2-3b",
        1,
        2,
        True,
    )
    assert "prompt: edge-cases" in out.read_text() and "prompt: keep-signature" in out.read_text()
    assert by_role["executor"][0].feedback == "hidden"
    assert run(["validate", str(out)]) == 0
    assert "llama3.2:3b -> llama3.2-3b" in capsys.readouterr().err


def test_import_paper_rejects_models_outside_the_pool(shared_data: Path, tmp_path: Path, capsys) -> None:
    champion = shared_data / "paper" / "v2_champion.json"
    assert run(["import-paper", str(champion), "-o", str(tmp_path / "c.yaml"), "--models", "qwen2.5-3b"]) == 2
    assert "genome.generator.model" in capsys.readouterr().out
    assert not (tmp_path / "c.yaml").exists()


def test_import_paper_with_an_analyzer_and_visible_feedback() -> None:
    champion = {
        "fitness": 0.5,
        "genome": {
            "generator": {
                "model": "qwen2.5-coder:1.5b",
                "system_prompt": "You are a competitive programmer.",
                "temperature": 0.2,
            },
            "stages": [
                {
                    "max_iterations": 3,
                    "analyzer": {
                        "model": "llama3.2:3b",
                        "temperature": 0.1,
                        "system_prompt": "Explain the root cause of the failure in words.",
                    },
                    "refiner": {
                        "model": "qwen2.5-coder:3b-instruct-q4_K_M",
                        "temperature": 0.3,
                        "system_prompt": "Debug the failure and rewrite the whole solution.",
                    },
                }
            ],
        },
    }
    result = import_paper(champion, feedback="visible")
    names = {result.loaded.names[k]: n for k, n in result.loaded.genome.nodes.items()}
    assert names["gen"].model == "qwen2.5-coder-1.5b" and names["gen"].prompt == 1
    assert names["analyze-1"].prompt == 0 and names["refine-1"].model == "qwen2.5-coder-3b"
    assert names["refine-1"].prompt == 0 and names["exec-1"].feedback == "visible"


def test_tag_mapping_and_prompt_matching() -> None:
    assert pool_name_for_tag("llama3.2:3b") == "llama3.2-3b"
    assert pool_name_for_tag("qwen2.5-coder:1.5b") == "qwen2.5-coder-1.5b"
    assert pool_name_for_tag("qwen2.5:3b-instruct") == "qwen2.5-3b"
    assert pool_name_for_tag("llama3.2:latest") == "llama3.2"
    assert closest_prompt("refiner", "Make every test pass.").variant == "pass-all-tests"
    assert closest_prompt("analyzer", "Describe the smallest change that fixes it.").variant == "minimal-fix"


def test_main_entry_point_runs_validate(capsys) -> None:
    from neatpipe.cli import main

    assert main(["validate", SELF_REFINE]) == 0
    assert "valid pipeline" in capsys.readouterr().out
