"""Checkpoints of an evolution run: the population of the next generation, written atomically.

neat-python's own ``Checkpointer`` writes straight into the final file, so a run killed while it writes
leaves a truncated file that looks whole. Here a checkpoint goes to a temporary file in the same folder,
is flushed to disk, and replaces the previous one with ``os.replace``; a reader sees the old checkpoint
or the new one, never half of one.

A checkpoint holds what ``neat.Population`` needs to continue (population, species, generation number,
the innovation tracker, the ``random`` module's state) plus the best genome seen so far. The
``neat.Config`` is not stored: it is rebuilt from the run's experiment, so a resumed run uses the same
settings it started with (the run directory keeps the resolved experiment).
"""

from __future__ import annotations

import gzip
import os
import pickle
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neatpipe.errors import NeatpipeError
from neatpipe.genome.fileio import atomic_write_with

CHECKPOINT_FORMAT = "neatpipe-checkpoint/1"


class CheckpointError(NeatpipeError, RuntimeError):
    """A checkpoint file that cannot be read or does not belong to this run; names the file."""


@dataclass
class Checkpoint:
    """The state to continue from: the population of ``generation``, not yet evaluated."""

    generation: int
    population: dict[int, Any]
    species: Any
    innovation_tracker: Any
    random_state: Any
    best_genome: Any = None
    extra: dict[str, Any] | None = None

    def restore(self, config: Any) -> Any:
        """A ``neat.Population`` for ``config`` that continues from this checkpoint."""
        import neat

        random.setstate(self.random_state)
        population = neat.Population(config, (self.population, self.species, self.generation))
        if self.innovation_tracker is not None:
            population.reproduction.innovation_tracker = self.innovation_tracker
            config.genome_config.innovation_tracker = self.innovation_tracker
        population.best_genome = self.best_genome
        return population


def capture(population: Any, config: Any, extra: dict[str, Any] | None = None) -> Checkpoint:
    """The state of ``population`` (after reproduction: its ``generation`` is the next to evaluate)."""
    tracker = getattr(population.reproduction, "innovation_tracker", None)
    if tracker is None:
        tracker = getattr(config.genome_config, "innovation_tracker", None)
    return Checkpoint(
        generation=population.generation,
        population=population.population,
        species=population.species,
        innovation_tracker=tracker,
        random_state=random.getstate(),
        best_genome=population.best_genome,
        extra=extra,
    )


def save_checkpoint(path: str | os.PathLike[str], checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` to ``path`` atomically (temporary file, fsync, rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    species = checkpoint.species
    reporters = getattr(species, "reporters", None)

    def write(tmp: str) -> None:
        with gzip.open(tmp, "wb", compresslevel=5) as f:
            pickle.dump((CHECKPOINT_FORMAT, checkpoint), f, protocol=pickle.HIGHEST_PROTOCOL)

    if reporters is not None:  # reporters hold open files and progress bars: not part of the state
        species.reporters = None
    try:
        atomic_write_with(target, write)
    finally:
        if reporters is not None:
            species.reporters = reporters
    return target


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    p = Path(path)
    try:
        with gzip.open(p, "rb") as f:
            data = pickle.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{p}: no checkpoint here") from None
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError) as exc:
        raise CheckpointError(f"{p}: not a readable neatpipe checkpoint ({exc})") from None
    if not (isinstance(data, tuple) and len(data) == 2 and data[0] == CHECKPOINT_FORMAT):
        raise CheckpointError(f"{p}: not a neatpipe checkpoint (expected format {CHECKPOINT_FORMAT})")
    return data[1]
