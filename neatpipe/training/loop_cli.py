"""``neatpipe loop FILE``: the execution-feedback training loop of one file, step by step.

harvest (the genome sampled on training problems) -> dataset (the kinds the file names) -> finetune (the
refiner's model) -> evaluate (the genome with the base refiner and with the fine-tuned one, on the
evaluation benchmark) -> compare. Each step is the command of the same name, run in this process on the
loop's own folder, so every intermediate result is the file that command writes; a step's failure stops
the loop with that command's one-line error.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neatpipe.errors import NeatpipeError, shown

FORMAT = "neatpipe-loop/1"

#: The sections of a loop file and the keys each may have, with their defaults.
SECTIONS: dict[str, dict[str, Any]] = {
    "harvest": {"samples": 4, "temperature": 0.8, "split": "train,prompt", "limit": None},
    "dataset": {"kinds": ["repair", "preference"], "per_problem": 4},
    "finetune": {"method": "sft", "data": "repair", "lora": True, "max_steps": 100, "learning_rate": None},
    "evaluate": {"benchmark": "humaneval", "repeats": 3, "limit": None},
}
TOP = ("format", "name", "genome", "role", "models", "tuned_model", "base", *SECTIONS, "model_sets")


class LoopError(NeatpipeError):
    """A loop file that cannot be run as written (the message names the file and the field)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "loop",
        help="harvest, export, fine-tune and evaluate: the execution-feedback training loop of one file",
        description=" ".join((__doc__ or "").split("\n\n")[1].split()),
    )
    p.add_argument("file", type=Path, metavar="LOOP.yaml")
    p.add_argument("--model-set", metavar="NAME", help="the file's model_sets entry to use (e.g. offline)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="the loop's folder (new)")
    p.set_defaults(func=_loop)


def read_loop(path: Path, model_set: str | None = None) -> dict[str, Any]:
    """The loop file with its defaults filled in and ``model_set``'s entries laid over it."""
    from neatpipe.io import load_yaml, read_text

    data = load_yaml(read_text(path))
    if not isinstance(data, dict):
        raise LoopError(f"{path}: expected a mapping (format: {FORMAT})")
    if data.get("format") != FORMAT:
        raise LoopError(f"{path}: format: expected {FORMAT}, got {shown(data.get('format'))}")
    unknown = sorted(set(data) - set(TOP))
    if unknown:
        raise LoopError(f"{path}: unknown field {shown(unknown[0])}; fields are {', '.join(TOP)}")
    sets = data.get("model_sets") or {}
    if model_set is not None:
        if model_set not in sets:
            raise LoopError(
                f"{path}: model_sets has no {shown(model_set)}; it has {', '.join(sets) or 'none'}"
            )
        over = sets[model_set]
        bad = sorted(set(over) - set(TOP))
        if bad:
            raise LoopError(f"{path}: model_sets.{model_set}: unknown field {shown(bad[0])}")
        for key, value in over.items():
            data[key] = {**data.get(key, {}), **value} if key in SECTIONS else value
    loop: dict[str, Any] = {"name": str(data.get("name") or path.stem), "role": data.get("role", "refiner")}
    for key in ("genome", "models", "tuned_model", "base"):
        if not data.get(key):
            raise LoopError(f"{path}: {key}: missing")
        loop[key] = data[key]
    if not isinstance(loop["models"], dict):
        raise LoopError(f"{path}: models: expected a mapping of model names to specs")
    if loop["tuned_model"] not in loop["models"]:
        raise LoopError(f"{path}: tuned_model: {shown(loop['tuned_model'])} is not in models")
    loop["genome"] = (path.parent / str(loop["genome"])).resolve()
    for section, defaults in SECTIONS.items():
        given = data.get(section) or {}
        if not isinstance(given, dict):
            raise LoopError(f"{path}: {section}: expected a mapping")
        bad = sorted(set(given) - set(defaults))
        if bad:
            raise LoopError(f"{path}: {section}.{bad[0]}: unknown; {section} has {', '.join(defaults)}")
        loop[section] = {**defaults, **given}
    return loop


def tuned_genome(genome: Any, role: str, name: str) -> Any:
    """A copy of ``genome`` whose nodes of ``role`` call the model ``name``."""
    from neatpipe.genome import PipelineGenome

    nodes = [dataclasses.replace(g, model=name) if g.role.value == role else g for g in genome.nodes.values()]
    if nodes == list(genome.nodes.values()):
        raise LoopError(f"the genome has no {role} node to give the fine-tuned model")
    return PipelineGenome.from_genes(
        genome.key,
        nodes,
        genome.connections.values(),
        genome.fitness,
        f"{genome.description} ({role}: {name})",
    )


def _step(name: str, argv: list[str]) -> None:
    from neatpipe.cli import main

    print(f"neatpipe loop: {name}: neatpipe {' '.join(argv)}", file=sys.stderr)
    started = time.perf_counter()
    if main(argv) != 0:
        raise LoopError(f"the loop stopped at its {name} step (its error is above)")
    print(f"neatpipe loop: {name} took {time.perf_counter() - started:.1f} s", file=sys.stderr)


def _pool(models: Mapping[str, Any]) -> list[str]:
    return [arg for name, spec in models.items() for arg in ("--model", f"{name}={spec}")]


def _loop(args: argparse.Namespace) -> int:
    from neatpipe.genome import load_genome, save_genome
    from neatpipe.io import check_output_dir

    loop = read_loop(args.file, args.model_set)
    out: Path = args.out
    check_output_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    base = str(loop["base"])
    if base == "tiny":  # a random-weight model built here: the loop runs offline, its scores mean nothing
        from neatpipe.models.tiny import make_tiny_model

        base = f"hf:{make_tiny_model(out / 'tiny-base', arch='qwen2', seed=0).path}"
        print(
            "neatpipe loop: the base model is a tiny random-weight model: scores mean nothing",
            file=sys.stderr,
        )
    h, d, f, e = loop["harvest"], loop["dataset"], loop["finetune"], loop["evaluate"]
    genome = str(loop["genome"])
    harvest = ["harvest", genome, *_pool(loop["models"]), "--out", str(out / "harvest")]
    harvest += ["--samples", str(h["samples"]), "--temperature", str(h["temperature"]), "--split", h["split"]]
    harvest += ["--limit", str(h["limit"])] if h["limit"] else []
    _step("harvest", harvest)
    dataset = [
        "dataset",
        str(out / "harvest"),
        "--out",
        str(out / "data"),
        "--per-problem",
        str(d["per_problem"]),
    ]
    _step("dataset", [*dataset, *(a for k in d["kinds"] for a in ("--kind", k))])
    finetune = [
        "finetune",
        str(out / "data" / f"{f['data']}.jsonl"),
        "--model",
        base,
        "--method",
        f["method"],
    ]
    finetune += ["--out", str(out / "tuned"), "--max-steps", str(f["max_steps"]), "--quiet"]
    finetune += ["--lora"] if f["lora"] else []
    finetune += ["--lr", str(f["learning_rate"])] if f["learning_rate"] else []
    _step("finetune", finetune)
    tuned = out / "genomes"
    tuned.mkdir()
    plain, stem, model = load_genome(genome), Path(genome).stem, loop["tuned_model"]
    for which in ("base", "tuned"):  # the same genome, its refiner on the base model or the fine-tuned one
        save_genome(tuned_genome(plain, loop["role"], f"{model}-{which}"), tuned / f"{stem}-{which}.yaml")
    models = {**loop["models"], f"{model}-base": base, f"{model}-tuned": f"hf:{out / 'tuned'}"}
    evaluate = ["evaluate", *(str(p) for p in sorted(tuned.iterdir())), *_pool(models)]
    evaluate += [
        "--benchmark",
        e["benchmark"],
        "--repeats",
        str(e["repeats"]),
        "--out",
        str(out / "evaluation"),
    ]
    evaluate += ["--limit", str(e["limit"])] if e["limit"] else []
    _step("evaluate", evaluate)
    _step("compare", ["compare", str(out / "evaluation")])
    return 0
