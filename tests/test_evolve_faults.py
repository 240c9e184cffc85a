"""`neatpipe evolve` faults a user can cause: each is one line naming the file, field or server, exit
status 2, no traceback, checked before a new run directory is made; data already there is left intact."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from neatpipe.cli import main
from neatpipe.evolution.run import evolve

BASE = """\
format: neatpipe-experiment/1
name: faults
seed: 1
benchmark: {benchmark}
subset: {{size: 4}}
validation: {{size: 4, repeats: 1, champions: 1}}
models:
  coder: {model}
genome: {{initial: minimal, max_nodes: 4, max_stages: 1}}
neat: {{population: 4}}
budget: {{generations: 2}}
backend: {{cache: off}}
"""


def experiment(
    tmp_path: Path, benchmark: str = "{name: humaneval}", model: str = "synthetic:coder-1.5b"
) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(BASE.format(benchmark=benchmark, model=model))
    return path


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.strip()


def one_line(err: str) -> str:
    assert err.startswith("neatpipe: error: ") and len(err.splitlines()) == 1, err
    return err


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def test_an_unknown_synthetic_preset_stops_before_the_run_directory(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    code, err = run_cli(
        ["evolve", str(experiment(tmp_path, model="synthetic:coder-99b")), "--out", str(out)], capsys
    )
    assert code == 2 and "coder-99b" in one_line(err)
    assert not out.exists()


@pytest.mark.parametrize("kind", ["ollama", "openai"])
def test_an_unreachable_server_stops_before_the_run_directory(tmp_path: Path, capsys, kind: str) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    if kind == "ollama":
        model = f'{{spec: "ollama:qwen2.5-coder:1.5b", base_url: "{url}", retries: 0, timeout_s: 5}}'
    else:
        model = f'{{spec: "openai:{url}/v1#qwen", retries: 0, timeout_s: 5}}'
    out = tmp_path / "run"
    code, err = run_cli(["evolve", str(experiment(tmp_path, model=model)), "--out", str(out)], capsys)
    assert code == 2 and url in one_line(err)
    assert not out.exists()


@pytest.mark.parametrize("content", [None, b"{not json", b"\xff\xfe\x00binary", b"[]"])
def test_a_missing_or_malformed_mbpp_file_stops_before_the_run_directory(
    tmp_path: Path, capsys, content: bytes | None
) -> None:
    data = tmp_path / "mbpp.json"
    if content is not None:
        data.write_bytes(content)
    exp = experiment(tmp_path, benchmark=f"{{name: mbpp, path: {data}}}")
    out = tmp_path / "run"
    code, err = run_cli(["evolve", str(exp), "--out", str(out)], capsys)
    assert code == 2 and "mbpp.json" in one_line(err)
    assert not out.exists()


def test_out_that_is_a_file_is_refused_and_left_alone(tmp_path: Path, capsys) -> None:
    out = tmp_path / "notes.txt"
    out.write_text("keep me\n")
    code, err = run_cli(["evolve", str(experiment(tmp_path)), "--out", str(out)], capsys)
    assert code == 2 and str(out) in one_line(err) and "not a directory" in err
    assert out.read_text() == "keep me\n"


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("faults")
    return evolve(experiment(tmp), out=tmp / "run", progress=False).run_dir


def copy_run(finished: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "run"
    shutil.copytree(finished, target, ignore=shutil.ignore_patterns(".lock"))
    state = json.loads((target / "run.json").read_text())
    state["status"] = "interrupted"
    (target / "run.json").write_text(json.dumps(state))
    return target


@pytest.mark.parametrize("damage", ["garbage", "truncated", "foreign"])
def test_a_damaged_result_store_is_named_with_how_to_recover(
    finished: Path, tmp_path: Path, capsys, damage: str
) -> None:
    run_dir = copy_run(finished, tmp_path)
    store = run_dir / "evaluations.sqlite"
    for extra in ("-wal", "-shm"):
        Path(f"{store}{extra}").unlink(missing_ok=True)
    if damage == "garbage":
        store.write_bytes(os.urandom(8192))
    elif damage == "truncated":
        store.write_bytes(store.read_bytes()[:1500])
    else:  # an SQLite file of something else, with a table of the same name
        store.unlink()
        with sqlite3.connect(store) as db:
            db.execute("CREATE TABLE results (x)")
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    code, err = run_cli(["evolve", "--resume", str(run_dir), "--quiet"], capsys)
    assert code == 2 and str(store) in one_line(err) and "Move the file aside" in err
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before


def test_a_read_only_run_directory_is_one_line_and_left_intact(finished: Path, tmp_path: Path) -> None:
    """The command runs without the capability that lets root write anywhere (setpriv), so the folder's
    own permissions apply, as they do for any other user."""
    run_dir = copy_run(finished, tmp_path)
    for p in [run_dir, *run_dir.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    drop = "-dac_override,-dac_read_search,-fowner"
    try:
        done = subprocess.run(
            ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", "--", sys.executable, "-m", "neatpipe",
             "evolve", "--resume", str(run_dir), "--quiet"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        for p in [run_dir, *run_dir.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert str(run_dir) in done.stderr and "ermission denied" in done.stderr
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_a_full_disk_is_one_line_and_the_run_resumes(finished: Path, tmp_path: Path) -> None:
    """Writes past a file-size limit fail as a full disk does (an OSError from write); the run stops with
    one line and continues afterwards to the same result."""
    run_dir = tmp_path / "run"
    exp = experiment(tmp_path)
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000))\n"
        "from neatpipe.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "evolve", str(exp), "--out", str(run_dir), "--quiet", "--no-report"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert str(run_dir) in done.stderr and ("too large" in done.stderr or "disk full" in done.stderr)
    assert not list(run_dir.rglob("*.tmp"))  # no half-written file left behind
    resumed = evolve(resume=run_dir, progress=False)
    reference = json.loads((finished / "summary.json").read_text())["champion"]
    assert resumed.champion.behaviour_hash() == reference["hash"]
