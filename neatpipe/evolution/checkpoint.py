"""Checkpoints of an evolution run: everything that decides the generations still to come.

A checkpoint is taken after a generation has been evaluated, logged and reproduced: it holds the next
generation's population, the species set (members, representatives, fitness histories and its id
counter), the reproduction's ancestry, the innovation tracker, the species
compatibility threshold (a controller moves it), the ``random`` module's state and the best genome
seen (the genome counter is not kept: neat-python restarts it past the largest key, which is where
it stood, since every child of the last reproduction is in the population). :meth:`Checkpoint.restore`
puts every one of them back *after* ``neat.Population`` is built, since
building one re-seeds ``random`` from the config's seed; a restored run then draws exactly what the
uninterrupted run would have drawn.

Checkpoints are pickles, and unpickling runs code: a run directory is trusted input. Each checkpoint is
written atomically under its own name (``checkpoints/gen-0007.pkl.gz``) and its SHA-256 is recorded in
the run's state file (``run.json``) only after the file is complete, and checked before the file is
unpickled; a torn, corrupted or swapped file is reported as such and never loaded. A crash between the
two writes leaves ``run.json`` naming the previous checkpoint, which is kept until the next one is
recorded, so the run resumes one generation earlier and recomputes it (from its stored results).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neatpipe.errors import NeatpipeError
from neatpipe.io import atomic_write_bytes

CHECKPOINT_FORMAT = "neatpipe-checkpoint/2"
CHECKPOINTS_DIR = "checkpoints"


class CheckpointError(NeatpipeError, RuntimeError):
    """A checkpoint file that cannot be read, or whose content is not what was recorded; names the file."""


def checkpoint_name(generation: int) -> str:
    """The checkpoint file of the population that starts ``generation``, relative to the run directory."""
    return f"{CHECKPOINTS_DIR}/gen-{generation:04d}.pkl.gz"


@dataclass
class Checkpoint:
    """The state to continue from: the population of ``generation``, not yet evaluated."""

    generation: int
    population: dict[int, Any]
    species: Any
    innovation_tracker: Any
    random_state: Any
    best_genome: Any = None
    ancestors: dict[int, Any] = field(default_factory=dict)
    compatibility_threshold: float | None = None
    extra: dict[str, Any] | None = None

    def restore(self, config: Any) -> Any:
        """A ``neat.Population`` for ``config`` that continues from this checkpoint."""
        import neat

        if self.compatibility_threshold is not None:
            config.species_set_config.compatibility_threshold = self.compatibility_threshold
        population = neat.Population(config, (self.population, self.species, self.generation))
        random.setstate(self.random_state)  # after the constructor, which re-seeds from config.seed
        # the pickled species set holds a copy of its config: point it at the live one, whose
        # threshold a controller may move
        population.species.species_set_config = config.species_set_config
        # neat-python's constructor set the genome counter past the population's largest key: every child
        # reproduction made is in that population, so this is where the counter stood
        reproduction = population.reproduction
        reproduction.ancestors = dict(self.ancestors)
        if self.innovation_tracker is not None:
            reproduction.innovation_tracker = self.innovation_tracker
            config.genome_config.innovation_tracker = self.innovation_tracker
        population.best_genome = self.best_genome
        return population


def capture(
    population: Any, config: Any, extra: dict[str, Any] | None = None, generation: int | None = None
) -> Checkpoint:
    """The state of ``population`` after reproduction, as the start of ``generation`` (default: its
    ``generation``, the next to evaluate once ``Population.run`` has returned)."""
    reproduction = population.reproduction
    tracker = getattr(reproduction, "innovation_tracker", None)
    if tracker is None:
        tracker = getattr(config.genome_config, "innovation_tracker", None)
    return Checkpoint(
        generation=population.generation if generation is None else generation,
        population=population.population,
        species=population.species,
        innovation_tracker=tracker,
        random_state=random.getstate(),
        best_genome=population.best_genome,
        ancestors=dict(getattr(reproduction, "ancestors", {}) or {}),
        compatibility_threshold=float(config.species_set_config.compatibility_threshold),
        extra=extra,
    )


def checkpoint_bytes(checkpoint: Checkpoint) -> bytes:
    """The file content of ``checkpoint`` (gzip of a pickle; reporters and open files left out)."""
    species = checkpoint.species
    reporters = getattr(species, "reporters", None)
    if reporters is not None:  # reporters hold open files and progress bars: not part of the state
        species.reporters = None
    try:
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=5, mtime=0) as f:
            pickle.dump((CHECKPOINT_FORMAT, checkpoint), f, protocol=pickle.HIGHEST_PROTOCOL)
        return buffer.getvalue()
    finally:
        if reporters is not None:
            species.reporters = reporters


def save_checkpoint(path: str | os.PathLike[str], checkpoint: Checkpoint) -> str:
    """Write ``checkpoint`` to ``path`` atomically (temporary file, fsync, rename); returns its SHA-256,
    which the caller records so that :func:`load_checkpoint` can check it."""
    data = checkpoint_bytes(checkpoint)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, data)
    return hashlib.sha256(data).hexdigest()


def load_checkpoint(path: str | os.PathLike[str], sha256: str | None = None) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`. With ``sha256`` (the digest recorded when it
    was written) the file's bytes are checked before anything is unpickled."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{p}: no checkpoint here") from None
    except OSError as exc:
        raise CheckpointError(f"{p}: cannot read the checkpoint ({exc.strerror})") from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise CheckpointError(
            f"{p}: the checkpoint's content differs from the digest recorded when it was written "
            f"(sha256 {sha256[:12]}...): the file is corrupted or was replaced, so it is not loaded. "
            "Restore the file, or start the run again"
        )
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb") as f:
            loaded = pickle.load(f)
    except (OSError, EOFError, ValueError, pickle.UnpicklingError, AttributeError, ImportError, IndexError,
            TypeError, KeyError) as exc:  # fmt: skip
        raise CheckpointError(f"{p}: not a readable neatpipe checkpoint ({type(exc).__name__})") from None
    if not (isinstance(loaded, tuple) and len(loaded) == 2 and loaded[0] == CHECKPOINT_FORMAT):
        raise CheckpointError(f"{p}: not a neatpipe checkpoint (expected format {CHECKPOINT_FORMAT})")
    return loaded[1]
