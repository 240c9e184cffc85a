"""Faults a user can cause, through the ``neatpipe`` command: each one is a one-line error naming the
file, field, option or URL, exit status 2, no traceback, and whatever was there before is intact.

Most tests call ``neatpipe.cli.main`` in this process; the ones that guard against a hang or a blow-up
(alias bombs, byte-trickling servers) run the real command in a subprocess under a time limit.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from neatpipe.cli import main
from neatpipe.evolution.runlog import GenerationLog
from neatpipe.experiment import load_experiment
from neatpipe.io import MAX_ALIAS_NODES

REPO = Path(__file__).resolve().parents[1]
GENOME = REPO / "genomes" / "solo.yaml"
MODEL = "qwen2.5-coder-1.5b"  # the model name solo.yaml uses
SYNTHETIC = f"{MODEL}=synthetic:coder-1.5b"


def fails(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    """Runs ``neatpipe ARGV``; asserts exit status 2 and one ``neatpipe: error:`` line without a
    traceback, and returns that line."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neatpipe: error: "), err
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def neatpipe(*argv: object, timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], float]:
    """The real command in a subprocess (this checkout first on the path), and how long it took."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "neatpipe.cli", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )
    return proc, time.perf_counter() - t0


# -- unreadable inputs ----------------------------------------------------------------------------------

BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"

# (command line with {bad} for the unreadable file, {genome} for a good genome, {out} for an output)
READERS = {
    "genome": ["validate", "{bad}"],
    "experiment": ["evolve", "{bad}"],
    "evaluated genome": ["evaluate", "{bad}", "--model", SYNTHETIC],
    "model pool": ["evaluate", "{genome}", "--models", "{bad}"],
    "subset": ["evaluate", "{genome}", "--model", SYNTHETIC, "--subset", "{bad}"],
    "samples": ["sandbox", "check", "--benchmark", "humaneval", "--samples", "{bad}"],
    "benchmark": ["sandbox", "check", "--benchmark", "mbpp", "--mbpp", "{bad}"],
    "program": ["sandbox", "run", "{bad}"],
    "paper champion": ["import-paper", "{bad}", "-o", "{out}"],
    "training data": ["finetune", "{bad}", "--model", "hf:/no/such/model", "--out", "{out}"],
}


def _argv(template: list[str], **paths: Path) -> list[str]:
    return [part.format(**{k: str(v) for k, v in paths.items()}) for part in template]


@pytest.mark.parametrize("reader", READERS)
def test_a_binary_input_is_named_not_a_traceback(reader, tmp_path, capsys) -> None:
    bad = tmp_path / "input.yaml"
    bad.write_bytes(BINARY)
    out = tmp_path / "out.yaml"
    message = fails(capsys, *_argv(READERS[reader], bad=bad, genome=GENOME, out=out))
    assert str(bad) in message and "not UTF-8 text (byte 0x89 at offset 0)" in message
    assert not out.exists()


@pytest.mark.parametrize(
    "reader", ["genome", "experiment", "model pool", "samples", "program", "training data"]
)
def test_a_folder_given_as_an_input_file_is_named(reader, tmp_path, capsys) -> None:
    folder = tmp_path / "input.yaml"
    folder.mkdir()
    message = fails(capsys, *_argv(READERS[reader], bad=folder, genome=GENOME, out=tmp_path / "o.yaml"))
    assert str(folder) in message and "is a directory" in message


# -- YAML alias bombs and huge error lists --------------------------------------------------------------


def _alias_bomb(levels: int = 9) -> str:
    """A "billion laughs" document: 9 levels of 9 aliases each, 9**9 strings once expanded."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("kind", "tail", "argv"),
    [
        ("experiment", "models: {coder: *a8}\n", ["evolve", "{bad}"]),
        ("experiment value", "name: *a8\nmodels: {coder: 'synthetic:coder-1.5b'}\n", ["evolve", "{bad}"]),
        ("genome", "nodes: *a8\nedges: []\n", ["validate", "{bad}"]),
        ("model pool", f"{MODEL}: *a8\n", ["evaluate", "{genome}", "--models", "{bad}"]),
    ],
)
def test_a_yaml_alias_bomb_is_refused_at_once(kind, tail, argv, tmp_path) -> None:
    bad = tmp_path / "bomb.yaml"
    bad.write_text(_alias_bomb() + tail)
    proc, seconds = neatpipe(*_argv(argv, bad=bad, genome=GENOME), timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and len(proc.stderr) < 1000
    assert str(bad) in proc.stderr and f"aliases expand this document by more than {MAX_ALIAS_NODES:,}" in (
        proc.stderr
    )
    assert seconds < 30


def test_aliases_within_the_bound_still_work(tmp_path) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text("models: {coder: &s 'synthetic:coder-1.5b', other: *s}\n")
    specs = {m.name: m.spec.to_string() for m in load_experiment(exp).models}
    assert specs == {"coder": "synthetic:coder-1.5b", "other": "synthetic:coder-1.5b"}


@pytest.mark.parametrize(
    ("head", "argv"),
    [
        ("models: {coder: 'synthetic:coder-1.5b'}\n", ["evolve", "{bad}"]),
        (
            "nodes: {gen: {role: generator, model: m}}\nedges: [[problem, gen], [gen, output]]\n",
            ["validate", "{bad}"],
        ),
    ],
)
def test_twenty_thousand_unknown_fields_give_a_short_message(head, argv, tmp_path, capsys) -> None:
    bad = tmp_path / "many.yaml"
    bad.write_text(head + "".join(f"unknown_field_{i}: {i}\n" for i in range(20_000)))
    code = main(_argv(argv, bad=bad))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"neatpipe: error: {bad}: 20000 problems:")
    assert len(err) < 5000  # was 4.4 MB


# -- models and served backends -------------------------------------------------------------------------


def test_an_unknown_synthetic_preset_is_named(capsys) -> None:
    message = fails(capsys, "evaluate", GENOME, "--model", f"{MODEL}=synthetic:nope", "--limit", "1")
    assert "synthetic:nope" in message and "unknown synthetic preset 'nope'" in message


class _Server:
    """A loopback HTTP server whose answers misbehave: ``fail`` answers 500, ``trickle-body`` sends
    headers and then its body one byte every 50 ms, ``trickle-headers`` does that from the status line on."""

    def __init__(self, mode: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                body = json.dumps({"choices": [{"message": {"content": "x" * 100}}]}).encode()
                if mode == "fail":
                    data = json.dumps({"error": {"message": "the model crashed"}}).encode()
                    self.send_response(500)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body) * 1000}\r\n\r\n".encode()
                slow = head + body * 1000 if mode == "trickle-headers" else body * 1000
                if mode == "trickle-body":
                    self.wfile.write(head)
                    self.wfile.flush()
                try:
                    for i in range(len(slow)):
                        self.wfile.write(slow[i : i + 1])
                        self.wfile.flush()
                        time.sleep(0.05)
                except OSError:  # the client gave up, as it should
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def misbehaving(request) -> Iterator[_Server]:
    server = _Server(request.param)
    yield server
    server.close()


def _pool(tmp_path: Path, url: str, **options: object) -> Path:
    pool = tmp_path / "pool.yaml"
    pool.write_text(json.dumps({MODEL: {"spec": f"openai:{url}#m", "retries": 0, **options}}))
    return pool


def test_an_unreachable_served_backend_is_named(tmp_path, capsys) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    message = fails(capsys, "evaluate", GENOME, "--models", _pool(tmp_path, url), "--limit", "1")
    assert f"cannot reach the OpenAI-compatible server at {url}/chat/completions" in message


@pytest.mark.parametrize("misbehaving", ["fail"], indirect=True)
def test_a_failing_served_backend_is_named(misbehaving, tmp_path, capsys) -> None:
    message = fails(capsys, "evaluate", GENOME, "--models", _pool(tmp_path, misbehaving.url), "--limit", "1")
    assert (
        f"{misbehaving.url}/chat/completions failed" in message and "HTTP 500: the model crashed" in message
    )


@pytest.mark.parametrize("misbehaving", ["trickle-body", "trickle-headers"], indirect=True)
def test_a_trickling_served_backend_hits_the_whole_answer_deadline(misbehaving) -> None:
    spec = f"openai:{misbehaving.url}#m"
    proc, seconds = neatpipe(
        "models", "generate", spec, "-p", "hi", "--cache", "off", "-o", "timeout_s=1", "-o", "retries=0",
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"{misbehaving.url}/chat/completions timed out" in proc.stderr
    assert "no complete answer within 1 s" in proc.stderr
    assert seconds < 15  # the answer would take over 20 minutes; a per-read timeout never fires


# -- the completion cache -------------------------------------------------------------------------------


def _garbage(path: Path) -> None:
    path.write_bytes(b"not a database " * 100)


def _foreign(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE results (id INTEGER PRIMARY KEY, score REAL)")
        conn.execute("INSERT INTO results VALUES (1, 0.5)")
    conn.close()


def _damaged(path: Path) -> None:
    from neatpipe.models import ChatRequest, load_backend

    backend = load_backend("synthetic:coder-1.5b", cache=path)
    backend.generate([ChatRequest.user("hello")])
    backend.cache.close()
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xab" * (4096 - 100)  # the schema page, after the header
    path.write_bytes(bytes(data))


CACHE_COMMANDS = {
    "evaluate": ["evaluate", "{genome}", "--model", SYNTHETIC, "--limit", "1", "--cache", "{cache}"],
    "generate": ["models", "generate", "synthetic:coder-1.5b", "-p", "hi", "--cache", "{cache}"],
    "stats": ["cache", "stats", "--path", "{cache}"],
    "prune": ["cache", "prune", "--all", "--path", "{cache}"],
}


@pytest.mark.parametrize("damage", [_garbage, _foreign, _damaged], ids=["garbage", "foreign", "damaged"])
@pytest.mark.parametrize("command", CACHE_COMMANDS)
def test_a_bad_cache_file_is_named_with_a_way_out_and_left_alone(damage, command, tmp_path, capsys) -> None:
    cache = tmp_path / "completions.sqlite"
    damage(cache)
    before = digest(cache)
    message = fails(capsys, *_argv(CACHE_COMMANDS[command], genome=GENOME, cache=cache))
    assert f"completion cache {cache}:" in message
    if damage is _foreign:
        assert "another program's database (tables: results)" in message
    else:
        assert "move it aside (or delete it) to start an empty cache" in message
    assert digest(cache) == before


@pytest.mark.parametrize("word", ["none", "off", "None", "false"])
def test_cache_none_means_no_cache(word, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEATPIPE_CACHE_DIR", str(tmp_path / "default-cache"))
    assert main(["models", "generate", "synthetic:coder-1.5b", "-p", "hi", "--cache", word, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["cached"] is False
    assert sorted(os.listdir(tmp_path)) == []  # no file named `none`, no default cache either
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"models: {{coder: 'synthetic:coder-1.5b'}}\nbackend: {{cache: {word}}}\n")
    assert load_experiment(exp).backend.cache is None


def test_evaluate_cache_none_runs_without_a_cache_file_and_writes_with_the_umask(
    tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEATPIPE_CACHE_DIR", str(tmp_path / "default-cache"))
    old = os.umask(0o022)
    try:
        argv = [
            "evaluate",
            str(GENOME),
            "--model",
            SYNTHETIC,
            "--limit",
            "1",
            "--cache",
            "none",
            "--out",
            "ev",
        ]
        assert main(argv) == 0
    finally:
        os.umask(old)
    assert "pass@1" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == ["default-cache", "ev"]
    cached = sorted(
        p.relative_to(tmp_path / "default-cache").parts[0] for p in (tmp_path / "default-cache").rglob("*")
    )
    assert set(cached) == {"reference-costs"}  # the measured reference costs, and no completion cache
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "ev").iterdir()}
    assert modes == {"trajectories.jsonl": 0o644, "evaluation.json": 0o644, "texts.sqlite": 0o644}


# -- option values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [("--timeout", "nan"), ("--timeout", "inf"), ("--timeout", "-1"), ("--memory-mb", "nan")],
)
def test_sandbox_run_refuses_limits_that_are_not_finite_positive_numbers(
    option, value, tmp_path, capsys
) -> None:
    program = tmp_path / "p.py"
    program.write_text("print(1)\n")
    message = fails(capsys, "sandbox", "run", program, option, value)
    assert f"{option} must be a finite number above 0, got {value}" in message


@pytest.mark.parametrize("temperature", [None, [0.2], "hot", "0.5", True])
def test_import_paper_names_the_file_and_the_temperature_field(temperature, tmp_path, capsys) -> None:
    champion = tmp_path / "champion.json"
    champion.write_text(
        json.dumps({"genome": {"generator": {"model": "qwen2.5-coder:1.5b", "temperature": temperature}}})
    )
    out = tmp_path / "champion.yaml"
    out.write_text("earlier output\n")
    message = fails(capsys, "import-paper", champion, "-o", out)
    assert str(champion) in message and "field 'genome.generator.temperature': must be a number" in message
    assert out.read_text() == "earlier output\n"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('["HumanEval/0", ', "not a valid JSON list of task ids"),
        ("[0, 1]", 'item 0 is 0, not a task id string (e.g. "HumanEval/0")'),
        ('["HumanEval/0", {"id": 1}]', "item 1 is {'id': 1}, not a task id string"),
        ("HumanEval/0\nHumanEval/9999\n", "unknown task ids for humaneval: HumanEval/9999 (ids look like"),
        (
            "".join(f"x{i}\n" for i in range(9)),
            "unknown task ids for humaneval: x0, x1, x2, x3, x4 and 4 more",
        ),
        ("\n\n", "no task ids"),
    ],
)
def test_evaluate_subset_faults_name_the_file(content, words, tmp_path, capsys) -> None:
    subset = tmp_path / "subset.json"
    subset.write_text(content)
    message = fails(capsys, "evaluate", GENOME, "--model", SYNTHETIC, "--subset", subset)
    assert f"{subset}: " in message and words in message


def test_evaluate_out_on_a_file_fails_before_the_work(tmp_path, capsys) -> None:
    out = tmp_path / "results"
    out.write_text("earlier results\n")
    with socket.socket() as s:  # a backend that would fail the work at once, if the work came first
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    message = fails(
        capsys, "evaluate", GENOME, "--models", _pool(tmp_path, url), "--limit", "1", "--out", out
    )
    assert message == f"neatpipe: error: {out}: cannot write into it: it is a file, not a directory"
    assert out.read_text() == "earlier results\n"
    inside = out / "sub"
    message = fails(
        capsys, "evaluate", GENOME, "--models", _pool(tmp_path, url), "--limit", "1", "--out", inside
    )
    assert f"{inside}: cannot write into it: {out} is a file, not a directory" in message


def test_an_empty_samples_file_is_an_error_not_zero_of_zero(tmp_path, capsys) -> None:
    samples = tmp_path / "samples.jsonl"
    samples.write_text("\n")
    message = fails(capsys, "sandbox", "check", "--benchmark", "humaneval", "--samples", samples)
    assert f"samples file {samples}: no samples" in message


# -- run directories -------------------------------------------------------------------------------------


def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "experiment.yaml").write_text("models: {coder: 'synthetic:coder-1.5b'}\n")
    record = GenerationLog(
        generation=0, best_fitness=0.5, mean_fitness=0.4, sd_fitness=0.1, best_pass_rate=0.5,
        best_genome="abc", best_summary="gen", species=1, species_sizes=[2], mean_nodes=1.0, best_nodes=1,
        best_model_calls=1, problems=["HumanEval/0"], evaluations_paid=2, evaluations_reused=0,
        prompt_tokens=10, completion_tokens=10, model_calls=2, cache_hits=0, elapsed_s=1.0, synthetic=True,
    )  # fmt: skip
    (run / "generations.jsonl").write_text(json.dumps(record.to_dict()) + "\n")
    (run / "report.md").write_text("earlier report\n")
    return run


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "not JSON"),
        ('{"label": "x"}', "expected a JSON list"),
        ('["x"]', "entry 0 must be an object, got str"),
        ('[{"label": "x"}]', "entry 0 field 'mean' must be a number, got None"),
        ('[{"label": "x", "mean": "high"}]', "entry 0 field 'mean' must be a number, got 'high'"),
        ('[{"label": "x", "mean": 0.5, "search_fitness": [1]}]', "entry 0 field 'search_fitness'"),
        (BINARY, "not UTF-8 text"),
    ],
)
def test_report_on_a_malformed_validation_file(content, words, tmp_path, capsys) -> None:
    run = _run_dir(tmp_path)
    validation = run / "validation.json"
    validation.write_bytes(content if isinstance(content, bytes) else content.encode())
    message = fails(capsys, "report", run)
    assert f"{validation}" in message and words in message
    assert (run / "report.md").read_text() == "earlier report\n"


def test_report_on_a_malformed_generation_log(tmp_path, capsys) -> None:
    run = _run_dir(tmp_path)
    (run / "generations.jsonl").write_text('{"generation": 0, "best_fitness": "high"}\n')
    message = fails(capsys, "report", run)
    assert f"{run / 'generations.jsonl'}, record 1: field" in message


# -- outputs ---------------------------------------------------------------------------------------------


def test_an_output_symlink_stays_a_link_and_its_target_is_written(tmp_path) -> None:
    target = tmp_path / "real.yaml"
    target.write_text("old\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    assert main(["export", str(GENOME), "-o", str(link)]) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "format: neatpipe-genome/1" in target.read_text()
    assert sorted(os.listdir(tmp_path)) == ["link.yaml", "real.yaml"]


def test_an_output_fifo_is_written_to_not_replaced(tmp_path) -> None:
    fifo = tmp_path / "out.yaml"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    assert main(["export", str(GENOME), "-o", str(fifo)]) == 0
    reader.join(timeout=30)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert b"format: neatpipe-genome/1" in received[0]


def test_an_output_device_is_written_to_not_replaced(tmp_path) -> None:
    if os.geteuid() == 0:  # a null device of our own, so that a regression cannot replace /dev/null
        device = tmp_path / "null"
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    else:  # without root, /dev/null could not be replaced anyway
        device = Path("/dev/null")
    assert main(["export", str(GENOME), "-o", str(device), "-f", "yaml"]) == 0
    assert stat.S_ISCHR(os.lstat(device).st_mode)


def test_an_output_that_is_a_folder_is_named(tmp_path, capsys) -> None:
    folder = tmp_path / "out.yaml"
    folder.mkdir()
    message = fails(capsys, "export", GENOME, "-o", folder)
    assert message == f"neatpipe: error: {folder}: cannot write: is a directory, not a file"


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_get_the_users_umask(umask, mode, tmp_path) -> None:
    old = os.umask(umask)
    try:
        assert main(["export", str(GENOME), "-o", str(tmp_path / "g.yaml")]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "g.yaml").st_mode) == mode


def test_a_replaced_output_keeps_its_mode(tmp_path) -> None:
    out = tmp_path / "g.yaml"
    out.write_text("old\n")
    out.chmod(0o640)
    assert main(["export", str(GENOME), "-o", str(out)]) == 0
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o640 and "neatpipe-genome" in out.read_text()


# -- the top-level handler -------------------------------------------------------------------------------


def test_an_os_error_naming_a_file_is_one_line_and_debug_shows_the_traceback(monkeypatch, capsys) -> None:
    def refused(args):
        raise PermissionError(13, "Permission denied", "/somewhere/locked.yaml")

    monkeypatch.setattr("neatpipe.genome.cli._validate", refused)
    assert fails(capsys, "validate", "x.yaml") == "neatpipe: error: /somewhere/locked.yaml: permission denied"
    with pytest.raises(PermissionError):
        main(["--debug", "validate", "x.yaml"])


def test_an_os_error_without_a_file_name_is_not_hidden(monkeypatch) -> None:
    def broken(args):
        raise OSError("something inside neatpipe went wrong")

    monkeypatch.setattr("neatpipe.genome.cli._validate", broken)
    with pytest.raises(OSError, match="something inside"):
        main(["validate", "x.yaml"])
