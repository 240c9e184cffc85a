"""Pipeline genomes: genes, the neat-python genome plugin, mutation and repair, graph files.

``PipelineGenome`` is the ``genome_type`` of a ``neat.Config``; ``make_neat_config`` builds one from
dictionaries. Graph files (YAML, JSON, GraphML; DOT, SVG and PNG pictures) are read and written by
``load_genome`` / ``save_genome``. See docs/genome-format.md.
"""

from neatpipe.genome.canonical import Complexity, behaviour_hash, canonical_form, complexity
from neatpipe.genome.errors import ConfigError, GenomeError, Issue
from neatpipe.genome.fileio import (
    LoadedGenome,
    atomic_write_text,
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
