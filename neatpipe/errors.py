"""The root of neatpipe's errors, and how their messages are kept short.

Every error that a user can cause and fix (a malformed file, a missing model, a run directory that
cannot be resumed, ...) derives from :class:`NeatpipeError`. The command line catches that one type at
its top and prints the message as ``neatpipe: error: ...`` with exit status 2; a script can do the same
with one ``except``. Anything else that escapes is a bug in neatpipe and keeps its traceback.

This module is a leaf: it imports nothing of neatpipe.
"""

from __future__ import annotations

import itertools
import reprlib
from collections.abc import Sequence

#: The most problems a message lists one by one; the rest are counted.
MAX_LISTED_PROBLEMS = 20
#: The most characters of a message the command line prints.
MAX_MESSAGE_CHARS = 4000
#: The most characters one listed problem keeps.
MAX_PROBLEM_CHARS = 1000


class _Shown(reprlib.Repr):
    """``reprlib.Repr`` keeping a mapping's own key order (the order the user wrote)."""

    def repr_dict(self, x: dict, level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        items = [
            f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}"
            for k, v in itertools.islice(x.items(), self.maxdict)
        ]
        if len(x) > self.maxdict:
            items.append(self.fillvalue)
        return "{" + ", ".join(items) + "}"


_SHOWN = _Shown()
_SHOWN.maxstring = _SHOWN.maxother = 200
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = _SHOWN.maxset = 6
_SHOWN.maxlevel = 3


class NeatpipeError(Exception):
    """Base class of every error raised for something the user can fix; the message says what and where."""


def shown(value: object) -> str:
    """``repr(value)`` cut short (long strings, long or deep lists and mappings), for a user's value in
    a message: it never walks or prints more than a few dozen items of what a file held."""
    return _SHOWN.repr(value)


def problems_message(problems: Sequence[object], source: str | None = None) -> str:
    """``source: problem`` for one problem, ``source: N problems:`` and one indented line each for more
    (the first :data:`MAX_LISTED_PROBLEMS`, each cut to :data:`MAX_PROBLEM_CHARS`, then how many are
    left), so that a file with thousands of mistakes gives a message of a few kilobytes."""
    head = f"{source}: " if source else ""
    if len(problems) == 1:
        return head + str(problems[0])
    lines = [f"  {bounded(str(p), MAX_PROBLEM_CHARS)}" for p in problems[:MAX_LISTED_PROBLEMS]]
    if len(problems) > MAX_LISTED_PROBLEMS:
        lines.append(f"  ... and {len(problems) - MAX_LISTED_PROBLEMS} more")
    return head + f"{len(problems)} problems:\n" + "\n".join(lines)


def bounded(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``message`` cut to ``limit`` characters (with a note of how much was left out)."""
    if len(message) <= limit:
        return message
    return message[:limit] + f" ... ({len(message) - limit} more characters)"
