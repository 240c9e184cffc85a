"""Reading the pipeline's messages: which role is asked, about which problem, with which feedback.

The synthetic coder answers the same requests a real model gets, so it has to recover from their text
what a model would understand: the role (from the system prompt of a known prompt variant, else from the
instructions or the sections present), the benchmark problem (by its exact task text, by an MBPP
description whatever visible tests are shown, or by searching the message for a known prompt) and the
previous code with its feedback. The message layout is :mod:`neatpipe.runtime.messages`'s; this module
only reads it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from neatpipe.bench.problem import Problem
from neatpipe.genome.prompts import PROMPT_POOLS
from neatpipe.models.types import ChatRequest
from neatpipe.runtime import messages as M

_SYSTEM_ROLES: dict[str, str] = {v.system: role for role, pool in PROMPT_POOLS.items() for v in pool}


def norm(text: str) -> str:
    """Text compared line by line without trailing spaces or blank lines."""
    return "\n".join(line.rstrip() for line in text.strip().splitlines() if line.strip())


@dataclass(frozen=True)
class Reading:
    """What one request asks: the role, the problem (None: unknown), the user message and its feedback."""

    role: str
    problem: Problem | None
    user: str
    feedback: M.Feedback


def infer_role(system: str | None, sections: Mapping[str, str]) -> str:
    """The role a request asks for: from its system prompt when that is a known variant's, else from the
    instructions' first words, else from the sections present (code or a result: a refiner or analyzer)."""
    if system is not None and system in _SYSTEM_ROLES:
        return _SYSTEM_ROLES[system]
    instructions = sections.get(M.INSTRUCTIONS_HEADING, "")
    for role, prefix in M.INSTRUCTION_PREFIXES.items():
        if instructions.startswith(prefix):
            return role
    if M.CODE_HEADING in sections or M.RESULT_HEADING in sections:
        return "analyzer" if "do not write code" in instructions.lower() else "refiner"
    return "generator"


class ProblemIndex:
    """Finds the problem a user message is about: exact task text, then MBPP description, then search."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        self.by_text: dict[str, list[Problem]] = {}
        self.by_prompt: dict[str, list[Problem]] = {}
        for p in self.problems:
            self.by_text.setdefault(norm(p.task_text), []).append(p)
            self.by_prompt.setdefault(norm(p.prompt), []).append(p)
        self.prompts = [(norm(p.prompt), p) for p in self.problems if p.prompt.strip()]

    @staticmethod
    def _pick(candidates: Sequence[Problem], user: str) -> Problem:
        if len(candidates) > 1:
            named = [p for p in candidates if re.search(rf"\b{re.escape(p.entry_point)}\b", user)]
            candidates = named or candidates
            tested = [p for p in candidates if p.visible_tests and p.visible_tests[0] in user]
            candidates = tested or candidates
        return min(candidates, key=lambda p: (p.benchmark, p.task_id))

    def find(self, user: str, sections: Mapping[str, str]) -> Problem | None:
        task = sections.get(M.TASK_HEADING)
        if task is not None:
            exact = self.by_text.get(norm(task))
            if exact:
                return self._pick(exact, user)
            first = norm(task.split("\nYour code should pass")[0])
            described = self.by_prompt.get(first)
            if described:
                return self._pick(described, user)
        text = norm(user)
        found = [p for prompt, p in self.prompts if prompt in text]
        if not found:
            return None
        longest = max(len(p.prompt) for p in found)
        return self._pick([p for p in found if len(p.prompt) == longest], user)


def read_request(request: ChatRequest, index: ProblemIndex) -> Reading:
    """What ``request`` asks: its role, its problem (None when ``index`` knows none) and its feedback."""
    system = next((m.content for m in request.messages if m.role == "system"), None)
    user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    sections = M.split_sections(user)
    role = infer_role(system, sections)
    return Reading(role, index.find(user, sections), user, M.parse_feedback(user))
