"""Errors that say where a genome is wrong: which file, node, edge or field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a genome. ``where`` names the node, edge or field (``node 'gen'``,
    ``edge gen -> exec``, ``node 'gen' field 'temperature'``); ``message`` says what is wrong."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class GenomeError(ValueError):
    """A genome, or a graph file describing one, breaks a rule of the pipeline format.

    ``problems`` lists every problem found (the message shows them all), ``source`` names the file
    when there is one.
    """

    def __init__(self, problems: Sequence[Problem] | str, source: str | None = None) -> None:
        if isinstance(problems, str):
            problems = (Problem("", problems),)
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.source = source
        head = f"{source}: " if source else ""
        if len(self.problems) == 1:
            text = head + str(self.problems[0])
        else:
            text = head + f"{len(self.problems)} problems:\n" + "\n".join(f"  {p}" for p in self.problems)
        super().__init__(text)

    def with_source(self, source: str) -> GenomeError:
        """The same problems, attributed to ``source`` (a file name)."""
        return GenomeError(self.problems, source)


class ConfigError(ValueError):
    """A ``[PipelineGenome]`` setting is missing, unknown or out of range; the message names it."""
