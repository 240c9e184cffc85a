"""What runs inside each forked child: the harness, the candidate and the tests, reported over one fd.

The worker loads this module (and :mod:`neatpipe.sandbox.guard`) with a private copy of the
builtins, and the module keeps its own references to every function it calls once candidate code has
started (``os.write``, ``os._exit``, the JSON string encoder, ...). So a program that patches
``builtins.isinstance``, ``os.write`` or ``json.dumps`` changes nothing about how its results are
computed or reported.

Order of execution (see :mod:`neatpipe.sandbox.program` for the contract):

1. seed ``random`` (and numpy when loaded), run the trusted harness in its own namespace whose
   builtins are a private copy, and add the modules it imports to the watch (the worker already
   snapshotted ``builtins`` and the common standard modules);
2. seed again, compile and run the candidate as module ``__candidate__`` (file ``<candidate>``);
3. export the entry point and the other public candidate names the harness lacks, each callable
   wrapped by :class:`~neatpipe.sandbox.guard.Guard`;
4. seed again and run each test (file ``<test N>``) in the harness namespace, reporting each;
5. check that the recorded modules were not patched, flush stdout/stderr, report ``end`` and exit
   with status 0.

What a library does to those modules while it is being imported (torch replaces
``typing._collect_parameters``) is the library's own business, not the program's: every import of a
module not loaded yet goes through :func:`_tracked_find_and_load`, which checks the watch when the
import starts (a change made before it is the program's) and, when the import of a library module
(from the standard library or site-packages) ends, takes the watched modules' new state as the
reference.

Running the harness before the candidate means every module object the tests use is bound before
untrusted code runs. Every message carries the program's random token; the pool accepts a pass only
from a complete, well-ordered sequence of messages followed by a clean exit (see
:mod:`neatpipe.sandbox.classify`).
"""

from __future__ import annotations

import _frozen_importlib
import builtins
import collections
import gc
import linecache
import mmap
import sys
import traceback
import types
from _random import Random as _CRandom
from collections.abc import Callable, Iterable
from os import _exit as _os_exit
from os import write as _os_write
from random import _inst as _random_instance
from typing import Any, NoReturn

from neatpipe.sandbox.program import CANDIDATE_FILENAME, CANDIDATE_MODULE, HARNESS_FILENAME, test_filename

try:
    from _json import encode_basestring_ascii as _json_string
except ImportError:  # pragma: no cover - CPython always has the C accelerator
    from json.encoder import py_encode_basestring_ascii as _json_string

RESULT_FD = 3  # the result channel: the write end of a pipe the worker reads
EXIT_RUNNER_ERROR = 113  # the runner itself failed (reported as a crash)
MESSAGE_CHARS = 1000
TRACEBACK_CHARS = 4000
TRACEBACK_FRAMES = (10, 40)  # frames kept from the start and the end of a long (recursive) traceback
CHANNEL_BUDGET = 512 * 1024  # after this many bytes, failures are reported without message and traceback
RESERVE_BYTES = 1 << 20  # address space set aside so that a MemoryError can still be reported

# Private references, taken when the worker loads this module, before any candidate code exists.
_modules = sys.modules
_gc_enable = gc.enable
_settrace = sys.settrace
_setprofile = sys.setprofile
_str_copy = str.__str__
_type_name = type.__dict__["__name__"].__get__
_ModuleType = types.ModuleType
_real_builtins = builtins
_float_repr = float.__repr__
_int_repr = int.__repr__

# Set once per worker by configure().
_harness_builtins: dict[str, Any] = {}
_trusted_prefixes: tuple[str, ...] = ()
_watch: Any = None  # guard.ModuleWatch over the preloaded modules the tests may use
_guard_module: Any = None
_reserve: mmap.mmap | None = None  # address space set aside (in the worker, once) for MemoryError reports
_sources: dict[str, str] = {}  # file name -> source, for tracebacks
# Import tracking (see the module docstring): on in the child only.
_original_find_and_load = _frozen_importlib._find_and_load
_tracking = False
_import_depth = 0
_tampered_before_import: str | None = None
_UNWATCHED = frozenset({"sys", "builtins", "__harness__", CANDIDATE_MODULE, "__main__", "tempfile", "os"})


def configure(guard_module: Any, trusted_prefixes: tuple[str, ...], watched: tuple[str, ...]) -> None:
    """Per-worker setup: the private guard module, trusted file prefixes, modules to snapshot."""
    global _guard_module, _trusted_prefixes, _watch, _harness_builtins, _reserve
    _guard_module = guard_module
    _reserve = mmap.mmap(-1, RESERVE_BYTES)
    _trusted_prefixes = trusted_prefixes
    _watch = guard_module.ModuleWatch(guard_module.DictVersions.create())
    for name in watched:
        if name in _modules:
            _watch.add(_modules[name])
    _harness_builtins = dict(_real_builtins.__dict__)
    _frozen_importlib._find_and_load = _tracked_find_and_load  # every new import, however it is asked for


def _tracked_find_and_load(name: str, import_: Any) -> Any:
    """The import system's loader of modules not loaded yet, with the watch kept in step.

    At the start of an outermost import, a watched name already changed was changed by the program:
    that is remembered. When the outermost import of a library module (its file under the standard
    library or site-packages) ends, what the import did to the watched modules becomes the reference.
    """
    global _import_depth, _tampered_before_import
    if not _tracking:
        return _original_find_and_load(name, import_)
    if _import_depth == 0 and _tampered_before_import is None:
        _tampered_before_import = _watch.changed(_modules)
    _import_depth += 1
    try:
        return _original_find_and_load(name, import_)
    finally:
        _import_depth -= 1
        if _import_depth == 0 and _is_library(_modules.get(name)):
            _watch.accept()


def _is_library(module: object) -> bool:
    """True for a module built into the interpreter or loaded from a trusted (library) file."""
    if type(module) is not _ModuleType:
        return False
    spec = module.__dict__.get("__spec__")
    origin = getattr(spec, "origin", None)
    if origin in ("built-in", "frozen"):
        return True
    return type(origin) is str and origin.startswith(_trusted_prefixes) and not origin.startswith("<")


class Job:
    """One program, ready to run: the worker fills it in (harness and tests already compiled)."""

    __slots__ = ("code", "harness", "harness_error", "harness_modules", "tests", "entry_point", "seed",
                 "stop_on_failure", "token", "flushers")  # fmt: skip

    def __init__(self, **fields: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, fields[name])


# -- the result channel ------------------------------------------------------------------------


def _encode(value: object) -> str:
    """JSON for the plain data the runner itself builds (dict, list, str, int, float, bool, None)."""
    kind = type(value)
    if kind is str:
        return _json_string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int:
        return _int_repr(value)
    if kind is float:
        return _float_repr(value) if value == value and value not in (float("inf"), float("-inf")) else "null"
    if kind is dict:
        return "{" + ",".join(_json_string(k) + ":" + _encode(v) for k, v in value.items()) + "}"
    if kind is list or kind is tuple:
        return "[" + ",".join(_encode(v) for v in value) + "]"
    raise TypeError(f"cannot encode {kind!r}")


class Channel:
    """Writes one line per event to the result pipe, each prefixed with the program's token."""

    __slots__ = ("_fd", "_prefix", "sent")

    def __init__(self, fd: int, token: str) -> None:
        self._fd = fd
        self._prefix = token + " "
        self.sent = 0

    def send(self, event: dict[str, Any]) -> None:
        data = memoryview((self._prefix + _encode(event) + "\n").encode("ascii"))
        self.sent += len(data)
        while data:
            data = data[_os_write(self._fd, data) :]


# -- describing exceptions ---------------------------------------------------------------------


def _text(value: object, limit: int = MESSAGE_CHARS) -> str:
    """``str(value)`` as an exact, bounded str; never raises (the value may be hostile)."""
    try:
        text = _str_copy(str(value))
    except BaseException:  # noqa: BLE001 - a hostile __str__ may raise anything
        return "<unprintable>"
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"


def _exception_name(exc: BaseException) -> str:
    return _str_copy(_type_name(type(exc)))


def _message(exc: BaseException) -> str:
    if type(exc) is SystemExit:
        code = "" if exc.code is None else _text(exc.code, 200)
        return f"exit({code}) was called: a program must not exit before its tests finish"
    return _text(exc)


def register_source(filename: str, source: str) -> None:
    """Make ``source`` the text tracebacks show for ``filename``."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)


def _frames(exc: BaseException, keep: Iterable[str]) -> list[tuple[Any, int]]:
    """The first and last frames of ``exc`` whose file is in ``keep`` (bounded memory, whatever the depth)."""
    keep = frozenset(keep)
    head_size, tail_size = TRACEBACK_FRAMES
    head: list[tuple[Any, int]] = []
    tail: collections.deque[tuple[Any, int]] = collections.deque(maxlen=tail_size)
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename in keep:
            (head if len(head) < head_size else tail).append((frame, lineno))
    return head + list(tail)


def _format(exc: BaseException, frames: list[tuple[Any, int]]) -> str:
    try:
        lines = ["Traceback (most recent call last):\n"] if frames else []
        lines += traceback.StackSummary.extract(iter(frames)).format()
        lines += traceback.format_exception_only(type(exc), exc)
        text = _str_copy("".join(lines))
    except BaseException:  # noqa: BLE001 - formatting runs hostile __str__ and patched modules
        text = f"{_exception_name(exc)}: {_text(exc)}\n"
    return text if len(text) <= TRACEBACK_CHARS else "...\n" + text[-TRACEBACK_CHARS:]


def describe(exc: BaseException, keep: Iterable[str], line_file: str | None = None) -> dict[str, Any]:
    """Type, message, trimmed traceback and (for a test) the failing test line of ``exc``.

    Sources are registered with linecache here, on the failure path only, so passing programs do
    not pay for it.
    """
    keep = tuple(keep)
    for filename in keep:
        if filename in _sources:
            register_source(filename, _sources[filename])
    frames = _frames(exc, keep)
    line = None
    if line_file is not None:
        for frame, lineno in reversed(frames):
            if frame.f_code.co_filename == line_file:
                line = linecache.getline(line_file, lineno).strip() or None
                break
    return {"type": _exception_name(exc), "msg": _message(exc), "tb": _format(exc, frames), "line": line}


def failure(exc: BaseException, keep: Iterable[str], line_file: str | None = None) -> dict[str, Any]:
    """:func:`describe`, made safe for a MemoryError: the reserve is released first, and if there is
    still no memory to format a traceback, the frames are dropped and only the type is reported."""
    if isinstance(exc, MemoryError):
        _release_reserve()
    try:
        return describe(exc, keep, line_file)
    except MemoryError:
        exc.__traceback__ = None  # frees the frames of a deep recursion
        return {"type": _exception_name(exc), "msg": "", "tb": "", "line": None}
    except BaseException:  # noqa: BLE001 - linecache/traceback broken by patched builtins or modules
        return {"type": _exception_name(exc), "msg": _text(exc), "tb": "", "line": None}


# -- running -----------------------------------------------------------------------------------


_c_seed = _CRandom.seed  # C code: random.seed() itself is Python that looks up patchable builtins


def _seed(seed: int) -> None:
    _c_seed(_random_instance, seed)  # what random.seed(int) does, minus its Python wrapper
    _random_instance.gauss_next = None
    numpy = _modules.get("numpy")
    if numpy is not None:
        try:
            numpy.random.seed(seed % 2**32)
        except BaseException:  # noqa: BLE001 - a broken or fake numpy: seeding is best effort
            pass


def _watch_harness_modules(names: tuple[str, ...]) -> None:
    """Add the modules the harness imports (found in its code by the worker) to the watch."""
    for name in names:
        module = _modules.get(name)
        if type(module) is _ModuleType and name not in _UNWATCHED:
            _watch.add(module, registered=True)


def _release_reserve() -> None:
    """Give back the reserved address space, so that reporting a MemoryError can allocate."""
    if _reserve is not None:
        _reserve.close()


def _load_candidate(job: Job) -> tuple[types.ModuleType | None, dict[str, Any] | None]:
    _sources[CANDIDATE_FILENAME] = job.code
    try:
        code = compile(job.code, CANDIDATE_FILENAME, "exec", dont_inherit=True)
        module = _ModuleType(CANDIDATE_MODULE)
        module.__dict__["__builtins__"] = _real_builtins  # never the runner's private copy
        _modules[CANDIDATE_MODULE] = module
        exec(code, module.__dict__)
    except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt are failures too
        return None, failure(exc, (CANDIDATE_FILENAME,))
    return module, None


def _export(
    candidate: dict[str, Any], harness: dict[str, Any], entry_point: str | None, guard: Any
) -> dict | None:
    """Copy the entry point and public candidate names into the harness namespace (harness wins)."""
    if entry_point and entry_point not in candidate:
        message = f"name {entry_point!r} is not defined: the candidate code must define {entry_point}()"
        return {"type": "NameError", "msg": message, "tb": f"NameError: {message}\n", "line": None}
    for name, value in tuple(candidate.items()):
        if type(name) is not str or name in harness:
            continue
        if name != entry_point and (name.startswith("_") or name in _harness_builtins):
            continue
        if callable(value) and not issubclass(type(value), type):
            value = guard.wrap(value, name)
        harness[name] = value
    return None


def _run_tests(job: Job, harness: dict[str, Any], guard: Any, channel: Channel) -> None:
    """Run every test (or up to the first failure), sending one event each."""
    for index, (code, source, compile_error) in enumerate(job.tests, 1):
        filename = test_filename(index)
        _sources[filename] = source
        guard.violation = None
        error = compile_error
        if code is not None:
            try:
                exec(code, harness)
            except BaseException as exc:  # noqa: BLE001
                error = failure(exc, (CANDIDATE_FILENAME, filename), filename)
                del exc
            _settrace(None)
            _setprofile(None)
        if error is None and guard.violation is not None:
            error = {"type": "UntrustedReturnValue", "msg": guard.violation, "tb": "", "line": None}
        if error is None:
            channel.send({"k": "test", "i": index})
            continue
        if channel.sent > CHANNEL_BUDGET:
            error = {"type": error["type"], "msg": "", "tb": "", "line": error["line"]}
        channel.send({"k": "test", "i": index, "err": error})
        if job.stop_on_failure:
            break


def _execute(job: Job, channel: Channel) -> None:
    harness: dict[str, Any] = {"__name__": "__harness__", "__builtins__": _harness_builtins}
    if job.harness_error is not None:
        channel.send({"k": "harness", "err": job.harness_error})
        return
    _seed(job.seed)
    if job.harness is not None:
        try:
            exec(job.harness, harness)
        except BaseException as exc:  # noqa: BLE001
            channel.send({"k": "harness", "err": failure(exc, (HARNESS_FILENAME,))})
            return
    _watch_harness_modules(job.harness_modules)
    _seed(job.seed)
    module, error = _load_candidate(job)
    _settrace(None)
    _setprofile(None)
    guard = _guard_module.Guard(_trusted_prefixes)
    if module is not None:
        error = _export(module.__dict__, harness, job.entry_point, guard)
    if error is not None:
        channel.send({"k": "load", "err": error})
        return
    channel.send({"k": "load"})
    _seed(job.seed)
    _run_tests(job, harness, guard, channel)
    changed = _tampered_before_import or _watch.changed(_modules)
    if changed is not None:
        channel.send({"k": "tamper", "what": changed})


def _flush(flushers: Iterable[Callable[[], object]]) -> None:
    for flush in flushers:
        try:
            flush()
        except BaseException:  # noqa: BLE001 - the program may have closed its stdout
            pass


def run(job: Job) -> NoReturn:
    """Run ``job`` in this (child) process, report over :data:`RESULT_FD` and exit."""
    global _tracking
    try:
        _tracking = True
        _gc_enable()  # the worker runs without the cyclic collector; programs get the usual one
        channel = Channel(RESULT_FD, job.token)
        _execute(job, channel)
        _flush(job.flushers)
        channel.send({"k": "end"})
    except BaseException as exc:  # noqa: BLE001 - report what broke the runner on stderr, then crash
        try:
            _os_write(2, f"\nneatpipe sandbox runner error: {_exception_name(exc)}: {_text(exc)}\n".encode())
        except BaseException:  # noqa: BLE001
            pass
        _os_exit(EXIT_RUNNER_ERROR)
    _os_exit(0)
