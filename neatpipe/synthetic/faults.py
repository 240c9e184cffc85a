"""The faults the synthetic coder writes: the reference solution with one real, executable mistake.

A pipeline that executes and refines only beats one that does not if the wrong answers fail the way a
small model's do: a misspelt variable raises NameError at the right line, a dropped colon is a
SyntaxError, a changed comparison makes a test's assert fail. So faults are not labels but edits of the
reference source at one site found with :mod:`ast` (the positions map back to exact character offsets),
each described by its cause and the text an analysis that found it would quote. This module only makes
candidates; :mod:`neatpipe.synthetic.checker` runs them to keep the ones that fail as intended.

Each fault kind is a list of small rules, one per kind of mistake, applied to every node in
:func:`ast.walk` order; a node matches at most one rule of a kind, and the order of the candidates is
part of the coder's behaviour (answers draw from it), so it must not change.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import math
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from neatpipe.bench.assemble import reference_answer
from neatpipe.bench.problem import Problem
from neatpipe.synthetic.presets import ERROR_KINDS, ERROR_TYPES


@dataclass(frozen=True)
class Fault:
    """The reference solution with one fault: the code, where the fault is and what the right fix is.

    ``key`` is the text an analysis that found the cause quotes (the faulty line, the misspelt name or
    the missing import); ``line`` is the 1-based line of the fault in ``code``.
    """

    kind: str
    code: str
    site: str
    cause: str
    key: str
    line: int

    @property
    def error_type(self) -> str:
        return ERROR_TYPES[self.kind]


def _parse(code: str) -> ast.Module:
    with warnings.catch_warnings():  # MBPP references use invalid escapes such as "\d"
        warnings.simplefilter("ignore")
        return ast.parse(code)


def _compile_error(code: str) -> type[BaseException] | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            compile(code, "<candidate>", "exec")
        except (SyntaxError, ValueError) as exc:
            return type(exc)
    return None


class _Source:
    """Character offsets for AST positions (which count UTF-8 bytes within a line)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode()[:col].decode(errors="ignore"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (
            self.offset(node.lineno, node.col_offset),  # type: ignore[attr-defined]
            self.offset(node.end_lineno, node.end_col_offset),  # type: ignore[attr-defined]
        )

    def segment(self, node: ast.AST) -> str:
        a, b = self.span(node)
        return self.text[a:b]

    def line_at(self, offset: int) -> int:
        """1-based line number of a character offset."""
        lo, hi = 0, len(self.lines)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1


def _edit(src: _Source, start: int, end: int, new: str) -> tuple[str, int]:
    """The source with ``[start, end)`` replaced by ``new``, and the 1-based line of the edit."""
    return src.text[:start] + new + src.text[end:], src.line_at(start)


def line_text(code: str, line: int) -> str:
    """The 1-based ``line`` of ``code`` without its indentation ("" when there is no such line)."""
    lines = code.splitlines()
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


_BUILTIN_MISNAMES = {
    "sorted": "sort",
    "reversed": "reverse",
    "len": "length",
    "max": "maximum",
    "min": "minimum",
    "abs": "absolute",
    "enumerate": "enumerated",
}
_COMPARE_SWAPS: dict[type, tuple[str, str, str]] = {
    # op type: (regex of its text, replacement, a word for it)
    ast.Lt: (r"(?<![<>=!])<(?![<=])", "<=", "<"),
    ast.LtE: (r"<=", "<", "<="),
    ast.Gt: (r"(?<![<>=!-])>(?![>=])", ">=", ">"),
    ast.GtE: (r">=", ">", ">="),
    ast.Eq: (r"==", "!=", "=="),
    ast.NotEq: (r"!=", "==", "!="),
    ast.In: (r"(?<!not )\bin\b", "not in", "in"),
    ast.NotIn: (r"\bnot\s+in\b", "in", "not in"),
}
_ARITH_SWAPS: dict[type, tuple[str, str, str]] = {
    ast.Add: (r"\+", "-", "+"),
    ast.Sub: (r"(?<![-eE])-", "+", "-"),
    ast.BitAnd: (r"&", "|", "&"),
    ast.BitOr: (r"\|", "&", "|"),
}
# methods a model confuses with a sibling: the call still works, the result is wrong
_METHOD_SWAPS = {
    "lower": "upper",
    "upper": "lower",
    "startswith": "endswith",
    "endswith": "startswith",
    "isupper": "islower",
    "islower": "isupper",
    "isdigit": "isalpha",
    "isalpha": "isdigit",
    "lstrip": "rstrip",
    "rstrip": "lstrip",
    "find": "rfind",
    "rfind": "find",
    "swapcase": "upper",
    "title": "capitalize",
    "capitalize": "title",
    "keys": "values",
    "values": "keys",
    "nlargest": "nsmallest",
    "nsmallest": "nlargest",
}
_BUILTIN_SWAPS = {"min": "max", "max": "min", "any": "all", "all": "any", "sum": "len"}
_HEADER_RE = re.compile(r"^\s*(if|elif|else|for|while|try|except|finally|with|def)\b")


def _one_match(pattern: str, text: str) -> re.Match[str] | None:
    found = list(re.finditer(pattern, text))
    return found[0] if len(found) == 1 else None


def _between(src: _Source, left: ast.AST, right: ast.AST) -> tuple[int, str]:
    a = src.span(left)[1]
    b = src.span(right)[0]
    return a, src.text[a:b]


def _needs_parens(node: ast.AST) -> bool:
    return not isinstance(node, ast.Name | ast.Call | ast.Attribute | ast.Subscript | ast.Constant)


class FaultMaker:
    """All single-site faults of one reference source, per kind, in a fixed order.

    It holds what the rules need to know about the source: the parent of every node, the names that are
    taken (so a typo never lands on a real name), the assigned and loaded names, the nodes inside
    ``while`` loops (an edit there too often loops forever) and the line of the entry point's ``def``.
    """

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.code = reference_answer(problem, "chat")
        self.src = _Source(self.code)
        self.tree = _parse(self.code)
        self.parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
        words = set(re.findall(r"\w+", "\n".join([self.code, problem.context, problem.test_setup])))
        self.taken = words | set(dir(builtins)) | set(keyword.kwlist)
        self.functions = {n.name for n in ast.walk(self.tree) if isinstance(n, ast.FunctionDef)}
        self.assigned = {
            n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
        }
        for fn in ast.walk(self.tree):
            if isinstance(fn, ast.FunctionDef | ast.Lambda):
                a = fn.args
                self.assigned |= {x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs]}
                self.assigned |= {x.arg for x in (a.vararg, a.kwarg) if x is not None}
        self.loads = Counter(
            n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
        )
        # edits inside a while loop too often make it loop forever: such candidates only cost check time
        self.in_while = {d for w in ast.walk(self.tree) if isinstance(w, ast.While) for d in ast.walk(w)}
        self.entry_line = next(
            (
                n.lineno
                for n in ast.walk(self.tree)
                if isinstance(n, ast.FunctionDef) and n.name == problem.entry_point
            ),
            1,
        )

    def enclosing(self, node: ast.AST) -> Iterator[ast.AST]:
        """The nodes that contain ``node``, innermost first."""
        while node in self.parents:
            node = self.parents[node]
            yield node

    def outside_while(self) -> Iterator[ast.AST]:
        """Every node in :func:`ast.walk` order, except those inside a ``while`` loop."""
        return (node for node in ast.walk(self.tree) if node not in self.in_while)

    def fault(self, kind: str, site: str, start: int, end: int, new: str, cause: str, key: str = "") -> Fault:
        """The fault that replaces ``[start, end)`` of the source with ``new``."""
        code, line = _edit(self.src, start, end, new)
        return Fault(kind, code, site, cause, key or line_text(code, line), line)

    def typo(self, name: str) -> str | None:
        """A plausible misspelling of ``name`` that is no name in the problem or in Python."""
        options = [name[:-1] if name.endswith("s") and len(name) > 2 else name + "s"]
        if len(name) >= 5:
            options.append(name[:3])
        options += [name + "_list", name + "1"]
        for o in options:
            if o.isidentifier() and o not in self.taken:
                return o
        return None

    # -- one method per kind ------------------------------------------------------------------------

    def name(self) -> Iterator[Fault]:
        seen: Counter[str] = Counter()  # at most two typos per variable
        for node in ast.walk(self.tree):
            yield from _misspelt_variable(self, node, seen)
            yield from _misnamed_builtin(self, node)
            yield from _missing_import(self, node)

    def syntax(self) -> Iterator[Fault]:
        yield from _dropped_colons(self)
        yield from _assignments_in_conditions(self)
        yield from _unclosed_brackets(self)

    def type(self) -> Iterator[Fault]:
        for node in self.outside_while():
            for rule in TYPE_RULES:
                yield from rule(self, node)

    def assertion(self) -> Iterator[Fault]:
        for node in self.outside_while():
            for rule in ASSERTION_RULES:
                yield from rule(self, node)

    def candidates(self, kind: str) -> tuple[Fault, ...]:
        """Distinct, compiling (or, for ``syntax``, exactly-SyntaxError) faults of ``kind``."""
        out: dict[str, Fault] = {}
        for fault in getattr(self, kind)():
            if fault.code == self.code or fault.code in out:
                continue
            error = _compile_error(fault.code)
            if (kind == "syntax") != (error is SyntaxError) or (kind != "syntax" and error is not None):
                continue
            out[fault.code] = fault
        return tuple(out.values())

    def last_resort(self) -> Fault:
        """A SyntaxError that every function has: the ``def`` line without its colon."""
        line = self.src.lines[self.entry_line - 1]
        stripped = line.rstrip()
        at = self.src.starts[self.entry_line - 1] + len(stripped) - 1
        if not stripped.endswith(":"):  # a def line with a trailing comment: break the parenthesis instead
            at = self.src.starts[self.entry_line - 1] + stripped.index("(")
            return self.fault(
                "syntax", "def-paren", at, at + 1, "[", "the `def` line opens `[` for its parameters"
            )
        return self.fault(
            "syntax", "def-colon", at, at + 1, "", f"the line `{stripped.strip()}` lacks its colon"
        )


def fault_candidates(problem: Problem, kind: str) -> tuple[Fault, ...]:
    """Every single-site fault of ``kind`` the coder can make in ``problem``'s reference, not yet checked
    against the tests (a candidate may still pass, or fail with another error)."""
    if kind not in ERROR_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; kinds: {', '.join(ERROR_KINDS)}")
    return FaultMaker(problem).candidates(kind)


Rule = Callable[[FaultMaker, ast.AST], Iterator[Fault]]


def _where(node: ast.AST) -> str:
    """``line:column`` of a node (of its iterable, for a comprehension) for a fault's site name."""
    anchor = node.iter if isinstance(node, ast.comprehension) else node
    return f"{getattr(anchor, 'lineno', 0)}:{getattr(anchor, 'col_offset', 0)}"


# -- NameError ------------------------------------------------------------------------------------------


def _misspelt_variable(m: FaultMaker, node: ast.AST, seen: Counter[str]) -> Iterator[Fault]:
    """A variable read under a misspelt name (the first two reads of each variable)."""
    if not (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)):
        return
    if node.id not in m.assigned or seen[node.id] >= 2:
        return
    seen[node.id] += 1
    typo = m.typo(node.id)
    if typo:
        a, b = m.src.span(node)
        yield m.fault(
            "name",
            f"typo {node.id}->{typo}@{node.lineno}:{node.col_offset}",
            a,
            b,
            typo,
            f"`{typo}` is not defined anywhere: the variable is called `{node.id}`",
            typo,
        )


def _misnamed_builtin(m: FaultMaker, node: ast.AST) -> Iterator[Fault]:
    """A builtin called by a name it does not have (``length`` for ``len``)."""
    if not (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)):
        return
    if node.id in _BUILTIN_MISNAMES and node.id not in m.assigned:
        new = _BUILTIN_MISNAMES[node.id]
        if new not in m.taken:
            a, b = m.src.span(node)
            yield m.fault(
                "name",
                f"builtin {node.id}->{new}@{node.lineno}:{node.col_offset}",
                a,
                b,
                new,
                f"`{new}` is not a Python builtin; the function is `{node.id}`",
                new,
            )


def _missing_import(m: FaultMaker, node: ast.AST) -> Iterator[Fault]:
    """An import statement (on lines of its own) whose module is used, left out."""
    if not isinstance(node, ast.Import | ast.ImportFrom):
        return
    bound = [(a.asname or a.name).split(".")[0] for a in node.names]
    if not any(m.loads[b] for b in bound):
        return
    first, last = node.lineno, node.end_lineno or node.lineno
    a = m.src.starts[first - 1]
    b = m.src.starts[last]
    statement = m.src.segment(node)
    if m.src.text[a:b].strip() != statement.strip():
        return  # the import shares its line with other code
    used = next(b for b in bound if m.loads[b])
    yield m.fault(
        "name",
        f"import {statement}@{first}",
        a,
        b,
        "",
        f"`{used}` is used but never imported: the line `{statement.strip()}` is missing",
        statement.strip(),
    )


# -- SyntaxError ----------------------------------------------------------------------------------------


def _dropped_colons(m: FaultMaker) -> Iterator[Fault]:
    """A block header (``if``, ``for``, ``def`` of a helper...) without its colon."""
    for i, line in enumerate(m.src.lines, 1):
        stripped = line.rstrip()
        if i == m.entry_line or not stripped:
            continue
        if stripped.endswith(":") and _HEADER_RE.match(stripped):
            at = m.src.starts[i - 1] + len(stripped) - 1
            yield m.fault(
                "syntax", f"colon@{i}", at, at + 1, "", f"the line `{stripped.strip()}` lacks its colon"
            )


def _assignments_in_conditions(m: FaultMaker) -> Iterator[Fault]:
    """``if a = b:`` for ``if a == b:``."""
    for node in ast.walk(m.tree):
        if isinstance(node, ast.If | ast.While) and isinstance(node.test, ast.Compare):
            test = node.test
            if len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
                base, between = _between(m.src, test.left, test.comparators[0])
                found = _one_match(r"==", between)
                if found:
                    yield m.fault(
                        "syntax",
                        f"assign-in-condition@{node.lineno}",
                        base + found.start(),
                        base + found.end(),
                        "=",
                        "the condition uses `=` (assignment) where the comparison `==` is needed",
                    )


def _unclosed_brackets(m: FaultMaker) -> Iterator[Fault]:
    """A line that ends a call or a list without its closing bracket."""
    for i, line in enumerate(m.src.lines, 1):
        stripped = line.rstrip()
        if i != m.entry_line and stripped.endswith((")", "]")) and not _HEADER_RE.match(stripped):
            at = m.src.starts[i - 1] + len(stripped) - 1
            yield m.fault(
                "syntax",
                f"unclosed@{i}",
                at,
                at + 1,
                "",
                f"the line `{stripped.strip()}` does not close its bracket",
            )


# -- TypeError ------------------------------------------------------------------------------------------

_CONVERSIONS = ("str", "int", "float", "list")


def _plain_call(node: ast.AST) -> ast.Call | None:
    """``node`` when it calls a bare name without keywords, else None."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        return node
    return None


def _range_dropped(m: FaultMaker, node: ast.AST) -> Iterator[Fault]:
    """``for i in n:`` for ``for i in range(n):``."""
    if not (isinstance(node, ast.For) and isinstance(node.iter, ast.Call)):
        return
    call = node.iter
    if (
        isinstance(call.func, ast.Name)
        and call.func.id == "range"
        and len(call.args) == 1
        and not call.keywords
    ):
        a, b = m.src.span(call)
        arg = m.src.segment(call.args[0])
        yield m.fault(
            "type",
            f"range-dropped@{node.lineno}",
            a,
            b,
            arg,
            f"the loop iterates over the number `{arg}` itself; it needs `range({arg})`",
        )


def _unwrapped_conversion(m: FaultMaker, node: ast.AST) -> Iterator[Fault]:
    """``x`` for ``str(x)``, ``int(x)``, ``float(x)`` or ``list(x)``."""
    call = _plain_call(node)
    if call is None or not (call.func.id in _CONVERSIONS and len(call.args) == 1):  # type: ignore[attr-defined]
        return
    fname = call.func.id  # type: ignore[attr-defined]
    a, b = m.src.span(call)
    arg = m.src.segment(call.args[0])
    yield m.fault(
        "type",
        f"unwrap-{fname}@{call.lineno}:{call.col_offset}",
        a,
        b,
        arg if not _needs_parens(call.args[0]) else f"({arg})",
        f"`{arg}` is used as it is where `{fname}({arg})` is needed",
    )


def _missing_argument(m: FaultMaker, node: ast.AST) -> Iterator[Fault]:
    """A call to a function of the solution without its last argument."""
    call = _plain_call(node)
    if call is None:
        return
    fname = call.func.id  # type: ignore[attr-defined]
    if fname in _CONVERSIONS and len(call.args) == 1:
        return  # an unwrapped conversion instead
    if fname not in m.functions or not call.args or any(isinstance(x, ast.Starred) for x in call.args):
        return
    a, b = m.src.span(call)
    kept = ", ".join(m.src.segment(x) for x in call.args[:-1])
    yield m.fault(
        "type",
        f"missing-arg@{call.lineno}:{call.col_offset}",
        a,
        b,
        f"{m.src.segment(call.func)}({kept})",
        f"the call to `{fname}` leaves out its last argument `{m.src.segment(call.args[-1])}`",
    )


def _string_constant(m: FaultMaker, node: ast.AST) -> Iterator[Fault]:
    """``x + '1'`` for ``x + 1``."""
    if not (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Add | ast.Sub)
        and isinstance(node.right, ast.Constant)
        and type(node.right.value) is int
    ):
        return
    a, b = m.src.span(node.right)
    value = node.right.value
    yield m.fault(
        "type",
        f"str-constant@{node.lineno}:{node.col_offset}",
        a,
        b,
        repr(str(value)),
        f"the string `{str(value)!r}` is used in arithmetic where the number {value} is needed",
    )


TYPE_RULES: tuple[Rule, ...] = (_range_dropped, _unwrapped_conversion, _missing_argument, _string_constant)


# -- AssertionError (the code runs, the result is wrong) ------------------------------------------------


def _int_off_by_one(m: FaultMaker, node: ast.AST) -> Iterator[Fault]:
    """An integer constant one more (or, where that cannot loop forever, one less)."""
    if not (isinstance(node, ast.Constant) and type(node.value) is int):
        return
    c = node.value
    news = [c + 1]
    if c >= 2 or (c == 1 and not isinstance(m.parents.get(node), ast.AugAssign)):
        news.append(c - 1)
    a, b = m.src.span(node)
    for new in news:
        yield m.fault(
            "assertion",
            f"const {c}->{new}@{_where(node)}",
            a,
            b,
            str(new),
            f"it uses {new} where {c} is needed",
        )


def _flipped_bool(m: FaultMaker, node: ast.AST) -> Iterator[Fault]:
    """``True`` for ``False`` and the reverse."""
    if not (isinstance(node, ast.Constant) and isinstance(node.value, bool)):
        return
    a, b = m.src.span(node)
    new = str(not node.value)
    yield m.fault(
        "assertion", f"bool->{new}@{_where(node)}", a, b, new, f"it uses {new} where {node.value} is needed"
    )


def _swapped_comparison(m: FaultMaker, node: ast.AST) -> Iterator[Fault]:
    """``<=`` for ``<``, ``!=`` for ``==``, ``not in`` for ``in``..."""
    if not (isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE_SWAPS):
        return
    pattern, new, old = _COMPARE_SWAPS[type(node.ops[0])]
    base, between = _between(m.src, node.left, node.comparators[0])
    found = _one_match(pattern, between)
    if found:
        yield m.fault(
            "assertion",
            f"compare {old}->{new}@{_where(node)}",
            base + found.start(),
            base + found.end(),
            new,
            f"the comparison uses `{new}` where `{old}` is needed",
        )


def _swapped_arithmetic(m: FaultMaker, node: ast.AST) -> Iterator[Fault]:
    """``-`` for ``+``, ``|`` for ``&`` (not on strings, where it would be a TypeError)."""
    if not (isinstance(node, ast.BinOp) and type(node.op) in _ARITH_SWAPS):
        return
    if any(isinstance(x, ast.Constant) and isinstance(x.value, str) for x in (node.left, node.right)):
        return
    pattern, new, old = _ARITH_SWAPS[type(node.op)]
    base, between = _between(m.src, node.left, node.right)
    found = _one_match(pattern, between)
    if found:
        yield m.fault(
            "assertion",
            f"arith {old}->{new}@{_where(node)}",
            base + found.start(),
            base + found.end(),
            new,
            f"it computes with `{new}` where `{old}` is needed",
        )


def _swapped_boolean(m: FaultMaker, node: ast.AST) -> Iterator[Fault]:
    """``or`` for ``and`` and the reverse, in a condition of two parts."""
    if not (isinstance(node, ast.BoolOp) and len(node.values) == 2):
        return
    old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
    base, between = _between(m.src, node.values[0], node.values[1])
    found = _one_match(rf"\b{old}\b", between)
    if found:
        yield m.fault(
            "assertion",
            f"boolop {old}->{new}@{_where(node)}",
            base + found.start(),
            base + found.end(),
            new,
            f"the condition joins its parts with `{new}` where `{old}` is needed",
        )


def _dropped_not(m: FaultMaker, node: ast.AST) -> Iterator[Fault]:
    """A condition without its ``not``."""
    if not (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)):
        return
    a = m.src.span(node)[0]
    b = m.src.span(node.operand)[0]
    if re.fullmatch(r"not\s+", m.src.text[a:b]):
        yield m.fault(
            "assertion", f"drop-not@{_where(node)}", a, b, "", "the condition lost its `not` and is inverted"
        )


def _float_off_by_one(m: FaultMaker, node: ast.AST) -> Iterator[Fault]:
    """A finite float constant plus one."""
    if not (isinstance(node, ast.Constant) and type(node.value) is float and math.isfinite(node.value)):
        return
    a, b = m.src.span(node)
    new = repr(node.value + 1.0)
    yield m.fault(
        "assertion",
        f"float {node.value}->{new}@{_where(node)}",
        a,
        b,
        new,
        f"it uses {new} where {node.value} is needed",
    )


def _swapped_builtin(m: FaultMaker, node: ast.AST) -> Iterator[Fault]:
    """``max`` for ``min``, ``all`` for ``any``, ``len`` for ``sum``..."""
    if not (isinstance(node, ast.Name) and node.id in _BUILTIN_SWAPS and node.id not in m.assigned):
        return
    new = _BUILTIN_SWAPS[node.id]
    a, b = m.src.span(node)
    yield m.fault(
        "assertion",
        f"{node.id}->{new}@{_where(node)}",
        a,
        b,
        new,
        f"it calls `{new}` where `{node.id}` is needed",
    )


def _swapped_method(m: FaultMaker, node: ast.AST) -> Iterator[Fault]:
    """A method called under its sibling's name (``upper`` for ``lower``...)."""
    if not (
        isinstance(node, ast.Attribute)
        and node.attr in _METHOD_SWAPS
        and isinstance(m.parents.get(node), ast.Call)
    ):
        return
    new = _METHOD_SWAPS[node.attr]
    a, b = m.src.span(node)
    if m.src.text[a:b].endswith("." + node.attr):
        yield m.fault(
            "assertion",
            f"method {node.attr}->{new}@{_where(node)}",
            b - len(node.attr),
            b,
            new,
            f"it calls `.{new}()` where `.{node.attr}()` is needed",
        )


def _wrong_separator(m: FaultMaker, node: ast.AST) -> Iterator[Fault]:
    """``" ".join`` for ``"".join`` and the reverse."""
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "join"
        and isinstance(node.func.value, ast.Constant)
        and isinstance(node.func.value.value, str)
        and node.func.value.value in ("", " ")
    ):
        return
    old = node.func.value.value
    new = repr(" " if old == "" else "")
    a, b = m.src.span(node.func.value)
    yield m.fault(
        "assertion", f"join-sep@{_where(node)}", a, b, new, f"it joins with {new} where {old!r} is needed"
    )


def _len_off_by_one(m: FaultMaker, node: ast.AST) -> Iterator[Fault]:
    """``(len(x) - 1)`` or ``(len(x) + 1)`` for ``len(x)`` (not inside arithmetic already)."""
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "len"
        and "len" not in m.assigned
        and not isinstance(m.parents.get(node), ast.BinOp)
    ):
        return
    a, b = m.src.span(node)
    text = m.src.segment(node)
    for delta in ("- 1", "+ 1"):
        yield m.fault(
            "assertion",
            f"len {delta}@{_where(node)}",
            a,
            b,
            f"({text} {delta})",
            f"it uses `{text} {delta}` where `{text}` is needed (off by one)",
        )


def _reversed_sort(m: FaultMaker, node: ast.AST) -> Iterator[Fault]:
    """``sorted(x, reverse=True)`` for ``sorted(x)``."""
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "sorted"
        and len(node.args) == 1
        and not any(k.arg == "reverse" for k in node.keywords)
    ):
        return
    a, b = m.src.span(node)
    if m.src.segment(node).endswith(")"):
        yield m.fault(
            "assertion",
            f"sorted-reverse@{_where(node)}",
            b - 1,
            b,
            ", reverse=True)",
            "it sorts in descending order where ascending order is needed",
        )


def _returned_parameter(m: FaultMaker, node: ast.AST) -> Iterator[Fault]:
    """``return <first parameter>`` for ``return <computed variable>``."""
    if not (isinstance(node, ast.Return) and isinstance(node.value, ast.Name)):
        return
    fn = next((f for f in m.enclosing(node) if isinstance(f, ast.FunctionDef)), None)
    params = [x.arg for x in fn.args.args] if fn else []
    if params and node.value.id not in params:
        a, b = m.src.span(node.value)
        yield m.fault(
            "assertion",
            f"return-param@{_where(node)}",
            a,
            b,
            params[0],
            f"it returns `{params[0]}` where the computed `{node.value.id}` is needed",
        )


def _dropped_filter(m: FaultMaker, node: ast.AST) -> Iterator[Fault]:
    """A comprehension without its (first) ``if`` filter."""
    if not (isinstance(node, ast.comprehension) and node.ifs):
        return
    a = m.src.span(node.iter)[1]
    b = m.src.span(node.ifs[0])[1]
    if re.fullmatch(r"\s*if\s+", m.src.text[a : m.src.span(node.ifs[0])[0]]):
        cond = m.src.segment(node.ifs[0])
        yield m.fault(
            "assertion",
            f"drop-filter@{_where(node)}",
            a,
            b,
            "",
            f"the comprehension lost its filter `if {cond}`",
        )


def _range_stop_off_by_one(m: FaultMaker, node: ast.AST) -> Iterator[Fault]:
    """``range(n + 1)`` or ``range(n - 1)`` for ``range(n)`` (a stop that is not a constant)."""
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "range"
        and 1 <= len(node.args) <= 2
        and not isinstance(node.args[-1], ast.Constant)
    ):
        return
    stop = node.args[-1]
    a, b = m.src.span(stop)
    text = m.src.segment(stop)
    text = f"({text})" if _needs_parens(stop) else text
    for delta in ("+ 1", "- 1"):
        yield m.fault(
            "assertion",
            f"range-stop {delta}@{_where(node)}",
            a,
            b,
            f"{text} {delta}",
            f"the range stops at `{text} {delta}` instead of `{text}` (off by one)",
        )


ASSERTION_RULES: tuple[Rule, ...] = (
    _int_off_by_one,
    _flipped_bool,
    _swapped_comparison,
    _swapped_arithmetic,
    _swapped_boolean,
    _dropped_not,
    _float_off_by_one,
    _swapped_builtin,
    _swapped_method,
    _wrong_separator,
    _len_off_by_one,
    _reversed_sort,
    _returned_parameter,
    _dropped_filter,
    _range_stop_off_by_one,
)
