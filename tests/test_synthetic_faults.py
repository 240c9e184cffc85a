"""The synthetic coder's fault maker: every documented kind of mistake is made, at one site, with the
edit its site name says, never inside a ``while`` loop for runtime faults, and a node feeds at most one
rule of a kind (the candidates' order, which answers draw from, rests on that). Nothing here runs code:
whether a candidate really fails is the checker's business (tests/test_synthetic.py)."""

from __future__ import annotations

import ast
import re

import pytest

from neatpipe.bench import load_humaneval, reference_answer
from neatpipe.bench.problem import Problem
from neatpipe.synthetic import ERROR_KINDS, fault_candidates
from neatpipe.synthetic.faults import ASSERTION_RULES, TYPE_RULES, FaultMaker

# one reference with a site for every rule; the while loop (lines 22-23) must get no runtime fault
REFERENCE = """import math


def helper(a, b):
    s = a + b
    return s


def f(xs, word):
    total = 0
    flag = True
    for i in range(len(xs)):
        if xs[i] < 3 and not word.isupper():
            total += xs[i] * 2.5
    evens = [x for x in xs if x % 2 == 0]
    best = max(sorted(xs)) if xs else None
    if total == 1:
        total = helper(total, 1)
    count = total + 1
    for j in 4:
        pass
    while total > 100:
        total = total - 1
    label = " ".join([word.lower(), str(count), str(best)])
    return math.sqrt(len(evens)) if label and flag else word
"""
WHILE_LINES = {22, 23}

RULES = {
    "name": {"typo", "builtin", "import"},
    "syntax": {"colon", "assign-in-condition", "unclosed"},
    "type": {"range-dropped", "unwrap-str", "missing-arg", "str-constant"},
    "assertion": {
        "const",
        "bool",
        "compare",
        "arith",
        "boolop",
        "drop-not",
        "float",
        "builtin-swap",
        "method",
        "join-sep",
        "len",
        "sorted-reverse",
        "return-param",
        "drop-filter",
        "range-stop",
    },
}


def crafted(reference: str = REFERENCE) -> Problem:
    return Problem(
        task_id="crafted/1",
        benchmark="mbpp",
        prompt="Combine the numbers and the word.",
        entry_point="f",
        context="",
        signature="def f(xs, word):",
        visible_tests=(),
        hidden_tests=(),
        test_setup="",
        reference_solution=reference,
    )


def rule_of(site: str) -> str:
    head = site.split("@")[0]
    if re.fullmatch(r"(min|max|any|all|sum)->\w+", head):
        return "builtin-swap"
    return re.split(r"[ >]|->", head)[0].rstrip("-")


def test_every_documented_mistake_is_made_at_one_site() -> None:
    maker = FaultMaker(crafted())
    for kind in ERROR_KINDS:
        faults = list(getattr(maker, kind)())
        assert {rule_of(f.site) for f in faults} == RULES[kind], kind
        for fault in faults:
            assert fault.kind == kind and fault.code != REFERENCE
            if kind in ("type", "assertion"):
                assert fault.line not in WHILE_LINES, fault.site
            if not fault.site.startswith("import"):
                before, after = REFERENCE.splitlines(), fault.code.splitlines()
                changed = [i + 1 for i, (x, y) in enumerate(zip(before, after, strict=True)) if x != y]
                assert changed == [fault.line], fault.site
                assert fault.key and fault.key in fault.code


def test_edits_are_the_ones_their_sites_name() -> None:
    maker = FaultMaker(crafted())
    by_site = {f.site: f for kind in ERROR_KINDS for f in getattr(maker, kind)()}
    line = {site: f.code.splitlines()[f.line - 1].strip() for site, f in by_site.items()}
    assert line["compare <-><=@13:11"] == "if xs[i] <= 3 and not word.isupper():"
    assert line["drop-not@13:25"] == "if xs[i] < 3 and word.isupper():"
    assert line["drop-filter@15:24"] == "evens = [x for x in xs]"
    assert line["range-stop + 1@12:13"] == "for i in range(len(xs) + 1):"
    assert line["missing-arg@18:16"] == "total = helper(total)"
    assert line["return-param@6:4"] == "return a"
    assert line["str-constant@19:12"] == "count = total + '1'"
    assert line["range-dropped@12"] == "for i in len(xs):"
    assert line["colon@13"] == "if xs[i] < 3 and not word.isupper()"
    assert line["assign-in-condition@17"] == "if total = 1:"
    assert "import math" not in by_site["import import math@1"].code
    assert by_site["import import math@1"].key == "import math"
    assert line["builtin len->length@12:19"] == "for i in range(length(xs)):"


def test_a_node_feeds_at_most_one_rule_of_a_kind() -> None:
    problems = [crafted(), *load_humaneval()]
    for problem in problems:
        maker = FaultMaker(problem)
        for rules in (TYPE_RULES, ASSERTION_RULES):
            for node in maker.outside_while():
                matched = [rule.__name__ for rule in rules if next(iter(rule(maker, node)), None)]
                assert len(matched) <= 1, (problem.task_id, ast.dump(node)[:80], matched)


def test_fault_candidates_are_single_site_edits() -> None:
    problem = load_humaneval()["HumanEval/0"]
    reference = reference_answer(problem, "chat")
    for kind in ERROR_KINDS:
        for fault in fault_candidates(problem, kind):
            assert fault.kind == kind and fault.code != reference
            changed = [
                i
                for i, (x, y) in enumerate(zip(reference.splitlines(), fault.code.splitlines(), strict=False))
                if x != y
            ]
            assert len(changed) <= 1 or kind == "name"  # a removed import shifts the lines after it
    with pytest.raises(ValueError, match="unknown fault kind 'logic'"):
        fault_candidates(problem, "logic")


def test_candidates_compile_except_syntax_faults_and_never_repeat() -> None:
    problem = crafted()
    for kind in ERROR_KINDS:
        codes = [f.code for f in fault_candidates(problem, kind)]
        assert len(codes) == len(set(codes)) > 0
        for code in codes:
            if kind == "syntax":
                with pytest.raises(SyntaxError):
                    compile(code, "<candidate>", "exec")
            else:
                compile(code, "<candidate>", "exec")
