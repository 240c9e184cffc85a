"""One problem type for every benchmark, and a named, recorded set of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """A coding problem as a pipeline sees it, with the tests kept apart by who may see them.

    ``visible_tests`` may be shown to a model as feedback; ``hidden_tests`` score the final answer and
    never reach a model unless an experiment asks for oracle feedback. ``context`` is the prompt's own
    code that a program needs (imports, helper functions the prompt defines), added to every candidate
    so that a correct function never fails on a missing ``List`` or ``encode_cyclic``.
    """

    task_id: str
    benchmark: str
    prompt: str  # what the model is asked: HumanEval's signature and docstring, MBPP's description
    entry_point: str
    context: str  # imports and helper definitions from the prompt ("" when the prompt has no code)
    signature: str  # the entry point's ``def`` line(s), for chat-style answers and feedback text
    visible_tests: tuple[str, ...]  # one executable check per item, e.g. "assert f(1) == 2"
    hidden_tests: tuple[str, ...]  # HumanEval: ("check(f)",) after ``test_setup``; MBPP: its asserts
    test_setup: str  # trusted code the hidden tests need (HumanEval's ``check``; MBPP's test imports)
    reference_solution: str  # a whole program that passes the hidden tests
    prompt_is_code: bool = False  # True when a completion-style answer continues the prompt (HumanEval)
    time_limit_s: float = 6.0
    difficulty: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # HumanEval+ / MBPP+: the ``plus`` test set, run after ``test_setup`` and ``plus_setup`` (the extra
    # inputs); it holds the base checks too, so passing it means passing base and plus, as EvalPlus scores
    plus_tests: tuple[str, ...] = ()
    plus_setup: str = ""

    @property
    def task_text(self) -> str:
        """The task as a model is shown it: HumanEval's prompt, MBPP's description with its visible asserts."""
        if self.prompt_is_code:
            return self.prompt
        tests = "\n".join(self.visible_tests)
        noun = "test" if len(self.visible_tests) == 1 else "tests"
        return f"{self.prompt}\nYour code should pass the following {noun}:\n{tests}"


@dataclass(frozen=True)
class ProblemSet:
    """Problems of one benchmark plus the options that produced them, recorded next to every score."""

    benchmark: str
    problems: tuple[Problem, ...]
    options: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __len__(self) -> int:
        return len(self.problems)

    def __iter__(self):
        return iter(self.problems)

    def __getitem__(self, task_id: str) -> Problem:
        for p in self.problems:
            if p.task_id == task_id:
                return p
        raise KeyError(f"{self.benchmark} has no problem {task_id!r}")

    @property
    def task_ids(self) -> tuple[str, ...]:
        return tuple(p.task_id for p in self.problems)

    def select(self, task_ids) -> ProblemSet:
        """The problems with these ids, in the order given; an unknown id is an error naming it."""
        by_id = {p.task_id: p for p in self.problems}
        missing = [t for t in task_ids if t not in by_id]
        if missing:
            raise KeyError(f"{self.benchmark} has no problem(s) {', '.join(map(repr, missing[:5]))}")
        return ProblemSet(self.benchmark, tuple(by_id[t] for t in task_ids), dict(self.options))

    def describe(self) -> dict[str, Any]:
        """What to write next to a score: benchmark, size and the loading options (visible-test policy...)."""
        return {"benchmark": self.benchmark, "problems": len(self.problems), **self.options}
