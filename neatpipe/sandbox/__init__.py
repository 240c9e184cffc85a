"""Fast isolated execution of untrusted Python programs against tests.

>>> from neatpipe.sandbox import Sandbox, Program, TestCase            # doctest: +SKIP
>>> with Sandbox() as sandbox:
...     result = sandbox.run(Program("def f(x):\\n    return x + 1", (TestCase("assert f(1) == 2"),)))
>>> result.status
<Status.PASSED: 'passed'>

See ``docs/sandbox.md`` for what is isolated, the fallbacks and the result fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neatpipe.lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and editors; at run time each name loads on first use
    from neatpipe.sandbox.limits import Isolation, Limits
    from neatpipe.sandbox.pool import Sandbox, SandboxError, default_workers, run_program
    from neatpipe.sandbox.program import ExecResult, Program, Status, TestCase, TestResult
    from neatpipe.sandbox.report import Feature, IsolationReport

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Isolation": ("neatpipe.sandbox.limits", "Isolation"),
        "Limits": ("neatpipe.sandbox.limits", "Limits"),
        "Sandbox": ("neatpipe.sandbox.pool", "Sandbox"),
        "SandboxError": ("neatpipe.sandbox.pool", "SandboxError"),
        "default_workers": ("neatpipe.sandbox.pool", "default_workers"),
        "run_program": ("neatpipe.sandbox.pool", "run_program"),
        "ExecResult": ("neatpipe.sandbox.program", "ExecResult"),
        "Program": ("neatpipe.sandbox.program", "Program"),
        "Status": ("neatpipe.sandbox.program", "Status"),
        "TestCase": ("neatpipe.sandbox.program", "TestCase"),
        "TestResult": ("neatpipe.sandbox.program", "TestResult"),
        "Feature": ("neatpipe.sandbox.report", "Feature"),
        "IsolationReport": ("neatpipe.sandbox.report", "IsolationReport"),
    },
    globals(),
)


__all__ = [
    "ExecResult",
    "Feature",
    "Isolation",
    "IsolationReport",
    "Limits",
    "Program",
    "Sandbox",
    "SandboxError",
    "Status",
    "TestCase",
    "TestResult",
    "default_workers",
    "run_program",
]
