"""The chat messages every model-calling node sends, and the execution-feedback text inside them.

Each role gets one system message (the prompt variant's text from :mod:`neatpipe.genome.prompts`) and
one user message made of sections under fixed Markdown headings::

    ## Task               the benchmark's task text (HumanEval's prompt; MBPP's description and asserts)
    ## Previous code      the code that was run, in a fenced block          (analyzer, refiner)
    ## Test result        which tests ran, the status, error type, message  (analyzer, refiner)
    ## Traceback          the trimmed traceback, in a fenced block          (when there is one)
    ## Failing test       the source line of the first failing test         (when there is one)
    ## Analysis           an analyzer's explanation                         (refiner, when given)
    ## Instructions       what to answer, and in which form

The headings are module constants, and :func:`split_sections` / :func:`parse_feedback` read a message
back, so the synthetic coder and the tests find each part without guessing. Feedback is bounded: every
section is cut to a share of ``max_chars`` (head and tail kept, with a marker saying how much was cut),
because a 100 kB traceback or a runaway answer must not blow up the next prompt.

All functions here are pure: same inputs, same messages, so requests built from them cache well.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from neatpipe.bench.problem import Problem
from neatpipe.genome.prompts import PromptVariant, prompt_index, prompt_variant
from neatpipe.models.types import ChatMessage
from neatpipe.sandbox.program import ExecResult, Status

TASK_HEADING = "## Task"
CODE_HEADING = "## Previous code"
RESULT_HEADING = "## Test result"
TRACEBACK_HEADING = "## Traceback"
FAILING_TEST_HEADING = "## Failing test"
ANALYSIS_HEADING = "## Analysis"
INSTRUCTIONS_HEADING = "## Instructions"
SECTION_HEADINGS: tuple[str, ...] = (
    TASK_HEADING,
    CODE_HEADING,
    RESULT_HEADING,
    TRACEBACK_HEADING,
    FAILING_TEST_HEADING,
    ANALYSIS_HEADING,
    INSTRUCTIONS_HEADING,
)
# sections whose body is one fenced block (read back fence to fence, so "## ..." lines inside are code)
FENCED_SECTIONS = {CODE_HEADING: "python", TRACEBACK_HEADING: "text", FAILING_TEST_HEADING: "python"}

# the labelled lines of the Test result section, in order ("Message:" is last and may span lines)
TESTS_LABEL = "Tests:"
STATUS_LABEL = "Status:"
ERROR_TYPE_LABEL = "Error type:"
PHASE_LABEL = "Phase:"
MESSAGE_LABEL = "Message:"

FEEDBACK_LABELS: Mapping[str, str] = {"visible": "visible example tests", "hidden": "hidden tests"}
DEFAULT_FEEDBACK_CHARS = 6000
MIN_FEEDBACK_CHARS = 800

GENERATOR_INSTRUCTION = (
    "Write the complete Python function `{entry_point}` that solves the task. Answer with the whole "
    "function, including the imports it needs, in one ```python code block."
)
ANALYZER_INSTRUCTION = (
    "Explain in a few sentences why the code above fails: which line or assumption is wrong, and why. "
    "Name the error. Do not write code."
)
REFINER_INSTRUCTION = (
    "Rewrite the function `{entry_point}` so that it solves the task and passes the tests, using the "
    "feedback above. Answer with the complete corrected function in one ```python code block."
)
# the fixed opening words of each instruction, for recognising a role from its user message
INSTRUCTION_PREFIXES: Mapping[str, str] = {
    "generator": GENERATOR_INSTRUCTION.split("`")[0],
    "analyzer": ANALYZER_INSTRUCTION.split(":")[0],
    "refiner": REFINER_INSTRUCTION.split("`")[0],
}

# Plain words for the ways a program can end without a Python exception of its own.
STATUS_SENTENCES: Mapping[Status, str] = {
    Status.PASSED: "All {source} passed.",
    Status.FAILED: "The code raised an exception while {phase}.",
    Status.TIMEOUT: (
        "The program timed out: it did not finish within its time limit, so it probably loops forever "
        "or is far too slow."
    ),
    Status.OUT_OF_MEMORY: (
        "The program ran out of memory: it probably builds a huge data structure or recurses without end."
    ),
    Status.CRASHED: (
        "The program crashed: its process died without reporting a result (for example killed by a "
        "signal or by os._exit)."
    ),
}
_PHASES = {"load": "loading the code", "test": "running the tests", None: "running"}
_STATUS_ERROR_TYPES = {
    Status.TIMEOUT: "Timeout",
    Status.OUT_OF_MEMORY: "MemoryError",
    Status.CRASHED: "Crash",
}

# Shares of the feedback budget for the sections that can be long; short sections keep all their text
# and what they leave is shared among the long ones in these proportions.
SECTION_WEIGHTS: Mapping[str, int] = {"code": 4, "traceback": 3, "analysis": 2, "message": 1, "test": 1}

_CUT_MARKER = "[... {n} characters cut ...]"


# ---------------------------------------------------------------------------------------------------------
# bounding text


def clip_text(text: str, limit: int, *, comment: str = "") -> str:
    """``text`` cut to at most ``limit`` characters, keeping its head and tail.

    The middle is replaced by one marker line that says how many characters were cut (prefixed with
    ``comment``, e.g. ``"# "``, so cut code still reads as code). Cuts fall on line boundaries when a
    line boundary is near, so no half lines are shown. The head gets a little more room than the tail,
    except that the last line is kept whole when it fits: a traceback starts with the call that failed
    and ends with the error, and both matter.
    """
    if limit < 0:
        raise ValueError(f"clip_text: limit must be >= 0, got {limit}")
    if len(text) <= limit:
        return text
    marker = comment + _CUT_MARKER.format(n=len(text))
    room = limit - len(marker) - 2  # two newlines around the marker
    if room < 2:
        return (comment + _CUT_MARKER.format(n=len(text)))[:limit]
    head_len = room * 3 // 5
    tail_len = room - head_len
    last_line = len(text) - text.rstrip("\n").rfind("\n") - 1
    if tail_len < last_line <= room * 4 // 5:  # the last line (the error itself) is worth a shorter head
        tail_len = last_line
        head_len = room - tail_len
    head = text[:head_len]
    tail = text[len(text) - tail_len :]
    nl = head.rfind("\n")
    if nl >= head_len * 2 // 3:
        head = head[:nl]
    nl = tail.find("\n")
    if 0 <= nl <= tail_len // 3:
        tail = tail[nl + 1 :]
    marker = comment + _CUT_MARKER.format(n=len(text) - len(head) - len(tail))
    return f"{head.rstrip(chr(10))}\n{marker}\n{tail}"


def _fair_shares(lengths: Mapping[str, int], weights: Mapping[str, int], budget: int) -> dict[str, int]:
    """Per-section character caps summing to at most ``budget``: weighted max-min fairness.

    A section shorter than its share keeps everything, and its unused share goes to the others.
    """
    caps = {k: 0 for k in lengths}
    open_ = {k for k, n in lengths.items() if n > 0}
    left = budget
    while open_ and left > 0:
        total_w = sum(weights[k] for k in open_)
        fits = {k for k in open_ if lengths[k] <= left * weights[k] // total_w}
        if not fits:
            for k in open_:
                caps[k] = left * weights[k] // total_w
            break
        for k in fits:
            caps[k] = lengths[k]
            left -= lengths[k]
        open_ -= fits
    return caps


def _fence(text: str) -> str:
    """A backtick fence longer than any backtick run in ``text``, so the text cannot close it."""
    runs = [len(m) for m in re.findall(r"`+", text)]
    return "`" * max(3, max(runs, default=0) + 1)


def _fenced(text: str, lang: str) -> str:
    fence = _fence(text)
    return f"{fence}{lang}\n{text.rstrip(chr(10))}\n{fence}"


def _demote_headings(text: str) -> str:
    """Free text (a message, an analysis) with any line that equals one of our headings indented by a
    space, so that reading the message back never mistakes it for a section boundary."""
    return "\n".join(" " + line if line.rstrip() in SECTION_HEADINGS else line for line in text.split("\n"))


# ---------------------------------------------------------------------------------------------------------
# feedback


def _source_label(feedback_source: str) -> str:
    try:
        return FEEDBACK_LABELS[feedback_source]
    except KeyError:
        raise ValueError(
            f"feedback_source must be one of {', '.join(map(repr, FEEDBACK_LABELS))}, got {feedback_source!r}"
        ) from None


def result_error_type(result: ExecResult) -> str | None:
    """The error type to report: the sandbox's, or the status's own name for a timeout, OOM or crash."""
    if result.status is Status.PASSED:
        return None
    return result.error_type or _STATUS_ERROR_TYPES.get(result.status, "Error")


def feedback_text(
    code: str,
    result: ExecResult,
    analysis: str | None = None,
    *,
    feedback_source: str = "visible",
    max_chars: int = DEFAULT_FEEDBACK_CHARS,
) -> str:
    """What a model is told about a run of ``code``: code, result, traceback, failing test, analysis.

    ``feedback_source`` says which tests produced ``result`` (``visible`` example tests or ``hidden``
    tests); the text says it, because a refiner shown hidden-test failures is an oracle setting that
    must stay visible. The whole text is at most ``max_chars`` characters.
    """
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < MIN_FEEDBACK_CHARS:
        raise ValueError(f"max_chars must be an integer >= {MIN_FEEDBACK_CHARS}, got {max_chars!r}")
    source = _source_label(feedback_source)
    error_type = result_error_type(result)
    sentence = STATUS_SENTENCES[result.status].format(
        source=source, phase=_PHASES.get(result.phase, "running")
    )

    raw = {
        "code": code.strip("\n") or "# (no code was found in the previous answer)",
        "message": _demote_headings(result.message.strip()),
        "traceback": result.traceback.strip("\n") if not result.passed else "",
        "test": (result.failing_test or "").strip() if not result.passed else "",
        "analysis": _demote_headings(analysis.strip()) if analysis and analysis.strip() else "",
    }

    def render(parts: Mapping[str, str]) -> str:
        result_lines = [f"{TESTS_LABEL} {source}", f"{STATUS_LABEL} {result.status.value}"]
        if error_type:
            result_lines.append(f"{ERROR_TYPE_LABEL} {error_type}")
        if result.phase:
            result_lines.append(f"{PHASE_LABEL} {_PHASES.get(result.phase, result.phase)}")
        result_lines.append(sentence)
        if parts["message"]:
            result_lines.append(f"{MESSAGE_LABEL} {parts['message']}")
        sections = [
            f"{CODE_HEADING}\n{_fenced(parts['code'], FENCED_SECTIONS[CODE_HEADING])}",
            f"{RESULT_HEADING}\n" + "\n".join(result_lines),
        ]
        if parts["traceback"]:
            sections.append(f"{TRACEBACK_HEADING}\n{_fenced(parts['traceback'], 'text')}")
        if parts["test"]:
            sections.append(f"{FAILING_TEST_HEADING}\n{_fenced(parts['test'], 'python')}")
        if parts["analysis"]:
            sections.append(f"{ANALYSIS_HEADING}\n{parts['analysis']}")
        return "\n\n".join(sections)

    full = render(raw)
    if len(full) <= max_chars:
        return full
    # everything but the bounded contents (headings, labels, fences), plus slack for the cut markers' newlines
    overhead = len(full) - sum(len(v) for v in raw.values()) + 16
    lengths = {k: len(v) for k, v in raw.items()}
    caps = _fair_shares(lengths, SECTION_WEIGHTS, max_chars - overhead)
    clipped = {k: clip_text(v, caps[k], comment="# " if k == "code" else "") for k, v in raw.items()}
    text = render(clipped)
    if len(text) > max_chars:  # only reachable through pathological fences; keep the promise anyway
        text = clip_text(text, max_chars)
    return text


# ---------------------------------------------------------------------------------------------------------
# messages per role


def _variant(role: str, variant: PromptVariant | int | str) -> PromptVariant:
    """A prompt variant given as itself, as its index in ``role``'s pool, or by name."""
    if isinstance(variant, PromptVariant):
        return variant
    if isinstance(variant, bool):
        raise TypeError(f"{role} prompt: expected a PromptVariant, an index or a name, got {variant!r}")
    if isinstance(variant, int):
        return prompt_variant(role, variant)
    if isinstance(variant, str):
        return prompt_variant(role, prompt_index(role, variant))
    raise TypeError(
        f"{role} prompt: expected a PromptVariant, an index or a name, got {type(variant).__name__}"
    )


def _task(problem: Problem) -> str:
    return f"{TASK_HEADING}\n{_demote_headings(problem.task_text.strip(chr(10)))}"


def _instructions(template: str, problem: Problem) -> str:
    return f"{INSTRUCTIONS_HEADING}\n{template.format(entry_point=problem.entry_point)}"


def generator_messages(problem: Problem, variant: PromptVariant | int | str = 0) -> tuple[ChatMessage, ...]:
    """System prompt and task for a generator: write the function from scratch."""
    v = _variant("generator", variant)
    user = "\n\n".join([_task(problem), _instructions(GENERATOR_INSTRUCTION, problem)])
    return (ChatMessage("system", v.system), ChatMessage("user", user))


def analyzer_messages(
    problem: Problem,
    variant: PromptVariant | int | str,
    code: str,
    result: ExecResult,
    *,
    feedback_source: str = "visible",
    max_chars: int = DEFAULT_FEEDBACK_CHARS,
) -> tuple[ChatMessage, ...]:
    """System prompt, task and feedback for an analyzer: explain the failure in words, no code."""
    v = _variant("analyzer", variant)
    feedback = feedback_text(code, result, None, feedback_source=feedback_source, max_chars=max_chars)
    user = "\n\n".join([_task(problem), feedback, _instructions(ANALYZER_INSTRUCTION, problem)])
    return (ChatMessage("system", v.system), ChatMessage("user", user))


def refiner_messages(
    problem: Problem,
    variant: PromptVariant | int | str,
    code: str,
    result: ExecResult,
    analysis: str | None = None,
    *,
    feedback_source: str = "visible",
    max_chars: int = DEFAULT_FEEDBACK_CHARS,
) -> tuple[ChatMessage, ...]:
    """System prompt, task, feedback and the analysis (if any) for a refiner: rewrite the function."""
    v = _variant("refiner", variant)
    feedback = feedback_text(code, result, analysis, feedback_source=feedback_source, max_chars=max_chars)
    user = "\n\n".join([_task(problem), feedback, _instructions(REFINER_INSTRUCTION, problem)])
    return (ChatMessage("system", v.system), ChatMessage("user", user))


# ---------------------------------------------------------------------------------------------------------
# reading messages back


def split_sections(text: str) -> dict[str, str]:
    """The sections of a user message built here, by heading (the heading line itself excluded).

    A fenced section's value is the text inside its fence. A heading line counts only when it is one
    of :data:`SECTION_HEADINGS` on a line of its own outside a fence; text before the first heading is
    kept under ``""``. A heading that appears twice keeps its first section.
    """
    out: dict[str, str] = {}
    lines = text.split("\n")
    current, buf = "", []
    i = 0

    def flush() -> None:
        body = "\n".join(buf).strip("\n")
        if current not in out and (current or body):
            out[current] = body

    while i < len(lines):
        line = lines[i]
        if line in SECTION_HEADINGS:
            flush()
            current, buf = line, []
            i += 1
            if line in FENCED_SECTIONS and i < len(lines):
                m = re.match(r"^(`{3,})", lines[i])
                if m:
                    fence = m.group(1)
                    i += 1
                    while i < len(lines) and lines[i] != fence:
                        buf.append(lines[i])
                        i += 1
                    i += 1  # the closing fence
            continue
        buf.append(line)
        i += 1
    flush()
    return out


@dataclass(frozen=True)
class Feedback:
    """Execution feedback read back from a message built by :func:`feedback_text`.

    ``status`` and ``error_type`` are None when the text has no Test result section (a message from
    elsewhere); ``source`` is the tests label as written (``visible example tests``, ``hidden tests``).
    """

    code: str | None
    source: str | None
    status: str | None
    error_type: str | None
    phase: str | None
    message: str
    traceback: str
    failing_test: str
    analysis: str

    @property
    def has_result(self) -> bool:
        return self.status is not None

    @property
    def passed(self) -> bool:
        return self.status == Status.PASSED.value


def _labelled(body: str) -> dict[str, str]:
    values: dict[str, str] = {}
    lines = body.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(MESSAGE_LABEL):
            values[MESSAGE_LABEL] = "\n".join([line[len(MESSAGE_LABEL) :].strip(), *lines[i + 1 :]]).strip()
            break
        for label in (TESTS_LABEL, STATUS_LABEL, ERROR_TYPE_LABEL, PHASE_LABEL):
            if line.startswith(label) and label not in values:
                values[label] = line[len(label) :].strip()
    return values


def parse_feedback(text: str) -> Feedback:
    """The parts of the feedback inside a user message (analyzer or refiner), by section heading."""
    sections = split_sections(text)
    result = _labelled(sections.get(RESULT_HEADING, ""))
    return Feedback(
        code=sections.get(CODE_HEADING),
        source=result.get(TESTS_LABEL),
        status=result.get(STATUS_LABEL),
        error_type=result.get(ERROR_TYPE_LABEL),
        phase=result.get(PHASE_LABEL),
        message=result.get(MESSAGE_LABEL, ""),
        traceback=sections.get(TRACEBACK_HEADING, ""),
        failing_test=sections.get(FAILING_TEST_HEADING, ""),
        analysis=sections.get(ANALYSIS_HEADING, ""),
    )


__all__ = [
    "ANALYSIS_HEADING",
    "ANALYZER_INSTRUCTION",
    "CODE_HEADING",
    "DEFAULT_FEEDBACK_CHARS",
    "FAILING_TEST_HEADING",
    "FEEDBACK_LABELS",
    "GENERATOR_INSTRUCTION",
    "INSTRUCTIONS_HEADING",
    "INSTRUCTION_PREFIXES",
    "MIN_FEEDBACK_CHARS",
    "REFINER_INSTRUCTION",
    "RESULT_HEADING",
    "SECTION_HEADINGS",
    "STATUS_SENTENCES",
    "TASK_HEADING",
    "TRACEBACK_HEADING",
    "Feedback",
    "analyzer_messages",
    "clip_text",
    "feedback_text",
    "generator_messages",
    "parse_feedback",
    "refiner_messages",
    "result_error_type",
    "split_sections",
]
