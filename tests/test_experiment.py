"""Experiment files: the shipped ones load, round-trip and generate neat-python configs; every kind of
mistake is reported with the file, the field path and the allowed values."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import neat
import pytest

from neatpipe.evolution import build
from neatpipe.experiment import (
    FORMAT,
    Experiment,
    ExperimentError,
    describe_fields,
    genome_file_problems,
    load_experiment,
    parse_duration,
)
from neatpipe.genome import GenomeSettings, PipelineGenome
from neatpipe.genome.settings import NEAT_DEFAULTS
from neatpipe.models.spec import HFSpec, OllamaSpec

REPO = Path(__file__).resolve().parents[1]
FILES = sorted((REPO / "experiments").rglob("*.yaml"))
LOOPS = [p for p in FILES if "format: neatpipe-loop/" in p.read_text()]  # training loops (neatpipe loop)
SHIPPED = [p for p in FILES if p not in LOOPS]
PAPER = sorted((REPO / "experiments" / "paper").glob("*.yaml"))


def _load(path: Path, **kw) -> Experiment:
    return load_experiment(path, base_dir=REPO, **kw)


def _base() -> dict:
    return {"name": "t", "models": {"coder": "synthetic:coder-1.5b", "big": "synthetic:coder-3b"}}


def _with(patch: dict) -> dict:
    """The base experiment with dotted-path keys set (a value of ``...`` deletes the key)."""
    data = _base()
    for dotted, value in patch.items():
        *parents, last = dotted.split(".")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        if value is ...:
            node.pop(last, None)
        else:
            node[last] = copy.deepcopy(value)
    return data


def _error(data: dict, source: str = "experiments/x.yaml") -> ExperimentError:
    """The error an experiment file with ``data`` gets: from the dataclasses, or (once they are built)
    from the genome files it names, as ``load_experiment`` checks them."""
    with pytest.raises(ExperimentError) as info:
        exp = Experiment.from_dict(data, source=source, base_dir=REPO)
        problems = genome_file_problems(exp)
        if problems:
            raise ExperimentError(problems, source)
    return info.value


# -- the shipped files -------------------------------------------------------------------------------


def test_the_shipped_experiments_are_all_there():
    names = {p.relative_to(REPO / "experiments").as_posix() for p in SHIPPED}
    assert {"default.yaml", "smoke.yaml", "synthetic.yaml"} <= names
    paper = {p.stem for p in PAPER}
    assert {
        "solo-baselines",
        "self-refine",
        "cross-model",
        "early-stopping",
        "analyzer-stage",
        "code-specialised",
        "evolution",
        "evolution-strict",
    } <= paper


@pytest.mark.parametrize("path", LOOPS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_shipped_loop_files_read_with_every_model_set(path):
    from neatpipe.io import load_yaml
    from neatpipe.training.loop_cli import read_loop

    sets = [None, *(load_yaml(path.read_text()).get("model_sets") or {})]
    for model_set in sets:
        loop = read_loop(path, model_set)
        assert loop["genome"].is_file() and loop["tuned_model"] in loop["models"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(REPO).as_posix())
def test_shipped_experiment_loads_round_trips_and_builds_a_neat_config(path):
    exp = _load(path)
    again = Experiment.from_dict(exp.to_dict(), source="again", base_dir=REPO)
    assert again == exp
    assert again.to_dict() == exp.to_dict()
    config = build.neat_config(exp)
    assert config.genome_type is PipelineGenome
    assert config.pop_size == exp.neat.population
    assert config.genome_config.settings.models == exp.model_names
    for alternative, _ in exp.model_alternatives:
        other = exp.using(alternative)
        assert other.model_names == exp.model_names
        assert Experiment.from_dict(other.to_dict(), base_dir=REPO) == other


def test_default_is_real_open_models_on_humaneval():
    exp = _load(REPO / "experiments" / "default.yaml")
    assert exp.mode == "evolve" and exp.benchmark.name == "humaneval" and not exp.synthetic
    assert all(isinstance(m.spec, HFSpec) for m in exp.models)
    assert not any(m.spec.model.startswith("meta-llama/") for m in exp.models)  # gated
    assert exp.neat.population == 20 and exp.subset.size == 25 and exp.subset.stratified
    assert (exp.fitness.penalty.kind, exp.fitness.penalty.weight) == ("per-node", 0.02)
    assert all(isinstance(m.spec, OllamaSpec) for m in exp.using("ollama").models)


def test_smoke_builds_a_tiny_model_and_stays_small():
    exp = _load(REPO / "experiments" / "smoke.yaml")
    (tiny,) = exp.models
    assert isinstance(tiny.spec, HFSpec) and tiny.spec.is_local
    assert Path(tiny.spec.model) == REPO / "runs" / "tiny-model"
    assert tiny.make_tiny_kwargs == {"arch": "qwen2", "seed": 0}
    assert exp.neat.population <= 5 and exp.budget.generations <= 3
    assert exp.subset.size + exp.validation.size <= 10
    assert exp.backend.cache is None


def test_synthetic_is_labelled_synthetic():
    exp = _load(REPO / "experiments" / "synthetic.yaml")
    assert exp.synthetic and "SYNTHETIC" in exp.description
    assert {m.spec.preset for m in exp.models} == {"small-1.5b", "coder-1.5b", "general-3b", "coder-3b"}
    assert exp.neat.population == 20
    assert {g.label for g in exp.evaluate.genomes} >= {"syn-coder-1.5b solo", "syn-coder-1.5b self-refine x3"}


def test_paper_designs_use_genome_files_and_offer_ollama():
    for path in PAPER:
        exp = _load(path)
        assert dict(exp.model_alternatives).keys() == {"ollama"}, path
        if exp.mode == "evaluate":
            assert exp.evaluate.genomes and exp.evaluate.repeats == 5, path
            assert all(Path(g.path).parent == REPO / "genomes" for g in exp.evaluate.genomes)
    evo = _load(REPO / "experiments" / "paper" / "evolution.yaml")
    assert (evo.neat.population, evo.subset.size, evo.fitness.penalty.weight) == (20, 25, 0.02)
    strict = _load(REPO / "experiments" / "paper" / "evolution-strict.yaml")
    assert strict.feedback == "visible" and strict.fitness.repeats > 1 and strict.validation.size


# -- defaults, round trip, neat config ---------------------------------------------------------------


def test_defaults_are_filled_in_and_explicit():
    exp = Experiment.from_dict(_base())
    data = exp.to_dict()
    assert data["format"] == FORMAT
    assert data["subset"]["seed"] == exp.seed  # resolved
    assert data["genome"]["max_nodes"] == GenomeSettings().max_nodes
    assert "models" not in data["genome"]
    assert data["neat"]["population"] == NEAT_DEFAULTS["NEAT"]["pop_size"]
    assert Experiment.from_dict(data) == exp


def test_name_defaults_to_the_file_stem(tmp_path):
    path = tmp_path / "my-run.yaml"
    path.write_text("models: {coder: 'synthetic:coder-1.5b'}\n")
    exp = load_experiment(path)
    assert exp.name == "my-run"
    assert build.run_dir(exp).parent == Path("runs") and build.run_dir(exp).name.startswith("my-run-")


def test_neat_config_matches_the_experiment(tmp_path):
    data = _with(
        {
            "seed": 7,
            "neat": {
                "population": 13,
                "compatibility_threshold": 2.5,
                "max_stagnation": 4,
                "species_elitism": 2,
                "elitism": 3,
                "survival_threshold": 0.4,
                "species_fitness": "mean",
            },
            "fitness.stop_at": 0.9,
            "prompts.generator": ["plain-expert"],
            "genome.max_nodes": 7,
            "genome.temperature_max": 0.8,
        }
    )
    exp = Experiment.from_dict(data)
    config = build.neat_config(exp)
    assert isinstance(config, neat.Config) and config.genome_type is PipelineGenome
    assert (config.pop_size, config.seed, config.fitness_threshold, config.no_fitness_termination) == (
        13,
        7,
        0.9,
        False,
    )
    assert config.species_set_config.compatibility_threshold == 2.5
    assert config.stagnation_config.max_stagnation == 4
    assert config.stagnation_config.species_elitism == 2
    assert config.stagnation_config.species_fitness_func == "mean"
    assert config.reproduction_config.elitism == 3
    assert config.reproduction_config.survival_threshold == 0.4
    settings = config.genome_config.settings
    assert settings == exp.genome_settings
    assert (settings.models, settings.generator_prompts, settings.max_nodes) == (("coder", "big"), 1, 7)
    path = tmp_path / "neat.ini"
    build.write_neat_config(exp, path)
    loaded = neat.Config(
        PipelineGenome, neat.DefaultReproduction, neat.DefaultSpeciesSet, neat.DefaultStagnation, str(path)
    )
    assert loaded.genome_config.settings == settings and loaded.pop_size == 13
    # no stop_at: fitness never ends the run
    assert build.neat_config(Experiment.from_dict(_base())).no_fitness_termination is True


def test_backend_defaults_fill_hf_specs_that_leave_them_at_auto():
    exp = Experiment.from_dict(
        _with(
            {
                "models": {"a": "hf:org/a", "b": {"spec": "hf:org/b", "dtype": "float16"}},
                "backend": {"device": "cuda:1", "dtype": "bf16", "batch_size": 16},
            }
        )
    )
    specs = exp.backend_specs()
    assert (specs["a"].device, specs["a"].dtype, specs["a"].batch_size) == ("cuda:1", "bfloat16", 16)
    assert specs["b"].dtype == "float16"


def test_durations():
    assert parse_duration("90m") == 5400 and parse_duration(30) == 30.0 and parse_duration("1.5h") == 5400
    assert Experiment.from_dict(_with({"budget.wall_time": "2h"})).budget.wall_time == 7200


def test_problem_split_and_subsets_are_deterministic_and_disjoint():
    exp = Experiment.from_dict(_with({"subset": {"size": 10, "policy": "rotating"}, "validation.size": 30}))
    problems = build.load_problems(exp)
    pool, held = build.split_problems(exp, problems)
    assert len(held) == 30 and len(pool) == 134
    assert not set(pool.task_ids) & set(held.task_ids)
    g0, g0b, g1 = (
        build.search_subset(exp, pool, 0),
        build.search_subset(exp, pool, 0),
        build.search_subset(exp, pool, 1),
    )
    assert len(g0) == 10 and g0.task_ids == g0b.task_ids and g0.task_ids != g1.task_ids
    assert set(g0.task_ids) <= set(pool.task_ids)
    fixed = Experiment.from_dict(_with({"subset": {"size": 10}, "validation.size": 30}))
    assert build.search_subset(fixed, pool, 0).task_ids == build.search_subset(fixed, pool, 5).task_ids


def test_difficulty_labels_stratify(tmp_path):
    exp = Experiment.from_dict(_base())
    ids = build.load_problems(exp).task_ids
    labels = tmp_path / "labels.json"
    import json

    labels.write_text(json.dumps({t: ("hard" if i < 41 else "easy") for i, t in enumerate(ids)}))
    strat = Experiment.from_dict(_with({"subset": {"size": 20, "labels": str(labels)}}))
    chosen = build.search_subset(strat, build.load_problems(strat))
    hard = sum(1 for t in chosen.task_ids if ids.index(t) < 41)
    assert hard == 5  # a quarter of 20, as in the whole set


# -- errors -------------------------------------------------------------------------------------------

# (patch, field path named, words the message must contain)
ERROR_CASES = [
    (
        {"fitness.penalty.kind": "per-nodes"},
        "fitness.penalty.kind",
        ["none, per-node, per-model-node, per-call, per-token", "'per-node'"],
    ),
    ({"benchmark.name": "humaneva"}, "benchmark.name", ["humaneval, mbpp", "did you mean 'humaneval'"]),
    ({"benchmark.split": "dev"}, "benchmark.split", ["all, test, validation, train, prompt"]),
    ({"benchmark.split": "test"}, "benchmark.split", ["HumanEval has one split"]),
    ({"benchmark.visible_tests": "all"}, "benchmark.visible_tests", ["only for mbpp"]),
    ({"benchmark": {"name": "mbpp", "visible_tests": "some"}}, "benchmark.visible_tests", ["first, all"]),
    ({"benchmark.path": "no/such/file.json"}, "benchmark.path", ["not found", "no/such/file.json"]),
    ({"subset.policy": "rotate"}, "subset.policy", ["fixed, rotating", "did you mean 'rotating'"]),
    ({"subset.size": 0}, "subset.size", ["at least 1"]),
    ({"subset.size": "25"}, "subset.size", ["an integer or null"]),
    ({"subset.size": 200}, "subset.size", ["at most 164"]),
    ({"validation": {"size": 150}, "subset.size": 25}, "subset.size", ["at most 14"]),
    ({"validation.repeats": 0}, "validation.repeats", ["at least 1"]),
    ({"feedback": "oracle"}, "feedback", ["visible, hidden, genome"]),
    ({"mode": "search"}, "mode", ["evolve, evaluate"]),
    ({"seed": 1.5}, "seed", ["an integer"]),
    ({"name": "has space"}, "name", ["letters, digits"]),
    ({"format": "neatpipe-experiment/9"}, "format", [FORMAT]),
    ({"models": {}}, "models", ["mapping of model names"]),
    ({"models": ...}, "models", ["required"]),
    ({"models": {"coder": "hugging:org/x"}}, "models.coder", ["unknown backend kind", "hf, ollama"]),
    ({"models": {"coder": {"spec": "hf:org/x", "dtype": "float8"}}}, "models.coder.dtype", ["bfloat16"]),
    ({"models": {"coder": {"spec": "hf:org/x", "make_tiny": True}}}, "models.coder.make_tiny", ["local hf"]),
    (
        {"models": {"coder": {"spec": "hf:./tiny", "make_tiny": {"layers": 2}}}},
        "models.coder.make_tiny.layers",
        ["unknown option", "num_layers"],
    ),
    ({"models": {"bad name": "synthetic:coder-1.5b"}}, "models.bad name", ["letters, digits"]),
    (
        {"model_alternatives": {"ollama": {"coder": "ollama:qwen2.5-coder:1.5b"}}},
        "model_alternatives.ollama",
        ["missing big"],
    ),
    (
        {"prompts.generator": ["plain-expertt"]},
        "prompts.generator",
        ["did you mean 'plain-expert'", "edge-cases"],
    ),
    ({"prompts.refiner": ["keep-signature"]}, "prompts.refiner", ["first 1 variant", "debugger-rewrite"]),
    ({"genome.max_nodes": 0}, "genome.max_nodes", ["at least 1"]),
    ({"genome.add_stage_rate": 1.5}, "genome.add_stage_rate", ["[0, 1]"]),
    ({"genome.executor_feedback": "oracle"}, "genome.executor_feedback", ["visible, hidden"]),
    ({"genome": {"iterations_min": 3, "iterations_max": 2}}, "genome.iterations_min", ["iterations_max"]),
    ({"genome.max_nodes": "12"}, "genome.max_nodes", ["an integer"]),
    ({"genome.models": ["a"]}, "genome.models", ["'models' section"]),
    ({"genome.generator_prompts": 2}, "genome.generator_prompts", ["'prompts' section"]),
    ({"genome.initial": "genomes/nope.yaml"}, "genome.initial", ["not found"]),
    ({"neat.population": 1}, "neat.population", ["at least 2"]),
    ({"neat": {"population": 4, "elitism": 5}}, "neat.elitism", ["population (4)"]),
    ({"neat.survival_threshold": 0}, "neat.survival_threshold", ["(0, 1]"]),
    ({"neat.species_fitness": "best"}, "neat.species_fitness", ["max, mean, min, median"]),
    ({"fitness.penalty.weight": -1}, "fitness.penalty.weight", ["at least 0"]),
    ({"fitness.repeats": 0}, "fitness.repeats", ["at least 1"]),
    (
        {"fitness.racing": {"enabled": True, "size": 30}, "subset.size": 25},
        "fitness.racing.size",
        ["25 problems"],
    ),
    ({"fitness.racing.enabled": "yes"}, "fitness.racing.enabled", ["true or false"]),
    ({"budget.generations": 0}, "budget.generations", ["at least 1"]),
    ({"budget.wall_time": "two hours"}, "budget.wall_time", ["30m, 2h"]),
    ({"backend.cache_mode": "rw"}, "backend.cache_mode", ["readwrite, readonly, refresh, off"]),
    ({"backend.device": "gpu"}, "backend.device", ["cuda:N"]),
    ({"backend.batch_size": 0}, "backend.batch_size", ["'auto' or an integer"]),
    ({"mode": "evaluate"}, "evaluate.genomes", ["at least one genome"]),
    ({"evaluate.genomes": ["genomes/missing.yaml"]}, "evaluate.genomes[0].path", ["not found"]),
    (
        {"evaluate.genomes": [{"pth": "genomes/solo.yaml"}]},
        "evaluate.genomes[0].pth",
        ["did you mean 'path'"],
    ),
    (
        {"evaluate.genomes": ["genomes/solo.yaml"]},
        "evaluate.genomes[0]",
        ["qwen2.5-coder-1.5b", "replace_models"],
    ),
    (
        {
            "evaluate.genomes": [
                {"path": "genomes/solo.yaml", "replace_models": {"qwen2.5-coder-1.5b": "codr"}}
            ]
        },
        "evaluate.genomes[0].replace_models.qwen2.5-coder-1.5b",
        ["did you mean 'coder'"],
    ),
    ({"benchmark": "humaneval"}, "benchmark", ["expected a mapping"]),
]


@pytest.mark.parametrize(("patch", "field", "words"), ERROR_CASES, ids=[c[1] for c in ERROR_CASES])
def test_each_kind_of_error_names_file_field_and_allowed_values(patch, field, words):
    err = _error(_with(patch))
    assert field in err.fields, str(err)
    text = str(err)
    assert text.startswith("experiments/x.yaml: ")
    line = next(str(p) for p in err.problems if p.field == field)
    for word in words:
        assert word in line, line


@pytest.mark.parametrize(
    ("patch", "field", "suggestion"),
    [
        ({"populaton": 3}, "populaton", "'population'"),  # misplaced and misspelt at the top: nearest top key
        ({"fitnes": {}}, "fitnes", "'fitness'"),
        ({"neat.populaton": 3}, "neat.populaton", "'population'"),
        ({"fitness.penalty.knd": "per-node"}, "fitness.penalty.knd", "'kind'"),
        ({"genome.max_node": 4}, "genome.max_node", "'max_nodes'"),
        ({"subset.sizes": 4}, "subset.sizes", "'size'"),
    ],
)
def test_unknown_fields_are_errors_with_a_suggestion(patch, field, suggestion):
    err = _error(_with(patch))
    if field == "populaton":
        assert "populaton" in err.fields
        return
    assert field in err.fields
    assert suggestion in str(err)


def test_every_problem_is_reported_at_once():
    err = _error(
        _with(
            {
                "fitness.penalty.kind": "nodes",
                "neat.population": 0,
                "genome.max_nodes": -1,
                "benchmark.name": "apps",
                "models": {"coder": "nope:x"},
                "colour": "blue",
            }
        )
    )
    assert {
        "fitness.penalty.kind",
        "neat.population",
        "genome.max_nodes",
        "benchmark.name",
        "models.coder",
        "colour",
    } <= set(err.fields)
    assert re.match(r"experiments/x\.yaml: \d+ problems:\n", str(err))


def test_file_level_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ExperimentError, match=re.escape(str(missing))):
        load_experiment(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ExperimentError, match="bad.yaml: not valid YAML"):
        load_experiment(bad)
    dup = tmp_path / "dup.yaml"
    dup.write_text("name: a\nname: b\nmodels: {coder: 'synthetic:coder-1.5b'}\n")
    with pytest.raises(ExperimentError, match="duplicate key 'name'"):
        load_experiment(dup)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ExperimentError, match="list.yaml: an experiment file must be a mapping"):
        load_experiment(listing)
    typo = tmp_path / "typo.yaml"
    typo.write_text("models: {coder: 'synthetic:coder-1.5b'}\nneat: {popsize: 4}\n")
    with pytest.raises(ExperimentError, match=r"typo\.yaml: neat\.popsize: unknown field"):
        load_experiment(typo)


def test_initial_genome_must_fit_the_experiments_limits():
    data = _with(
        {
            "models": {"qwen2.5-coder-1.5b": "synthetic:coder-1.5b"},
            "genome": {"initial": "genomes/self-refine.yaml", "max_stages": 0},
        }
    )
    err = _error(data)
    assert "genome.initial[0]" in err.fields and "breaks this experiment's limits" in str(err)
    ok = Experiment.from_dict(
        _with(
            {
                "models": {"qwen2.5-coder-1.5b": "synthetic:coder-1.5b"},
                "genome.initial": "genomes/self-refine.yaml",
            }
        ),
        base_dir=REPO,
    )
    assert ok.genome.initial == (str(REPO / "genomes" / "self-refine.yaml"),)


def test_unknown_alternative_set():
    exp = _load(REPO / "experiments" / "default.yaml")
    with pytest.raises(ExperimentError, match="no model set 'olama'.*did you mean 'ollama'"):
        exp.using("olama")
    assert _load(REPO / "experiments" / "default.yaml", models="ollama").models[0].spec.kind == "ollama"


def test_direct_construction_is_validated_too():
    exp = Experiment.from_dict(_base())
    from dataclasses import replace

    from neatpipe.experiment import NeatSettings

    with pytest.raises(ExperimentError, match="population: must be at least 2"):
        NeatSettings(population=1)
    with pytest.raises(ExperimentError, match="mode: 'x' is not one of evolve, evaluate"):
        replace(exp, mode="x")


# -- the docs -----------------------------------------------------------------------------------------


def _doc_rows() -> dict[str, tuple[str, str]]:
    text = (REPO / "docs" / "experiments.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^\| `([a-z_.\[\]]+)` \| (.*?) \| (.*?) \| (.*) \|$", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3).strip("`"))
    return rows


def test_docs_field_table_matches_the_code():
    rows = _doc_rows()
    code = {f.path: f for f in describe_fields()}
    assert set(rows) == set(code), (sorted(set(code) - set(rows)), sorted(set(rows) - set(code)))
    for path, (_, default) in rows.items():
        assert default == code[path].default, path


def test_documented_defaults_are_what_an_empty_experiment_gets():
    from neatpipe.experiment.docs import _yaml_value

    def flatten(data, prefix=""):
        for key, value in data.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict) and value and path not in ("models", "model_alternatives"):
                yield from flatten(value, path)
            else:
                yield path, value

    resolved = dict(flatten(Experiment.from_dict(_base()).to_dict()))
    skip = {"name", "models", "subset.seed", "evaluate.genomes"}  # required, or resolved from others
    for row in describe_fields():
        if row.path in skip:
            continue
        assert _yaml_value(resolved[row.path]) == row.default, row.path


def test_yaml_off_reads_as_off(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("models: {a: 'synthetic:coder-1.5b'}\nbackend: {cache: off, cache_mode: off}\n")
    exp = load_experiment(path)
    assert (exp.backend.cache, exp.backend.cache_mode) == (None, "off")
