"""Errors that say where a genome is wrong: which file, node, edge or field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from neatpipe.errors import NeatpipeError, problems_message


@dataclass(frozen=True)
class Issue:
    """One thing wrong with a genome. ``where`` names the node, edge or field (``node 'gen'``,
    ``edge gen -> exec``, ``node 'gen' field 'temperature'``); ``message`` says what is wrong."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class GenomeError(NeatpipeError, ValueError):
    """A genome, or a graph file describing one, breaks a rule of the pipeline format.

    ``problems`` lists every problem found (the message shows them all), ``source`` names the file
    when there is one.
    """

    def __init__(self, problems: Sequence[Issue] | str, source: str | None = None) -> None:
        if isinstance(problems, str):
            problems = (Issue("", problems),)
        self.problems: tuple[Issue, ...] = tuple(problems)
        self.source = source
        super().__init__(problems_message(self.problems, source))


class ConfigError(NeatpipeError, ValueError):
    """A ``[PipelineGenome]`` setting is missing, unknown or out of range; the message names it."""
