"""Code from model text: what a model wrote, minus the prose, the fences and the reasoning.

Handles fenced blocks with or without a language tag (``` and ~~~), several blocks, an unterminated
fence, a lone closing fence after code whose opening fence was never written, ``[PYTHON]`` tags, prose
before and after, ``<think>...</think>`` reasoning (also unclosed), code with no fence at all, and an
empty answer (``""``).
"""

from __future__ import annotations

import ast
import re
import warnings

_THINK = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.DOTALL | re.IGNORECASE)
_FENCE_OPEN = re.compile(r"^[ \t]*(```|~~~)[ \t]*([\w+#.-]*)[^\n]*$", re.MULTILINE)
_TAGGED = re.compile(r"\[PYTHON\](.*?)(?:\[/PYTHON\]|\Z)", re.DOTALL)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3", "sage", "ipython", "pycon"}
_CODE_START = re.compile(
    r"^(def |async def |class |import |from \S+ import |@|if __name__|[A-Za-z_][\w, ]*\s*=[^=])"
)
# a fresh top-level line of this shape ends a completion-style body (the model went on to tests or prose)
_COMPLETION_STOPS = ("\nif __name__", "\nprint(", "\nassert ", "\n# Test", "\n# test", "\n# Example", "\n```")


def strip_reasoning(text: str) -> str:
    """Drop ``<think>`` blocks; text after an unclosed ``<think>`` is reasoning, text before a lone
    ``</think>`` (a template that opened the block in the prompt) is too."""
    text = _THINK.sub("", text)
    lower = text.lower()
    for tag in ("</think>", "</thinking>", "</reasoning>"):
        if tag in lower:
            text = text[lower.rindex(tag) + len(tag) :]
            lower = text.lower()
    for tag in ("<think>", "<thinking>", "<reasoning>"):
        if tag in lower:
            text = text[: lower.index(tag)]
            lower = text.lower()
    return text


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, code)`` for each fenced block, in order; an unterminated last fence runs to the end.

    An unterminated fence without a language tag, after code and before nothing that parses, closes a
    block whose opening fence the model never wrote (``def f(): ...`` then a lone ```): the code before
    it is the block, read as unfenced code (leading and trailing prose cut).
    """
    blocks: list[tuple[str, str]] = []
    pos = 0
    while True:
        m = _FENCE_OPEN.search(text, pos)
        if not m:
            break
        fence, lang = m.group(1), m.group(2).lower()
        close = re.compile(rf"^[ \t]*{re.escape(fence)}[ \t]*$", re.MULTILINE)
        end = close.search(text, m.end())
        body = text[m.end() + 1 : end.start() if end else len(text)]
        if not end and not lang and not (body.strip() and _parses(body)):
            before = _unfenced(text[pos : m.start()]) if text[pos : m.start()].strip() else ""
            if before.strip():
                blocks.append(("", before))
                break
        blocks.append((lang, body.rstrip() + "\n" if body.strip() else ""))
        if not end:
            break
        pos = end.end()
    return blocks


def _parses(code: str) -> bool:
    with warnings.catch_warnings():  # invalid escapes such as "\w" warn at parse time; they still run
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            ast.parse(code)
        except (SyntaxError, ValueError):
            return False
    return True


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*(async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def _unfenced(text: str) -> str:
    """Code written without a fence: cut leading and trailing prose until what is left parses."""
    lines = text.strip("\n").splitlines()
    start = next(
        (i for i, line in enumerate(lines) if _CODE_START.match(line) or line.startswith((" ", "\t"))), None
    )
    if start is None:
        return text.strip() + "\n" if _parses(text) and text.strip() else ""
    lines = lines[start:]
    # drop trailing prose lines one by one, never a line that looks like code: a broken last line of
    # code stays, so the answer fails as the SyntaxError it is instead of becoming a different program
    for end in range(len(lines), 0, -1):
        candidate = "\n".join(lines[:end]).rstrip() + "\n"
        if _parses(candidate) or _parses("def _f():\n" + candidate):
            return candidate
        last = lines[end - 1]
        if last.strip() and (
            _CODE_START.match(last) or last.startswith((" ", "\t")) or _looks_like_code(last)
        ):
            break
    return "\n".join(lines).rstrip() + "\n"  # nothing parses: the code as written (a SyntaxError to report)


def _looks_like_code(line: str) -> bool:
    """A top-level line that is code rather than a sentence: brackets closing, a call, a keyword."""
    stripped = line.strip()
    return stripped[:1] in ")]}#" or bool(
        re.match(r"^(return|print|assert|raise|for|while|if|elif|else|try|except|finally|with)\b", stripped)
        or re.match(r"^[\w.]+\(.*\)$", stripped)
    )


def extract_code(text: str | None, entry_point: str | None = None) -> str:
    """The code in a model answer.

    Among several blocks, the last one that defines ``entry_point`` wins (models revise), with the
    helper-only blocks written before it prepended; without such a block, the longest Python block.
    """
    if not text or not text.strip():
        return ""
    text = strip_reasoning(text)
    tagged = _TAGGED.findall(text)
    blocks = [("python", b.strip("\n") + "\n") for b in tagged] if tagged else fenced_blocks(text)
    code_blocks = [code for lang, code in blocks if lang in _PYTHON_TAGS and code.strip()]
    if not code_blocks:
        return _unfenced(text) if not blocks else ""
    if entry_point:
        defining = [i for i, code in enumerate(code_blocks) if _defines(code, entry_point)]
        if defining:
            last = defining[-1]
            helpers = [
                code
                for code in code_blocks[:last]
                if not _defines(code, entry_point) and _parses(code) and _only_definitions(code, entry_point)
            ]
            return "\n\n".join([*helpers, code_blocks[last]])
    return max(code_blocks, key=len)


def _only_definitions(code: str, entry_point: str) -> bool:
    """True for a block of imports, functions, classes and constants; False for a usage example, which
    calls, prints or asserts something, or whose top-level statements use the entry point
    (``result = f(3)`` before ``f`` is defined would fail the whole program with a NameError)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        tree = ast.parse(code)
    definitions = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for node in tree.body:
        if isinstance(node, definitions):
            continue
        if not isinstance(node, ast.Assign | ast.AnnAssign):
            return False
        if any(isinstance(n, ast.Name) and n.id == entry_point for n in ast.walk(node)):
            return False
    return bool(tree.body)


def trim_completion(text: str) -> str:
    """A completion-style continuation cut where the model left the function for tests or prose."""
    cut = len(text)
    for stop in _COMPLETION_STOPS:
        i = text.find(stop)
        if i != -1:
            cut = min(cut, i)
    return text[:cut].rstrip() + "\n"
