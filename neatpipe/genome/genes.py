"""Node and connection genes of a pipeline genome.

Genes are small frozen dataclasses: a genome changes by replacing genes, never by editing one in
place, so two genomes never share a gene that one of them could change under the other, and a
genome pickles as plain data.

A node gene has one role and only the fields that role uses (``ROLE_FIELDS``); the others stay
``None``. Keeping one gene class for every role makes crossover, hashing and file I/O one loop over
fields instead of one per role.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import Enum
from typing import Any

from neatpipe.vocab import FEEDBACK_CHOICES as FEEDBACK_CHOICES  # which tests an executor reports

#: The pin every generator reads (the problem statement). Not a node gene.
PROBLEM = -1
#: The pin the pipeline's final candidate goes to. Not a node gene.
OUTPUT = 0
#: Names the pins have in graph files and in networkx graphs.
PIN_NAMES = {PROBLEM: "problem", OUTPUT: "output"}


class Role(str, Enum):
    """What a node does. The string values are the names used in graph files."""

    GENERATOR = "generator"  # writes a candidate from the problem
    EXECUTOR = "executor"  # runs one candidate against tests; its result is feedback
    ANALYZER = "analyzer"  # explains an executor's failure in words
    REFINER = "refiner"  # rewrites the executor's candidate from the feedback, iterations times
    SELECTOR = "selector"  # picks the best of two or more candidates

    def __str__(self) -> str:
        return self.value


#: Roles whose node calls a language model.
MODEL_ROLES = frozenset({Role.GENERATOR, Role.ANALYZER, Role.REFINER})
#: Roles whose node emits a candidate program (may feed executors, selectors or the output).
CANDIDATE_ROLES = frozenset({Role.GENERATOR, Role.REFINER, Role.SELECTOR})

_MODEL_FIELDS = ("model", "prompt", "temperature", "max_tokens")
#: The attribute fields each role uses, in the order files show them.
ROLE_FIELDS: dict[Role, tuple[str, ...]] = {
    Role.GENERATOR: _MODEL_FIELDS,
    Role.ANALYZER: _MODEL_FIELDS,
    Role.REFINER: (*_MODEL_FIELDS, "iterations", "early_stop"),
    Role.EXECUTOR: ("feedback", "time_limit"),
    Role.SELECTOR: ("strategy",),
}

#: Selector strategies. ``visible-tests``: most visible tests passed, ties broken by agreement of
#: outputs across candidates, then by the shortest code. ``agreement``: skip the tests, most agreeing
#: outputs first, then the shortest. A final tie always goes to the lexicographically smallest code,
#: so a selector treats its inputs as a set and their order never matters.
SELECTOR_STRATEGIES = ("visible-tests", "agreement")


@dataclass(frozen=True)
class NodeGene:
    """One stage of the pipeline. ``key`` is the node's identity and, because new node keys come
    from neat-python's innovation tracker, also its historical marking."""

    key: int
    role: Role
    model: str | None = None  # a name from the experiment's model pool
    prompt: int | None = None  # index into the role's prompt pool (neatpipe.genome.prompts)
    temperature: float | None = None
    max_tokens: int | None = None  # token budget of one model call
    iterations: int | None = None  # refiner: how many execute -> (analyze) -> refine rounds at most
    early_stop: bool | None = None  # refiner: stop once a candidate passes the visible tests
    feedback: str | None = None  # executor: which tests give feedback, one of FEEDBACK_CHOICES
    time_limit: float | None = None  # executor: CPU seconds one program may use
    strategy: str | None = None  # selector: one of SELECTOR_STRATEGIES

    @property
    def calls_model(self) -> bool:
        return self.role in MODEL_ROLES

    def attributes(self) -> dict[str, Any]:
        """The role's fields and their values, in file order."""
        return {name: getattr(self, name) for name in ROLE_FIELDS[self.role]}

    def with_key(self, key: int) -> NodeGene:
        return replace(self, key=key)


ATTRIBUTE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(NodeGene) if f.name not in ("key", "role"))


@dataclass(frozen=True)
class ConnectionGene:
    """A typed edge ``key = (source, target)``; ``innovation`` is its historical marking from
    neat-python's innovation tracker. Every connection gene is enabled: a removed edge is deleted,
    since a disabled wire in a typed pipeline has no behaviour to return to."""

    key: tuple[int, int]
    innovation: int

    @property
    def source(self) -> int:
        return self.key[0]

    @property
    def target(self) -> int:
        return self.key[1]

    enabled = True  # neat-python's reporters and size() speak of enabled connections
