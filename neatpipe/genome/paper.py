"""Import a champion written by the reference study's tool ("Feedback Over Form").

That tool stores a genome as JSON: a ``generator`` and a list of ``stages``, each with
``max_iterations``, an optional ``analyzer`` and a ``refiner``; every model-calling part names an
Ollama model tag and carries its system prompt as text. neatpipe keeps prompts in fixed pools and
models by pool name, so the import maps

* each prompt onto the variant of the same role whose text is most similar (cosine similarity of
  the content words of the two texts, the variant's description included), and
* each Ollama tag onto a pool name: ``family:size[-suffix]`` becomes ``family-size``
  (``llama3.2:3b`` -> ``llama3.2-3b``, ``qwen2.5-coder:1.5b-instruct-q4_K_M`` ->
  ``qwen2.5-coder-1.5b``); a tag without a size keeps the family name alone.

The study's loop stops as soon as a candidate passes, so stages import with early stopping on. Its
executor ran the benchmark's own tests, so stages import with ``feedback: hidden`` unless the
caller asks for visible-test feedback.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neatpipe.errors import shown
from neatpipe.genome.errors import GenomeError, Issue
from neatpipe.genome.fileio import FORMAT, LoadedGenome, genome_from_data
from neatpipe.genome.genes import Role
from neatpipe.genome.prompts import prompt_pool
from neatpipe.genome.settings import GenomeSettings
from neatpipe.io import FileError, read_text

_STOPWORDS = frozenset(
    "a an and are as at be before below by code do does for from if in into is it its of on one only "
    "or that the then this to with you your".split()
)
_DEFAULTS = GenomeSettings()


@dataclass(frozen=True)
class PromptMatch:
    role: str
    text: str
    variant: str
    index: int
    similarity: float


@dataclass(frozen=True)
class PaperImport:
    """The imported genome and how each prompt and model was mapped (for the user to review)."""

    loaded: LoadedGenome
    prompts: tuple[PromptMatch, ...]
    models: Mapping[str, str]


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z][a-z0-9]*", text.lower()) if w not in _STOPWORDS and len(w) > 1}


def closest_prompt(role: str, text: str) -> PromptMatch:
    """The variant of ``role``'s pool most similar to ``text`` (first variant on ties)."""
    words = _words(text)
    best: PromptMatch | None = None
    for index, variant in enumerate(prompt_pool(role)):
        theirs = _words(variant.system + " " + variant.description + " " + variant.name.replace("-", " "))
        score = len(words & theirs) / math.sqrt(len(words) * len(theirs)) if words and theirs else 0.0
        if best is None or score > best.similarity:
            best = PromptMatch(role, text, variant.name, index, round(score, 4))
    assert best is not None
    return best


def pool_name_for_tag(tag: str) -> str:
    """An Ollama tag as a model pool name (see the module docstring)."""
    text = tag.strip().lower()
    family, _, variant = text.partition(":")
    size = variant.split("-")[0] if variant else ""
    if not size or size == "latest":
        return family
    return f"{family}-{size}"


def import_paper(
    source: str | Path | Mapping[str, Any], models: Sequence[str] | None = None, feedback: str = "hidden"
) -> PaperImport:
    """Reads a reference-study champion (a path or the parsed JSON) into a neatpipe genome.

    ``models``, when given, is the pool the mapped names must belong to."""
    if isinstance(source, Mapping):
        data, where = source, "<paper champion>"
    else:
        where = str(source)
        try:
            data = json.loads(read_text(source))
        except FileError as exc:
            raise GenomeError(exc.reason, where) from None
        except ValueError as exc:
            raise GenomeError(f"not valid JSON: {exc}", where) from None
    if not isinstance(data, Mapping):
        raise GenomeError("a champion file holds a JSON object", where)
    genome = data.get("genome", data)
    if not isinstance(genome, Mapping) or not isinstance(genome.get("generator"), Mapping):
        raise GenomeError(
            [Issue("field 'genome.generator'", "missing: not a reference-study champion")], where
        )
    stages = genome.get("stages") or []
    if not isinstance(stages, list):
        raise GenomeError([Issue("field 'genome.stages'", "must be a list")], where)

    matches: list[PromptMatch] = []
    model_map: dict[str, str] = {}

    def model_node(part: Any, role: str, field_path: str) -> dict[str, Any]:
        if not isinstance(part, Mapping):
            raise GenomeError(
                [Issue(f"field '{field_path}'", "must be an object with model and system_prompt")], where
            )
        tag = part.get("model")
        if not isinstance(tag, str) or not tag:
            raise GenomeError([Issue(f"field '{field_path}.model'", "missing Ollama model tag")], where)
        name = pool_name_for_tag(tag)
        if models is not None and name not in models:
            raise GenomeError(
                [
                    Issue(
                        f"field '{field_path}.model'",
                        f"Ollama tag {shown(tag)} maps to {shown(name)}, "
                        f"which is not in the model pool ({', '.join(models)})",
                    )
                ],
                where,
            )
        model_map[tag] = name
        temperature = part.get("temperature", _DEFAULTS.temperature_init)
        if (
            not isinstance(temperature, int | float)
            or isinstance(temperature, bool)
            or not math.isfinite(temperature)
        ):
            raise GenomeError(
                [Issue(f"field '{field_path}.temperature'", f"must be a number, not {shown(temperature)}")],
                where,
            )
        prompt = part.get("system_prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise GenomeError(
                [Issue(f"field '{field_path}.system_prompt'", f"must be text, not {shown(prompt)}")], where
            )
        match = closest_prompt(role, prompt or "")
        matches.append(match)
        node = {
            "role": role,
            "model": name,
            "prompt": match.variant,
            "temperature": float(temperature),
            "max_tokens": _DEFAULTS.max_tokens(Role(role)),
        }
        return node

    nodes: dict[str, Any] = {"gen": model_node(genome["generator"], "generator", "genome.generator")}
    edges: list[list[str]] = [["problem", "gen"]]
    last = "gen"
    for i, stage in enumerate(stages, start=1):
        path = f"genome.stages[{i - 1}]"
        if not isinstance(stage, Mapping):
            raise GenomeError([Issue(f"field '{path}'", "must be an object")], where)
        iterations = stage.get("max_iterations")
        if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1:
            raise GenomeError(
                [
                    Issue(
                        f"field '{path}.max_iterations'",
                        f"must be a positive integer, not {shown(iterations)}",
                    )
                ],
                where,
            )
        ex, ref = f"exec-{i}", f"refine-{i}"
        nodes[ex] = {"role": "executor", "feedback": feedback, "time_limit": _DEFAULTS.executor_time_limit}
        edges += [[last, ex], [ex, ref]]
        if stage.get("analyzer"):
            an = f"analyze-{i}"
            nodes[an] = model_node(stage["analyzer"], "analyzer", f"{path}.analyzer")
            edges += [[ex, an], [an, ref]]
        refiner = model_node(stage.get("refiner"), "refiner", f"{path}.refiner")
        refiner.update(iterations=iterations, early_stop=True)
        nodes[ref] = refiner
        last = ref
    edges.append([last, "output"])

    topology = genome.get("topology")
    fitness = data.get("fitness", genome.get("fitness"))
    description = "Imported from a reference-study champion"
    if isinstance(fitness, (int, float)):
        description += f" (its reported fitness {fitness:.3g})"
    if isinstance(topology, str):
        description += f": {topology}"
    document = {"format": FORMAT, "description": description, "nodes": nodes, "edges": edges}
    loaded = genome_from_data(document, where, models)
    return PaperImport(loaded, tuple(matches), model_map)
