"""Executable checks from the examples in a docstring.

HumanEval prompts show examples in many styles; each one found becomes an assert a model may be
shown as feedback (a *visible* test):

    >>> f(1, 2)                       doctest, output on the following line(s)
    3
    f(1, 2) == 3      f(1, 2) ==> 3   f(1, 2) => 3    f(1, 2) ➞ 3    f(1, 2) -> 3
    f(1, 2) returns 3                 f(1, 2) should return 3.        f(1, 2)  # returns 3
    For x = 1, y = 2 the output should be 3       (arguments named after the parameters)
    Input: x = 1, y = 2   /   Input: [4, 2]       followed by   Output: 3

Only examples whose arguments and expected value are Python literals are kept (``is_happy(a) => False``
is prose, not code). Lower-case ``true``/``false`` are read as booleans.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable

_SEPARATORS = ("==>", "=>", "➞", "->", "==", "should return", "returns", "# returns", "# =>", "=")
# words that may stand before an example call on its line ("for f(x) == 1", ">>> f(x) == 1")
_EXAMPLE_PREFIXES = ("", "for", "assert", ">>>")
_OUTPUT_PHRASES = ("the output should be", "the result should be", "should be", "the output will be")


def _literal(text: str):
    """Parse ``text`` as a Python literal (with lower-case booleans); raise ValueError if it is not one."""
    text = text.strip().rstrip(".").strip()
    if not text:
        raise ValueError("empty")
    fixed = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", text))
    tree = ast.parse(fixed, mode="eval")
    ast.literal_eval(tree)  # raises ValueError for anything that is not a literal
    return fixed


def _strip_comment(text: str) -> str:
    """Remove a trailing ``# ...`` comment that is not inside a string literal."""
    in_str: str | None = None
    for i, ch in enumerate(text):
        if in_str:
            if ch == in_str and text[i - 1] != "\\":
                in_str = None
        elif ch in "'\"":
            in_str = ch
        elif ch == "#":
            return text[:i].rstrip()
    return text


def _call_span(line: str, name: str) -> tuple[int, int] | None:
    """Start and end (exclusive) of the first ``name(...)`` call in ``line``, parentheses balanced."""
    m = re.search(rf"(?<![\w.]){re.escape(name)}\s*\(", line)
    if not m:
        return None
    depth, in_str = 0, None
    for i in range(m.end() - 1, len(line)):
        ch = line[i]
        if in_str:
            if ch == in_str and line[i - 1] != "\\":
                in_str = None
            continue
        if ch in "'\"":
            in_str = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return m.start(), i + 1
    return None


def make_assert(expr: str, expected: str) -> str:
    """An assert comparing ``expr`` with the literal ``expected``; floats compare with a tolerance."""
    value = ast.literal_eval(expected)
    if isinstance(value, float):
        return f"assert abs({expr} - {expected}) < 1e-6"
    if value is None or isinstance(value, bool):
        return f"assert {expr} is {expected}" if value is None else f"assert {expr} == {expected}"
    return f"assert {expr} == {expected}"


def _doctest_examples(lines: list[str], entry_point: str) -> Iterable[tuple[str, str]]:
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith(">>>"):
            expr = _strip_comment(stripped[3:].strip())
            out: list[str] = []
            j = i + 1
            while j < len(lines):
                nxt = lines[j].strip()
                if not nxt or nxt.startswith(">>>") or nxt.startswith('"""') or nxt.startswith("'''"):
                    break
                out.append(nxt)
                j += 1
            if entry_point in expr and out:
                yield expr, " ".join(out)
            # a ">>> f(x) == y" line with no output line is handled as an inline example
            i = j
        else:
            i += 1


def _inline_examples(lines: list[str], entry_point: str) -> Iterable[tuple[str, str]]:
    for raw in lines:
        line = raw.strip().lstrip("*").strip()
        span = _call_span(line, entry_point)
        if span is None:
            continue
        call, rest = line[span[0] : span[1]], line[span[1] :].strip()
        if line[: span[0]].strip().lower() not in _EXAMPLE_PREFIXES:  # prose before the call
            continue
        for sep in _SEPARATORS:
            if rest.lower().startswith(sep):
                expected = rest[len(sep) :].strip()
                # "f(x) -> 19 - 5 - 6 = 8": the expected value is after the last "="
                if "=" in expected and not expected.startswith(("{", "[", "(", "'", '"')):
                    expected = expected.rsplit("=", 1)[1]
                yield call, _strip_comment(expected)
                break


def _named_examples(lines: list[str], params: list[str], entry_point: str) -> Iterable[tuple[str, str]]:
    """``For a = 1, b = 2 the output should be 3`` and ``Input: ... Output: ...`` styles."""
    for idx, raw in enumerate(lines):
        line = raw.strip()
        low = line.lower()
        if low.startswith("for ") and any(p in low for p in _OUTPUT_PHRASES):
            phrase = next(p for p in _OUTPUT_PHRASES if p in low)
            cut = low.index(phrase)
            args_text, expected = line[4:cut], line[cut + len(phrase) :]
        elif low.startswith("input:") and idx + 1 < len(lines):
            out_line = next(
                (x.strip() for x in lines[idx + 1 : idx + 3] if x.strip().lower().startswith("output:")), None
            )
            if out_line is None:
                continue
            args_text, expected = line[len("input:") :], out_line[len("output:") :]
        else:
            continue
        args = _parse_arguments(args_text.strip().rstrip(","), params)
        if args is not None:
            yield f"{entry_point}({args})", _strip_comment(expected)


def _parse_arguments(text: str, params: list[str]) -> str | None:
    """Turn ``a = [1, 2], k = 3`` or ``[1, 2]`` into a positional argument list in parameter order."""
    if not text:
        return None
    text = re.sub(r",?\s*the (sum|result).*$", "", text)  # "For N = 1000, the sum of digits ..." prose
    named = re.findall(r"(\w+)\s*=\s*", text)
    if named:
        parts = re.split(r"(?:^|,)\s*(\w+)\s*=\s*", text)
        values = dict(zip(parts[1::2], (p.strip().rstrip(",").strip() for p in parts[2::2]), strict=True))
        if set(values) != set(params):
            return None
        ordered = [values[p] for p in params]
    elif len(params) == 1:
        ordered = [text]
    else:  # unnamed values for several parameters: too ambiguous to be a test
        return None
    try:
        return ", ".join(_literal(v) for v in ordered)
    except (SyntaxError, ValueError):
        return None


def docstring_tests(docstring: str, entry_point: str, params: list[str]) -> list[str]:
    """Asserts from every literal example in ``docstring``, in order, without duplicates."""
    lines = docstring.splitlines()
    found: list[str] = []
    pairs = [
        *_doctest_examples(lines, entry_point),
        *_inline_examples(lines, entry_point),
        *_named_examples(lines, params, entry_point),
    ]
    for call, expected in pairs:
        try:
            test = make_assert(_call_or_expr(call, entry_point), _literal(expected))
        except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
            continue
        if test not in found:
            found.append(test)
    return found


def _call_or_expr(expr: str, entry_point: str) -> str:
    """A doctest expression may wrap the call (``round(f(x), 2)``); inline examples must be bare calls."""
    fixed = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", expr))
    tree = ast.parse(fixed, mode="eval")
    calls = [
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == entry_point
    ]
    if not calls:
        raise ValueError("no call of the entry point")
    for call in calls:
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            ast.literal_eval(arg)
    return fixed
