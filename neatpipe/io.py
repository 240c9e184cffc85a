"""Reading and writing the files a user names, in one place, so that every fault names the file.

- :func:`read_text` and :func:`read_bytes` turn what can go wrong with an input (missing, a folder,
  no permission, not UTF-8, ...) into a :class:`FileError` that names the file and says what is wrong,
  instead of a traceback from deep inside a parser.
- :func:`atomic_write_with` (and its text and bytes forms) writes an output through a temporary file in
  the target's folder and a rename, so a crash never leaves a half-written file under the real name.
  The new file gets the mode the user's umask gives (or the mode of the file it replaces). Only regular
  files are replaced: a symbolic link is followed and its target replaced, and a device or FIFO is
  written to directly, so writing ``-o /dev/stdout`` or onto a link never turns it into a plain file.
- :class:`StrictLoader` and :func:`load_yaml` read YAML without silently merged duplicate keys and
  without alias bombs: a document whose aliases expand to more than :data:`MAX_ALIAS_NODES` extra
  nodes (or refer to themselves) is refused before anything is built from it.
- :func:`check_output_dir` checks an output folder before the work that fills it starts.

This module is a leaf: it imports nothing of neatpipe but the error root.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from neatpipe.errors import NeatpipeError, bounded, shown

#: The most nodes that YAML aliases may add to a document beyond the nodes written in it.
MAX_ALIAS_NODES = 10_000


class FileError(NeatpipeError):
    """A file or folder a user named cannot be read or written; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def os_reason(exc: OSError) -> str:
    """A short, file-name-free account of an ``OSError`` (the caller names the file)."""
    if isinstance(exc, FileNotFoundError):
        return "no such file or directory"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file"
    if isinstance(exc, NotADirectoryError):
        return "a part of the path is not a directory"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or str(exc) or type(exc).__name__


def decode_reason(exc: UnicodeDecodeError) -> str:
    """What a failed UTF-8 decoding means to a user: where the first bad byte is."""
    byte = exc.object[exc.start : exc.start + 1].hex()
    return f"not UTF-8 text (byte 0x{byte} at offset {exc.start}); is it a binary file?"


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The content of ``path``; :class:`FileError` ("path: cannot read: ...") when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise FileError(path, f"cannot read: {os_reason(exc)}") from None


def decode_text(data: bytes, path: str | os.PathLike[str]) -> str:
    """``data`` (read from ``path``) as UTF-8 text; :class:`FileError` naming ``path`` when it is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileError(path, f"cannot read: {decode_reason(exc)}") from None


def read_text(path: str | os.PathLike[str]) -> str:
    """The UTF-8 text of ``path``; :class:`FileError` when it is missing, unreadable or not UTF-8 text."""
    return decode_text(read_bytes(path), path)


# -- outputs ------------------------------------------------------------------------------------------


def check_output_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` if it is a folder that can be written into, or one that can be created (the writer
    creates it); checked before any work is done, so that a wrong ``--out`` fails at once instead of
    after the work it should hold. Nothing is created here."""
    p = Path(path)
    existing = p
    while not existing.exists():
        if existing.is_symlink():
            raise FileError(p, "cannot write into it: it is a broken symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        what = "it is a file" if existing == p else f"{existing} is a file"
        raise FileError(p, f"cannot write into it: {what}, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise FileError(p, f"cannot write into it: no permission to write in {existing}")
    return p


def _create_temp(folder: Path, name: str, mode: int | None) -> str:
    """A new empty file next to the target. Created with 0o666 so that the kernel applies the umask
    (``tempfile.mkstemp`` would make it 0o600), or set to ``mode``, the mode of the file it replaces."""
    for _ in range(100):
        tmp = folder / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        try:
            if mode is not None:
                os.fchmod(fd, mode)
        finally:
            os.close(fd)
        return str(tmp)
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(folder))


def atomic_write_with(path: str | os.PathLike[str], write: Callable[[str], Any]) -> None:
    """Calls ``write(file_path)`` so that ``path`` ends up holding what it wrote.

    A regular file (or a new one) is written through a temporary file in the same folder, fsynced and
    renamed over the target: the target is whole or untouched. A symbolic link is followed and its
    target treated the same way (the link stays). A device, FIFO or socket is handed to ``write``
    itself, so it is written to rather than replaced. An ``OSError`` becomes a :class:`FileError`
    naming ``path``; any failure removes the temporary file and leaves ``path`` as it was.
    """
    target = Path(path)
    real = Path(os.path.realpath(target)) if target.is_symlink() else target
    try:
        info: os.stat_result | None = real.stat()
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise FileError(target, f"cannot write: {os_reason(exc)}") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise FileError(target, "cannot write: is a directory, not a file")
    if info is not None and not stat.S_ISREG(info.st_mode):
        try:
            write(str(real))
        except OSError as exc:
            raise FileError(target, f"cannot write: {os_reason(exc)}") from None
        return
    tmp: str | None = None
    try:
        tmp = _create_temp(real.parent, real.name, stat.S_IMODE(info.st_mode) if info is not None else None)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, real)
        tmp = None
    except OSError as exc:
        raise FileError(target, f"cannot write: {os_reason(exc)}") from None
    finally:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Writes ``data`` to ``path`` as :func:`atomic_write_with` does."""

    def write(file_path: str) -> None:
        with open(file_path, "wb") as f:
            f.write(data)

    atomic_write_with(path, write)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


# -- YAML ---------------------------------------------------------------------------------------------


class AliasBombError(yaml.constructor.ConstructorError):
    """A YAML document whose aliases expand beyond :data:`MAX_ALIAS_NODES` extra nodes, or into themselves."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def check_alias_expansion(root: yaml.Node, limit: int = MAX_ALIAS_NODES) -> None:
    """Refuses a composed document whose aliases would expand to more than ``limit`` nodes beyond the
    ones written, or that holds itself through an alias. An alias is the same node object as its
    anchor, so this walk sees each written node once and counts what the aliases would repeat, without
    building anything: a "billion laughs" file is refused in microseconds."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in _children(node))
            continue
        if key in size:
            continue
        if key in on_path:
            raise AliasBombError(None, None, "an alias refers to a node that contains it", node.start_mark)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in size)
    extra = size[id(root)] - len(size)
    if extra > limit:
        raise AliasBombError(
            None,
            None,
            f"aliases expand this document by more than {limit:,} nodes; write the values out instead",
            root.start_mark,
        )


class StrictLoader(yaml.SafeLoader):
    """A YAML loader that rejects duplicate keys (plain YAML keeps the last one silently, which would
    merge two nodes that share an id) and alias bombs (see :func:`check_alias_expansion`)."""

    def construct_document(self, node: yaml.Node) -> Any:
        check_alias_expansion(node)
        return super().construct_document(node)


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:  # an unhashable key; the base constructor says so
            break
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {shown(key)}", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class YAMLSyntaxError(yaml.YAMLError):
    """A malformed YAML document, told in one line: what is wrong and at which line and column."""


def _one_line(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message (with quoted input and a caret) as one line."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    mark = exc.problem_mark or exc.context_mark
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    what = "; ".join(p for p in (exc.context, exc.problem) if p) or type(exc).__name__
    return what + where


def load_yaml(text: str) -> Any:
    """The YAML document in ``text``, read with :class:`StrictLoader`. Every malformed document, a too
    deeply nested one included, raises a :class:`YAMLSyntaxError` (a ``yaml.YAMLError``) whose message
    is one line."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise YAMLSyntaxError(bounded(_one_line(exc), 300)) from None
    except RecursionError:
        raise YAMLSyntaxError("the document is nested too deeply") from None
