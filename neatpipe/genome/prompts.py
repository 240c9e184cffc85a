"""Prompt pools: the named system prompts a model-calling node can use, per role.

A genome's node gene refers to a prompt by its index in its role's pool, so evolution can change a
prompt with a single integer, and graph files show the variant's name. The order of each pool is
part of the genome format: append new variants at the end, never reorder or remove one, or saved
genomes would silently point at a different prompt.

Only the system texts live here; the runtime adds the user-message templates (the problem, the
candidate, the feedback).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class PromptVariant:
    """One named system prompt of a role's pool.

    ``name`` is what graph files show (short, kebab-case, unique within the role); ``description``
    says in a few words what the variant tries, for summaries and for matching imported prompts.
    """

    name: str
    system: str
    description: str


GENERATOR_PROMPTS: tuple[PromptVariant, ...] = (
    PromptVariant(
        name="plain-expert",
        system=(
            "You are an expert Python programmer. Write a complete, correct Python function that "
            "solves the task. Reply with the code only, in one Python code block."
        ),
        description="a plain expert programmer that answers with code only",
    ),
    PromptVariant(
        name="competitive-programmer",
        system=(
            "You are a competitive programmer. Work out the algorithm first, choose the simplest "
            "approach that is fast enough, then write a clean Python solution. Reply with the code "
            "only, in one Python code block."
        ),
        description="a competitive programmer that plans the algorithm before coding",
    ),
    PromptVariant(
        name="edge-cases",
        system=(
            "You are a careful Python developer. Read the problem carefully and think about edge "
            "cases (empty inputs, single elements, negative numbers, duplicates, boundaries) before "
            "you write a correct implementation. Reply with the code only, in one Python code block."
        ),
        description="think about edge cases before writing a correct implementation",
    ),
)

ANALYZER_PROMPTS: tuple[PromptVariant, ...] = (
    PromptVariant(
        name="root-cause",
        system=(
            "You review failing Python code. Given the task, the code and the test failure, explain "
            "in a few sentences the root cause of the failure: which line or assumption is wrong and "
            "why. Do not write code."
        ),
        description="explain the root cause of a failure in words, without code",
    ),
    PromptVariant(
        name="minimal-fix",
        system=(
            "You are a code reviewer. Given the task, the failing code and the error, describe the "
            "smallest change that would make the code correct, as a short list of concrete edits. "
            "Do not rewrite the whole function."
        ),
        description="describe the smallest change that fixes the failure",
    ),
)

REFINER_PROMPTS: tuple[PromptVariant, ...] = (
    PromptVariant(
        name="debugger-rewrite",
        system=(
            "You are a debugger. The Python code below is wrong. Study the failure, find the bug, "
            "and rewrite the solution so that it is correct. Reply with the complete code only, in "
            "one Python code block."
        ),
        description="debug the failure and rewrite the whole solution",
    ),
    PromptVariant(
        name="keep-signature",
        system=(
            "Fix the Python function below based on the error feedback. Keep the function name, "
            "parameters and signature unchanged. Reply with the corrected function only, in one "
            "Python code block, nothing else."
        ),
        description="fix the function from the error feedback; do not change the signature",
    ),
    PromptVariant(
        name="pass-all-tests",
        system=(
            "Some tests fail on the Python code below. Change the code so that every test passes, "
            "including the ones shown in the feedback, without special-casing the test inputs. "
            "Reply with the complete code only, in one Python code block."
        ),
        description="make all tests pass without special-casing them",
    ),
)

PROMPT_POOLS: Mapping[str, tuple[PromptVariant, ...]] = {
    "generator": GENERATOR_PROMPTS,
    "analyzer": ANALYZER_PROMPTS,
    "refiner": REFINER_PROMPTS,
}


def prompt_pool(role: str) -> tuple[PromptVariant, ...]:
    """The ordered prompt variants of ``role``; a role that calls no model has none."""
    try:
        return PROMPT_POOLS[role]
    except KeyError:
        raise KeyError(
            f"role {role!r} has no prompt pool (roles with one: {', '.join(PROMPT_POOLS)})"
        ) from None


def prompt_variant(role: str, index: int) -> PromptVariant:
    """The variant at ``index`` in ``role``'s pool, with an error that names both when out of range."""
    pool = prompt_pool(role)
    if not 0 <= index < len(pool):
        raise IndexError(f"{role} prompt index {index} is out of range (pool has {len(pool)} variants)")
    return pool[index]


def prompt_index(role: str, name: str) -> int:
    """The index of the variant called ``name`` in ``role``'s pool."""
    for i, variant in enumerate(prompt_pool(role)):
        if variant.name == name:
            return i
    names = ", ".join(v.name for v in prompt_pool(role))
    raise KeyError(f"unknown {role} prompt {name!r} (known: {names})")


def default_pool_sizes() -> dict[str, int]:
    """Pool size per model-calling role: the default range of prompt indices a genome may use."""
    return {role: len(pool) for role, pool in PROMPT_POOLS.items()}
