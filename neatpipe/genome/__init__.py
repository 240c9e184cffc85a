"""Pipeline genomes: genes, the neat-python genome plugin, mutation and repair, graph files.

``PipelineGenome`` is the ``genome_type`` of a ``neat.Config``; ``make_neat_config`` builds one from
dictionaries. Graph files (YAML, JSON, GraphML; DOT, SVG and PNG pictures) are read and written by
``load_genome`` / ``save_genome``. See docs/genome-format.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neatpipe.lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and editors; at run time each name loads on first use
    from neatpipe.genome.canonical import Complexity, behaviour_hash, canonical_form, complexity
    from neatpipe.genome.errors import ConfigError, GenomeError, Issue
    from neatpipe.genome.fileio import (
        LoadedGenome,
        from_networkx,
        genome_from_data,
        genome_to_data,
        load_genome,
        read_genome,
        save_genome,
        to_networkx,
    )
    from neatpipe.genome.genes import (
        FEEDBACK_CHOICES,
        OUTPUT,
        PROBLEM,
        SELECTOR_STRATEGIES,
        ConnectionGene,
        NodeGene,
        Role,
    )
    from neatpipe.genome.genome import PipelineGenome, make_neat_config
    from neatpipe.genome.settings import (
        DEFAULT_MODELS,
        GenomeSettings,
        PipelineGenomeConfig,
        write_neat_config,
    )
    from neatpipe.genome.structure import Rules, find_problems
    from neatpipe.io import atomic_write_text

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Complexity": ("neatpipe.genome.canonical", "Complexity"),
        "behaviour_hash": ("neatpipe.genome.canonical", "behaviour_hash"),
        "canonical_form": ("neatpipe.genome.canonical", "canonical_form"),
        "complexity": ("neatpipe.genome.canonical", "complexity"),
        "ConfigError": ("neatpipe.genome.errors", "ConfigError"),
        "GenomeError": ("neatpipe.genome.errors", "GenomeError"),
        "Issue": ("neatpipe.genome.errors", "Issue"),
        "LoadedGenome": ("neatpipe.genome.fileio", "LoadedGenome"),
        "atomic_write_text": ("neatpipe.io", "atomic_write_text"),
        "from_networkx": ("neatpipe.genome.fileio", "from_networkx"),
        "genome_from_data": ("neatpipe.genome.fileio", "genome_from_data"),
        "genome_to_data": ("neatpipe.genome.fileio", "genome_to_data"),
        "load_genome": ("neatpipe.genome.fileio", "load_genome"),
        "read_genome": ("neatpipe.genome.fileio", "read_genome"),
        "save_genome": ("neatpipe.genome.fileio", "save_genome"),
        "to_networkx": ("neatpipe.genome.fileio", "to_networkx"),
        "FEEDBACK_CHOICES": ("neatpipe.genome.genes", "FEEDBACK_CHOICES"),
        "OUTPUT": ("neatpipe.genome.genes", "OUTPUT"),
        "PROBLEM": ("neatpipe.genome.genes", "PROBLEM"),
        "SELECTOR_STRATEGIES": ("neatpipe.genome.genes", "SELECTOR_STRATEGIES"),
        "ConnectionGene": ("neatpipe.genome.genes", "ConnectionGene"),
        "NodeGene": ("neatpipe.genome.genes", "NodeGene"),
        "Role": ("neatpipe.genome.genes", "Role"),
        "PipelineGenome": ("neatpipe.genome.genome", "PipelineGenome"),
        "make_neat_config": ("neatpipe.genome.genome", "make_neat_config"),
        "DEFAULT_MODELS": ("neatpipe.genome.settings", "DEFAULT_MODELS"),
        "GenomeSettings": ("neatpipe.genome.settings", "GenomeSettings"),
        "PipelineGenomeConfig": ("neatpipe.genome.settings", "PipelineGenomeConfig"),
        "write_neat_config": ("neatpipe.genome.settings", "write_neat_config"),
        "Rules": ("neatpipe.genome.structure", "Rules"),
        "find_problems": ("neatpipe.genome.structure", "find_problems"),
    },
    globals(),
)


__all__ = [
    "DEFAULT_MODELS",
    "FEEDBACK_CHOICES",
    "OUTPUT",
    "PROBLEM",
    "SELECTOR_STRATEGIES",
    "Complexity",
    "ConfigError",
    "ConnectionGene",
    "GenomeError",
    "GenomeSettings",
    "Issue",
    "LoadedGenome",
    "NodeGene",
    "PipelineGenome",
    "PipelineGenomeConfig",
    "Role",
    "Rules",
    "atomic_write_text",
    "behaviour_hash",
    "canonical_form",
    "complexity",
    "find_problems",
    "from_networkx",
    "genome_from_data",
    "genome_to_data",
    "load_genome",
    "make_neat_config",
    "read_genome",
    "save_genome",
    "to_networkx",
    "write_neat_config",
]
