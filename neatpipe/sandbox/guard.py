"""Checks that stop a program from passing by cheating instead of computing.

Two defences live here, both used inside the child process after candidate code has run:

* :class:`Guard` wraps every callable the candidate exports to the harness. A returned value whose
  type defines comparison, truth, hashing or arithmetic dunders in code that is neither built in nor
  part of an installed library (``class AlwaysEqual: def __eq__(self, o): return True``, an ``int``
  subclass overriding ``__eq__``, such objects nested in lists, tuples, dicts and sets, or yielded by
  a returned iterator) is rejected with :class:`UntrustedReturnValue`.
* :func:`snapshot` / :func:`find_change` record which objects a module's names point to and report
  the first name the program rebound (``math.isclose = lambda *a, **k: True``).

The worker loads this module with a private copy of the builtins (see ``worker.load_private``), and
everything here reads type internals through descriptors taken from ``type`` itself, so patching
``builtins.isinstance`` or giving a metaclass a fake ``__mro__`` property changes nothing.
"""

from __future__ import annotations

import array
import collections
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from operator import eq as _eq
from operator import is_ as _is
from typing import Any

_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class created at run time (by a class statement or type())
_type_flags = type.__dict__["__flags__"].__get__
_type_mro = type.__dict__["__mro__"].__get__
_type_dict = type.__dict__["__dict__"].__get__
_type_name = type.__dict__["__name__"].__get__
_object_repr = object.__repr__
_str_copy = str.__str__  # an exact str copy of a str subclass instance, running no user code

# Dunders a test can be fooled through: comparisons, truth, hashing (set/dict membership), the
# arithmetic a tolerance check does (abs(a - b) < eps), numeric conversions, and class faking.
SENSITIVE_DUNDERS = frozenset(
    {
        "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__len__", "__hash__",
        "__contains__", "__abs__", "__neg__", "__pos__", "__invert__", "__round__", "__trunc__",
        "__floor__", "__ceil__", "__float__", "__int__", "__index__", "__complex__",
        "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
        "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__pow__", "__rpow__",
        "__and__", "__rand__", "__or__", "__ror__", "__xor__", "__rxor__",
        "__class__", "__instancecheck__", "__subclasscheck__",
    }
)  # fmt: skip

# Implementations written in C: their behaviour is the built-in one whatever class they sit in.
_C_CALLABLES = (
    types.BuiltinFunctionType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.MethodWrapperType,
    types.ClassMethodDescriptorType,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
)

# Exact types whose values cannot hide user code (all static C types without elements).
_ATOMS = (int, float, complex, str, bytes, bytearray, bool, type(None), range, type(...), memoryview)
_ATOM_IDS = frozenset(id(t) for t in _ATOMS)
_is_atom_id = _ATOM_IDS.__contains__
_PLAIN_CONTAINERS = frozenset(id(t) for t in (list, tuple, set, frozenset))
_DICT_VIEWS = (type({}.keys()), type({}.values()), type({}.items()))
_SEQUENCE_BASES = (list, tuple, set, frozenset, collections.deque)


class UntrustedReturnValue(BaseException):
    """A value whose comparisons or truth come from program code reached the tests.

    A BaseException so that a harness's ``except Exception`` cannot swallow it.
    """


def _text(value: object, limit: int = 200) -> str:
    try:
        if issubclass(type(value), type):
            return _str_copy(_type_name(value))[:limit]
        return _object_repr(value)[:limit]
    except Exception:  # a broken metaclass: never let a message crash the check
        return "<object>"


def _defines(cls: type, name: str) -> bool:
    """True when ``cls`` or a base defines ``name``, read without running any metaclass code."""
    return any(name in _type_dict(klass) for klass in _type_mro(cls))


class Guard:
    """Rejects values whose sensitive dunders come from untrusted code; wraps exported callables.

    ``trusted_prefixes`` are file-name prefixes of trusted code: the standard library and
    site-packages directories, frozen modules and the harness. ``violation`` keeps the last rejection
    so that the runner fails the test even if the harness caught the exception.
    """

    def __init__(self, trusted_prefixes: tuple[str, ...]) -> None:
        self._prefixes = trusted_prefixes
        self._verdicts: dict[int, tuple[type, str | None]] = {}
        self.violation: str | None = None

    # -- types ---------------------------------------------------------------------------------

    def _trusted_impl(self, impl: object) -> bool:
        """True when a dunder implementation is C code, or Python code from a trusted file."""
        kind = type(impl)  # type(), never isinstance(): a class can fake __class__
        if impl is None or issubclass(kind, _C_CALLABLES):
            return True
        if kind is staticmethod or kind is classmethod:
            return self._trusted_impl(impl.__func__)  # type: ignore[attr-defined]
        if kind is property:
            return self._trusted_impl(impl.fget)  # type: ignore[attr-defined]
        if kind is types.FunctionType:
            return impl.__code__.co_filename.startswith(self._prefixes)  # type: ignore[attr-defined]
        return False  # callable instances, partials, ...: behaviour chosen by the program

    def untrusted_dunder(self, cls: type) -> str | None:
        """``"Class.__eq__"`` for the first sensitive dunder of ``cls`` that untrusted code defines."""
        cached = self._verdicts.get(id(cls))
        if cached is not None and cached[0] is cls:
            return cached[1]
        verdict = None
        if _type_flags(cls) & _HEAPTYPE:
            for klass in _type_mro(cls):
                if not _type_flags(klass) & _HEAPTYPE:
                    continue
                namespace = _type_dict(klass)
                try:
                    names = sorted(SENSITIVE_DUNDERS.intersection(namespace))
                except Exception:  # a key that cannot be hashed or compared: refuse the class
                    names = ["__dict__"]
                for name in names:
                    if not self._trusted_impl(namespace.get(name)):
                        verdict = f"{_text(klass)}.{name}"
                        break
                if verdict:
                    break
        self._verdicts[id(cls)] = (cls, verdict)
        return verdict

    # -- values --------------------------------------------------------------------------------

    def check(self, value: object, what: str) -> None:
        """Raise :class:`UntrustedReturnValue` if ``value`` (or anything it contains) is untrusted."""
        stack = [value]
        seen: set[int] = set()
        while stack:
            item = stack.pop()
            cls = type(item)
            if _is_atom_id(id(cls)):
                continue
            if id(cls) in _PLAIN_CONTAINERS or cls is dict:
                self._push_elements(item, cls, stack, seen)
                continue
            reason = self.untrusted_dunder(cls)
            if reason is not None:
                self.violation = (
                    f"{what} contains a {_text(cls)} object whose {reason.rsplit('.', 1)[1]} is defined "
                    f"by the program ({reason}); tests only accept values of built-in or library types"
                )
                raise UntrustedReturnValue(self.violation)
            if issubclass(cls, (dict, *_SEQUENCE_BASES)) or cls in _DICT_VIEWS:
                self._push_elements(item, cls, stack, seen)

    @staticmethod
    def _push_elements(item: Any, cls: type, stack: list[object], seen: set[int]) -> None:
        """Queue the elements of a container, read through the base type (no overridden methods)."""
        if id(item) in seen:
            return
        seen.add(id(item))
        elements: tuple[object, ...]
        if issubclass(cls, dict):
            elements = (*dict.keys(item), *dict.values(item))
        elif issubclass(cls, list):
            elements = tuple(list.__iter__(item))
        elif issubclass(cls, tuple):
            elements = tuple(tuple.__iter__(item))
        elif issubclass(cls, set):
            elements = tuple(set.__iter__(item))
        elif issubclass(cls, frozenset):
            elements = tuple(frozenset.__iter__(item))
        elif issubclass(cls, collections.deque):
            elements = tuple(collections.deque.__iter__(item))
        else:  # dict views: C iteration over the underlying dict
            elements = tuple(item)
        if not all(map(_is_atom_id, map(id, map(type, elements)))):
            stack.extend(elements)

    def checked(self, value: object, what: str) -> object:
        """``value`` after :meth:`check`; an iterator comes back wrapped so each item is checked."""
        cls = type(value)
        if (
            not _is_atom_id(id(cls))
            and _defines(cls, "__next__")
            and not issubclass(cls, (dict, *_SEQUENCE_BASES))
        ):
            reason = self.untrusted_dunder(cls)
            if reason is None:
                return self._checked_items(value, what)  # type: ignore[arg-type]
        self.check(value, what)
        return value

    def _checked_items(self, iterator: Iterator[object], what: str) -> Iterator[object]:
        for item in iterator:
            self.check(item, f"an item of {what}")
            yield item

    def wrap(self, function: Callable[..., object], name: str) -> Callable[..., object]:
        """The callable the harness sees in place of a candidate's ``function``."""
        guard = self
        what = f"the value returned by {name}()"

        def exported(*args: object, **kwargs: object) -> object:
            return guard.checked(function(*args, **kwargs), what)

        exported.__name__ = exported.__qualname__ = name
        exported.__wrapped__ = function  # type: ignore[attr-defined]
        return exported


# -- module integrity --------------------------------------------------------------------------

Snapshot = tuple[str, dict, tuple, tuple]


class DictVersions:
    """Reads a dict's PEP 509 version tag through ctypes, touching only the dict's header.

    CPython bumps ``ma_version_tag`` on every change to a dict. Comparing a module's values one by
    one instead increments each value's reference count, which in a forked child copies every page
    those objects live on: hundreds of page faults, a large share of a short program's run time.
    :meth:`create` checks the layout on a probe dict and returns None where it does not hold.
    """

    def __init__(self, offset: int, read: Callable[[int], Any]) -> None:
        self.offset = offset
        self._read = read

    def address(self, namespace: dict) -> int:
        return id(namespace) + self.offset

    def at(self, address: int) -> int:
        return self._read(address).value

    def of(self, namespace: dict) -> int:
        return self.at(self.address(namespace))

    @classmethod
    def create(cls) -> DictVersions | None:
        if sys.implementation.name != "cpython":
            return None
        try:
            import ctypes

            versions = cls(3 * ctypes.sizeof(ctypes.c_ssize_t), ctypes.c_uint64.from_address)
            probe = {"a": 1}
            before, again = versions.of(probe), versions.of(probe)
            probe["a"] = 2
            changed = versions.of(probe)
            del probe["a"]
            if before == again and changed != before and versions.of(probe) != changed:
                return versions
        except Exception:  # noqa: BLE001 - any surprise: compare values instead
            pass
        return None


def snapshot(module: types.ModuleType) -> Snapshot:
    """What each non-dunder name of ``module`` points to right now."""
    namespace = module.__dict__
    keys = tuple(k for k in namespace if type(k) is str and not k.startswith("__"))
    return (module.__name__, namespace, keys, tuple(map(namespace.get, keys)))


def _resnapshot(old: Snapshot) -> Snapshot:
    """``old``'s module dict as it is now."""
    name, namespace = old[0], old[1]
    keys = tuple(k for k in namespace if type(k) is str and not k.startswith("__"))
    return (name, namespace, keys, tuple(map(namespace.get, keys)))


def find_change(snapshots: Iterable[Snapshot]) -> str | None:
    """``"math.isclose"`` for the first name rebound or deleted since its snapshot, else None."""
    for name, namespace, keys, values in snapshots:
        if all(map(_is, map(namespace.get, keys), values)):
            continue
        for key, value in zip(keys, values, strict=True):
            if namespace.get(key) is not value:
                return f"{name}.{key}"
    return None


class ModuleWatch:
    """Modules whose names the tests rely on, and a check that none was rebound or replaced.

    Also remembers which module object ``sys.modules`` held for each name: a program that swaps
    in a fake module before a test imports it is caught too. The common case, nothing changed,
    reads only the dicts' version tags (see :class:`DictVersions`).
    """

    def __init__(self, versions: DictVersions | None) -> None:
        self._versions = versions
        self._snapshots: list[Snapshot] = []
        self._addresses = array.array("Q")
        self._tags = array.array("Q")
        self._registered: list[tuple[str, types.ModuleType]] = []
        self.names: set[str] = set()

    def add(self, module: types.ModuleType, registered: bool = False) -> None:
        """Watch ``module``'s names; with ``registered``, also its entry in ``sys.modules``."""
        if registered:
            self._registered.append((module.__name__, module))
        if module.__name__ in self.names:
            return
        self.names.add(module.__name__)
        self._snapshots.append(snapshot(module))
        if self._versions is not None:
            self._addresses.append(self._versions.address(module.__dict__))
            self._tags.append(self._versions.of(module.__dict__))

    def accept(self) -> None:
        """Take the watched modules as they are now as the reference (after a library's import)."""
        if self._unchanged():
            return
        self._snapshots = [_resnapshot(snap) for snap in self._snapshots]
        if self._versions is not None:
            self._tags = array.array("Q", map(self._versions.at, self._addresses))

    def _unchanged(self) -> bool:
        versions = self._versions
        if versions is None:
            return False
        return all(map(_eq, map(versions.at, self._addresses), self._tags))

    def changed(self, modules: dict[str, Any]) -> str | None:
        """What was changed (``"math.isclose"``, ``"sys.modules['math']"``), or None."""
        for name, module in self._registered:
            if modules.get(name) is not module:
                return f"sys.modules[{name!r}]"
        if self._unchanged():
            return None
        return find_change(self._snapshots)
