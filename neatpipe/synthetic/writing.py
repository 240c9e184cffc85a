"""How the synthetic coder words its answers: code in a fenced block with a model's usual framing, and
analyses that name the error and, when it knows, the cause.

Real small models wrap code in chatter ("Here is the corrected function:"), so the pipeline's code
extraction is exercised as it would be; an analysis quotes the faulty line when the coder recognises
its own fault (at the preset's accuracy) and otherwise gives the generic advice a model gives. Every
choice of wording comes from the random generator it is handed, so the text is as deterministic as
the decision behind it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from neatpipe.runtime.messages import Feedback
from neatpipe.synthetic.faults import Fault, line_text

_GEN_INTROS = (
    "",
    "Here is the implementation:\n\n",
    "Here is a Python function that solves the task:\n\n",
    "Sure! Here's the solution:\n\n",
)
_GEN_OUTROS = ("", "", "\n\nThe function follows the specification in the task.")
_FIX_INTROS = (
    "Here is the corrected function:\n\n",
    "I fixed the problem shown in the feedback. Here is the updated code:\n\n",
    "",
    "The error comes from a bug in the previous version. Corrected code:\n\n",
)


def _code_block(intro: str, code: str, outro: str = "") -> str:
    return f"{intro}```python\n{code.strip(chr(10))}\n```{outro}"


def code_text(role: str, code: str, rng: random.Random) -> str:
    """``code`` as a generator's or a refiner's answer, framed by one of their usual sentences."""
    if role == "refiner":
        return _code_block(rng.choice(_FIX_INTROS), code)
    return _code_block(rng.choice(_GEN_INTROS), code, rng.choice(_GEN_OUTROS))


def non_answer_text(label: str, benchmarks: Iterable[str]) -> str:
    """The labelled reply to a request about no problem the coder knows."""
    names = ", ".join(sorted(set(benchmarks)))
    return (
        f"[{label}: synthetic model] This request is not about a benchmark problem this synthetic "
        f"model knows ({names}), so it has no answer to give."
    )


def analysis_text(fb: Feedback, own: Fault | None, accuracy: float, rng: random.Random) -> str:
    """An analyzer's explanation of ``fb``: the right cause of ``own`` (the coder's own fault, when it
    recognised one) with probability ``accuracy``, else a generic explanation of the error type."""
    error = fb.error_type or "error"
    if fb.passed:
        return (
            f"The code passes the {fb.source or 'tests'}, so there is no failure to explain. "
            "The logic follows the task; if hidden cases fail, look at the edge cases (empty input, "
            "single element, boundaries)."
        )
    message = fb.message.splitlines()[0] if fb.message.strip() else ""
    article = "an" if error[:1].lower() in "aeiou" else "a"
    said = f"{article} {error} ({message})" if message else f"{article} {error}"
    if own is not None and rng.random() < accuracy:
        line = line_text(own.code, own.line)
        where = f"the line `{line}`" if line and line != own.key else f"`{own.key}`"
        return (
            f"The code fails with {said}. The cause is {where}: {own.cause}. "
            f"Changing `{own.key}` back to what the task needs fixes the failure."
        )
    code_lines = [
        ln.strip()
        for ln in (fb.code or "").splitlines()
        if ln.strip() and not ln.strip().startswith(("def ", "#", '"""'))
    ]
    test = fb.failing_test.strip()
    generic = {
        "NameError": "a name is used that is never defined; check the spelling of the variables and "
        "that every helper or module is defined or imported.",
        "SyntaxError": "the code does not compile; check the reported line for a missing colon, "
        "bracket or quote.",
        "AssertionError": "the function runs but returns a wrong result"
        + (f" for the test `{test}`" if test else "")
        + "; the conditions or the loop bounds do not match what the task asks.",
        "TypeError": "a value of the wrong type is used, for example a number where a list or a "
        "string is expected.",
        "Timeout": "the program never finishes; a loop probably does not advance its variable.",
    }.get(error, "the code does something the task does not allow; follow the traceback to the line.")
    if code_lines and rng.random() < 0.5:
        blamed = rng.choice(code_lines)
        return f"The code fails with {said}. The problem seems to be the line `{blamed}`: {generic}"
    return f"The code fails with {said}: {generic}"
