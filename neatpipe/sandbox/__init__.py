"""Fast isolated execution of untrusted Python programs against tests.

>>> from neatpipe.sandbox import Sandbox, Program, TestCase            # doctest: +SKIP
>>> with Sandbox() as sandbox:
...     result = sandbox.run(Program("def f(x):\\n    return x + 1", (TestCase("assert f(1) == 2"),)))
>>> result.status
<Status.PASSED: 'passed'>

See ``docs/sandbox.md`` for what is isolated, the fallbacks and the result fields.
"""

from neatpipe.sandbox.limits import Isolation, Limits
from neatpipe.sandbox.pool import Sandbox, SandboxError, default_workers, run_program
from neatpipe.sandbox.program import ExecResult, Program, Status, TestCase, TestResult
from neatpipe.sandbox.report import Feature, IsolationReport

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
