"""The field reference of experiment files (``describe_fields``), generated from the declarations: the
tables of docs/experiments.md come from here."""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, dataclass, fields, is_dataclass
from typing import Any

import yaml

from neatpipe.experiment.experiment import _SECTIONS, Experiment
from neatpipe.experiment.fields import (
    DERIVED_GENOME_FIELDS,
    FORMAT,
    MODES,
    _is_optional,
    _join,
)
from neatpipe.experiment.sections import _SETTINGS_FIELDS
from neatpipe.genome.settings import GenomeSettings
from neatpipe.vocab import ENGINES, FEEDBACK_SOURCES

# ---------------------------------------------------------------------------------------------------------
# documentation


@dataclass(frozen=True)
class FieldDoc:
    """One row of the field reference: dotted path, type, default (as YAML writes it) and meaning."""

    path: str
    type: str
    default: str
    doc: str


def _yaml_value(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def describe_fields() -> list[FieldDoc]:
    """Every field of the schema with its default, in file order (docs/experiments.md's table)."""
    top = {f.name: f.default for f in fields(Experiment)}
    rows = [
        FieldDoc("format", "str", FORMAT, "the schema version"),
        FieldDoc("name", "str", "the file's stem", "names the run folder; letters, digits, '_', '.', '-'"),
        FieldDoc("description", "str", _yaml_value(top["description"]), "free text"),
        FieldDoc(
            "mode", ", ".join(MODES), top["mode"], "evolve (a NEAT search) or evaluate (score fixed designs)"
        ),
        FieldDoc("seed", "int", _yaml_value(top["seed"]), "seeds neat-python, the subsets and the sampling"),
    ]
    section_rows: dict[str, list[FieldDoc]] = {}

    def walk(cls: type, prefix: str) -> list[FieldDoc]:
        out = []
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            path = _join(prefix, f.name)
            tp = hints[f.name]
            if is_dataclass(tp):
                out.extend(walk(tp, path))
                continue
            if f.default is not MISSING:
                default = _yaml_value(f.default)
            else:
                default = _yaml_value(f.default_factory())
            choices = f.metadata.get("choices")
            type_text = ", ".join(choices) if choices else _type_name(tp)
            out.append(FieldDoc(path, type_text, default, f.metadata.get("doc", "")))
        return out

    for key, cls in _SECTIONS.items():
        section_rows[key] = walk(cls, key)
    rows.extend(section_rows["benchmark"] + section_rows["subset"] + section_rows["validation"])
    rows.append(
        FieldDoc(
            "feedback",
            ", ".join(FEEDBACK_SOURCES),
            top["feedback"],
            "tests executors report: visible (honest), hidden (oracle, as the study), genome (each executor's own)",
        )
    )
    rows.append(
        FieldDoc(
            "models",
            "mapping",
            "required",
            "model name -> backend spec string or mapping (spec, options, make_tiny)",
        )
    )
    rows.append(
        FieldDoc(
            "model_alternatives",
            "mapping",
            "{}",
            "set name -> another mapping of the same model names (e.g. ollama)",
        )
    )
    rows.extend(section_rows["prompts"])
    rows.append(
        FieldDoc(
            "genome.initial",
            "str or list",
            "minimal",
            "the first generation: minimal, or genome file(s) it starts from",
        )
    )
    defaults = GenomeSettings()
    for name, doc in GenomeSettings.describe().items():
        if name not in DERIVED_GENOME_FIELDS:
            rows.append(
                FieldDoc(
                    f"genome.{name}", _SETTINGS_FIELDS[name].type, _yaml_value(getattr(defaults, name)), doc
                )
            )
    for key in ("neat", "fitness", "budget", "backend", "output", "evaluate"):
        rows.extend(section_rows[key])
    rows.append(
        FieldDoc(
            "engine",
            ", ".join(ENGINES),
            top["engine"],
            "where the evaluation runs: local (this process) or ray (actors on a Ray cluster; docs/engines.md)",
        )
    )
    rows.extend(section_rows["ray"])
    return rows


def _type_name(tp: Any) -> str:
    if _is_optional(tp):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(_type_name(a) for a in inner) + " or null"
    origin = typing.get_origin(tp)
    if origin is tuple:
        return "list"
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))
