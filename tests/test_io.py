"""neatpipe.io: reading user files, atomic writes, the strict YAML loader."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from neatpipe.io import (
    MAX_ALIAS_NODES,
    FileError,
    atomic_write_text,
    atomic_write_with,
    check_output_dir,
    load_yaml,
    read_text,
)


def test_read_text_names_the_file_and_says_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9".encode("latin-1"))
    (tmp_path / "folder").mkdir()
    cases = {
        "latin1.txt": "cannot read: not UTF-8 text (byte 0xe9 at offset 3); is it a binary file?",
        "folder": "cannot read: is a directory, not a file",
        "missing.txt": "cannot read: no such file or directory",
    }
    for name, reason in cases.items():
        with pytest.raises(FileError) as info:
            read_text(tmp_path / name)
        assert str(info.value) == f"{tmp_path / name}: {reason}"
        assert info.value.path == str(tmp_path / name) and info.value.reason == reason


def _bomb(levels: int, width: int = 10) -> str:
    lines = ["a0: &a0 x"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_aliases_may_add_up_to_the_bound_and_no_more() -> None:
    # four levels of ten aliases each expand to 1,239 nodes from 9 written ones; five to 12,351 from 11
    assert len(load_yaml(_bomb(4))["a3"]) == 10
    with pytest.raises(yaml.YAMLError, match=f"more than {MAX_ALIAS_NODES:,} nodes"):
        load_yaml(_bomb(5))


def test_a_billion_laughs_is_refused_in_well_under_a_second() -> None:
    t0 = time.perf_counter()
    with pytest.raises(yaml.YAMLError, match="aliases expand"):
        load_yaml(_bomb(10))
    assert time.perf_counter() - t0 < 1.0


def test_a_self_referring_alias_and_deep_nesting_are_refused_in_one_line() -> None:
    with pytest.raises(yaml.YAMLError) as info:
        load_yaml("a: &a [1, *a]\n")
    assert str(info.value) == "an alias refers to a node that contains it (line 1, column 4)"
    with pytest.raises(yaml.YAMLError, match="nested too deeply"):
        load_yaml("[" * 20_000 + "]" * 20_000)
    with pytest.raises(yaml.YAMLError) as info:
        load_yaml("a: 1\nb: 2\na: 3\n")
    assert str(info.value) == "duplicate key 'a' (line 3, column 1)"


def test_a_failed_write_leaves_the_target_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    atomic_write_text(target, "old")

    def half(path: str) -> None:
        Path(path).write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write_with(target, half)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.json"]
    with pytest.raises(FileError, match=r"missing[/\\]out.json: cannot write: no such file or directory"):
        atomic_write_text(tmp_path / "missing" / "out.json", "x")


def test_check_output_dir(tmp_path: Path) -> None:
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # nothing is created
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileError, match="it is a file, not a directory"):
        check_output_dir(tmp_path / "file")
    with pytest.raises(FileError, match=f"{tmp_path / 'file'} is a file"):
        check_output_dir(tmp_path / "file" / "sub")
