"""A resumed run is the same run: interrupted by SIGKILL mid-generation, by SIGINT or SIGTERM, or by a
budget, and continued with ``--resume``, a run logs every later generation exactly as the uninterrupted
run with the same seed does, and ends with the same champion and validation. One process writes a run;
an edited experiment or a corrupted checkpoint is refused with a one-line error."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from neatpipe.cli import main
from neatpipe.evolution import build
from neatpipe.evolution.checkpoint import CheckpointError, load_checkpoint
from neatpipe.evolution.run import EvolutionRun, RunInterrupted, SetupError, evolve
from neatpipe.evolution.runlog import RunDirError, RunLock, read_history

GENERATIONS = 5

# rotating subsets, a species target (the controller moves the threshold), two validated champions
EXPERIMENT = """\
format: neatpipe-experiment/1
name: resume
seed: 3
benchmark: {name: humaneval}
subset: {size: 5, policy: rotating}
validation: {size: 5, repeats: 2, champions: 2}
models:
  coder: synthetic:coder-1.5b
  small: synthetic:small-1.5b
genome:
  initial: minimal
  max_nodes: 6
  max_stages: 2
  add_stage_rate: 0.6
neat:
  population: 6
  compatibility_threshold: 0.6
  target_species: 3
fitness:
  penalty: {kind: per-node, weight: 0.02}
budget: {generations: 5}
backend: {cache: off}
"""

# What must not change when a run is interrupted and resumed: every field of a generation's log line
# except the costs and times, which say what *this* session paid.
COMPARED = ("generation", "best_genome", "best_fitness", "mean_fitness", "sd_fitness", "best_pass_rate",
            "species", "species_sizes", "compatibility_threshold", "mean_nodes", "best_nodes",
            "problems")  # fmt: skip


def log_lines(run_dir: Path) -> list[dict]:
    return [{k: getattr(r, k) for k in COMPARED} for r in read_history(run_dir)]


def outcome(run_dir: Path) -> dict:
    """The end of a run: champion, validation rows and summary, without timings and costs."""
    summary = json.loads((run_dir / "summary.json").read_text())
    validation = json.loads((run_dir / "validation.json").read_text())
    return {
        "status": summary["status"],
        "champion": summary["champion"],
        "champion_file": (run_dir / "champion.yaml").read_text(),
        "validation": [
            {k: v[k] for k in ("label", "hash", "search_fitness", "mean", "sd", "inflation")}
            for v in validation
        ],  # fmt: skip
    }


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("exp") / "resume.yaml"
    path.write_text(EXPERIMENT)
    return path


@pytest.fixture(scope="module")
def reference(experiment: Path, tmp_path_factory) -> EvolutionRun:
    """The uninterrupted run."""
    return evolve(experiment, out=tmp_path_factory.mktemp("ref") / "run", progress=False)


def test_the_reference_run_is_worth_comparing(reference: EvolutionRun) -> None:
    lines = log_lines(reference.run_dir)
    assert [r["generation"] for r in lines] == list(range(GENERATIONS))
    assert len({tuple(r["problems"]) for r in lines}) > 1  # rotating subsets
    assert len({r["species"] for r in lines}) > 1
    assert len({r["compatibility_threshold"] for r in lines}) > 2  # the species controller acts
    assert len({r["best_genome"] for r in lines}) > 1  # the search moves
    assert reference.validation and reference.validation[0].get("champion")


# Runs `neatpipe evolve` in a child that signals itself right after its second batch of results of
# generation KILL_GENERATION is stored: the run is mid-generation, with part of it paid for.
KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import neatpipe.evolution.store as ev
    from neatpipe.cli import main

    run_dir, how, at = Path(sys.argv[1]), getattr(signal, sys.argv[2]), int(sys.argv[3])
    # Ctrl-C as at a terminal: a process started in the background inherits SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    real, seen = ev.ResultStore.put_many, []

    def put_many(self, items):
        real(self, items)
        log = run_dir / "generations.jsonl"
        if log.exists() and len(log.read_text().splitlines()) == at:
            seen.append(1)
            if len(seen) == 2:
                os.kill(os.getpid(), how)

    ev.ResultStore.put_many = put_many
    sys.exit(main(sys.argv[4:]))
    """
)


def run_killed(tmp_path: Path, experiment: Path, how: str, at: int = 2) -> subprocess.CompletedProcess:
    run_dir = tmp_path / "run"
    args = [sys.executable, "-c", KILLER, str(run_dir), how, str(at), "evolve", str(experiment),
            "--out", str(run_dir), "--quiet", "--no-report"]  # fmt: skip
    return subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)


# measurements of this machine at that moment, not outcomes
TIMINGS = {"duration_s", "cpu_time_s", "wall_time_s", "peak_memory_mb", "max_rss_kb"}


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def trajectories(run_dir: Path) -> dict[str, list[dict]]:
    import gzip

    out = {}
    for path in sorted((run_dir / "trajectories").glob("gen-*.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            out[path.name] = [without_timings(json.loads(line)) for line in f]
    assert not list((run_dir / "trajectories").glob("*.partial.jsonl"))
    return out


def assert_same_run(run_dir: Path, reference: EvolutionRun) -> None:
    assert log_lines(run_dir) == log_lines(reference.run_dir)
    assert outcome(run_dir) == outcome(reference.run_dir)
    assert trajectories(run_dir) == trajectories(reference.run_dir)


def test_sigkill_mid_generation_resumes_to_the_uninterrupted_run(
    tmp_path: Path, experiment: Path, reference: EvolutionRun
) -> None:
    killed = run_killed(tmp_path, experiment, "SIGKILL")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_dir = tmp_path / "run"
    assert [r.generation for r in read_history(run_dir)] == [0, 1]  # generation 2 was under way
    assert not (run_dir / "summary.json").exists()
    resumed = evolve(resume=run_dir, progress=False)
    assert resumed.history[2].evaluations_reused > 0  # what generation 2 had paid for came back
    assert_same_run(run_dir, reference)
    assert resumed.champion.behaviour_hash() == reference.champion.behaviour_hash()
    assert resumed.champion_fitness == reference.champion_fitness


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_a_stopped_run_writes_its_champion_and_resumes_as_printed(
    tmp_path: Path, experiment: Path, reference: EvolutionRun, how: str
) -> None:
    stopped = run_killed(tmp_path, experiment, how)
    assert stopped.returncode == 130, stopped.stderr
    assert "Traceback" not in stopped.stderr
    run_dir = tmp_path / "run"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert (run_dir / "champion.yaml").is_file() and summary["champion"]["hash"]
    hint = stopped.stderr.strip().splitlines()[-1]
    command = hint.split("continue the run with: ", 1)[1]
    args = shlex.split(command)
    assert args[-2:] == ["--resume", "run"]  # relative to the working directory it ran in
    if args[0] == sys.executable:  # not started as the `neatpipe` program
        assert args[1:3] == ["-m", "neatpipe"]
    resumed = subprocess.run([*args, "--quiet", "--no-report"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(run_dir, reference)


def test_a_budget_stop_continued_with_a_larger_budget_is_the_longer_run(
    tmp_path: Path, experiment: Path, reference: EvolutionRun
) -> None:
    short = evolve(experiment, out=tmp_path / "run", generations=2, progress=False)
    assert [r.generation for r in short.history] == [0, 1]
    resumed = evolve(resume=tmp_path / "run", generations=GENERATIONS, progress=False)
    assert resumed.status == "finished"
    assert_same_run(tmp_path / "run", reference)
    # the larger budget is kept: a later plain resume has nothing left to do
    assert json.loads((tmp_path / "run" / "run.json").read_text())["options"]["generations"] == GENERATIONS


def test_a_token_budget_stop_resumes_to_the_same_run(
    tmp_path: Path, experiment: Path, reference: EvolutionRun
) -> None:
    first_tokens = read_history(reference.run_dir)[0].tokens
    stopped = evolve(experiment, out=tmp_path / "run", tokens=first_tokens, progress=False)
    assert stopped.status == "stopped: token budget spent" and len(stopped.history) == 1
    evolve(resume=tmp_path / "run", tokens=10**12, progress=False)
    assert_same_run(tmp_path / "run", reference)


def tree_digest(run_dir: Path) -> dict[str, str]:
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def test_resuming_a_finished_run_changes_nothing(reference: EvolutionRun, capsys) -> None:
    before = tree_digest(reference.run_dir)
    mtimes = {p: p.stat().st_mtime_ns for p in reference.run_dir.rglob("*") if p.name != ".lock"}
    again = evolve(resume=reference.run_dir, progress=False)
    assert again.champion.behaviour_hash() == reference.champion.behaviour_hash()
    assert tree_digest(reference.run_dir) == before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


def test_a_second_writer_is_refused_and_a_dead_holder_does_not_block(reference: EvolutionRun) -> None:
    with RunLock(reference.run_dir):
        with pytest.raises(RunDirError, match=f"another process \\(pid {os.getpid()}\\)"):
            evolve(resume=reference.run_dir, progress=False)
    # a lock file left by a process that died: the lock itself went with the process
    (reference.run_dir / ".lock").write_text("999999999\n")
    evolve(resume=reference.run_dir, progress=False)


def test_a_second_process_is_refused_at_once(reference: EvolutionRun, tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from neatpipe.evolution.runlog import "
         "RunLock; lock = RunLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(60)",
         str(reference.run_dir)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        code = subprocess.run(
            [sys.executable, "-m", "neatpipe", "evolve", "--resume", str(reference.run_dir), "--quiet"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert code.returncode == 2
        assert f"pid {holder.pid}" in code.stderr and "Traceback" not in code.stderr
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture
def copied_run(reference: EvolutionRun, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(reference.run_dir, target, ignore=shutil.ignore_patterns(".lock"))
    state = json.loads((target / "run.json").read_text())
    state["status"] = "interrupted"  # as if killed during validation: a resume has work to do
    (target / "run.json").write_text(json.dumps(state))
    return target


def test_an_edited_experiment_is_refused(copied_run: Path, capsys) -> None:
    exp = copied_run / "experiment.yaml"
    exp.write_text(exp.read_text().replace("repeats: 2", "repeats: 3"))
    code = main(["evolve", "--resume", str(copied_run), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and str(exp) in err and "edited" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["EXP", "--resume", "RUN"],
        ["--resume", "RUN", "--out", "elsewhere"],
        ["--resume", "RUN", "--model-set", "x"],
    ],
)
def test_resume_with_options_that_belong_to_the_run_is_an_error(
    copied_run: Path, experiment: Path, capsys, argv: list[str]
) -> None:
    before = tree_digest(copied_run)
    argv = [str(experiment) if a == "EXP" else str(copied_run) if a == "RUN" else a for a in argv]
    assert main(["evolve", *argv, "--quiet"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert tree_digest(copied_run) == before


@pytest.mark.parametrize("value", ["0", "-3"])
def test_generations_must_be_positive(experiment: Path, tmp_path: Path, capsys, value: str) -> None:
    assert main(["evolve", str(experiment), "--out", str(tmp_path / "r"), "--generations", value]) == 2
    assert "generations" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("damage", ["truncate", "empty", "random", "swap"])
def test_a_damaged_or_swapped_checkpoint_is_reported_not_loaded(
    copied_run: Path, reference: EvolutionRun, capsys, damage: str
) -> None:
    state = json.loads((copied_run / "run.json").read_text())
    path = copied_run / state["checkpoint"]["file"]
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "random":
        path.write_bytes(os.urandom(len(data)))
    else:  # a whole, valid checkpoint of another generation put in its place
        path.write_bytes((copied_run / "checkpoints" / "gen-0004.pkl.gz").read_bytes())
    code = main(["evolve", "--resume", str(copied_run), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and str(path) in err and "corrupted or was replaced" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(CheckpointError):
        load_checkpoint(path, state["checkpoint"]["sha256"])


def test_a_crash_between_checkpoint_and_its_record_resumes_a_generation_earlier(
    copied_run: Path, reference: EvolutionRun
) -> None:
    """run.json still names the previous checkpoint (kept for that case): the last generation is
    computed again, from stored results, to the same log line."""
    state = json.loads((copied_run / "run.json").read_text())
    state["checkpoint"] = {
        "file": "checkpoints/gen-0004.pkl.gz",
        "generation": 4,
        "sha256": hashlib.sha256((copied_run / "checkpoints" / "gen-0004.pkl.gz").read_bytes()).hexdigest(),
    }
    (copied_run / "run.json").write_text(json.dumps(state))
    again = evolve(resume=copied_run, progress=False)
    assert again.history[-1].evaluations_paid == 0
    assert_same_run(copied_run, reference)


def test_interrupting_in_process_raises_run_interrupted_naming_the_run(
    tmp_path: Path, experiment: Path, monkeypatch
) -> None:
    import neatpipe.evolution.store as ev

    real = ev.ResultStore.put_many

    def put_many(self, items):
        real(self, items)
        raise KeyboardInterrupt

    monkeypatch.setattr(ev.ResultStore, "put_many", put_many)
    with pytest.raises(RunInterrupted) as caught:
        evolve(experiment, out=tmp_path / "run", progress=False)
    assert caught.value.run_dir == tmp_path / "run"
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "interrupted"
    with pytest.raises(SetupError, match="already holds a run"):
        evolve(experiment, out=tmp_path / "run", progress=False)


def test_the_problems_logged_are_the_problems_scored(reference: EvolutionRun) -> None:
    import gzip

    from neatpipe.experiment import load_experiment

    exp = load_experiment(reference.run_dir / "experiment.yaml")
    pool, held_out = build.split_problems(exp, build.load_problems(exp))
    schedule = build.subset_schedule(exp, pool)
    for record in read_history(reference.run_dir):
        drawn = list(schedule.for_generation(record.generation).task_ids)
        assert record.problems == drawn == list(build.search_subset(exp, pool, record.generation).task_ids)
        assert not set(drawn) & set(held_out.task_ids)
        path = reference.run_dir / "trajectories" / f"gen-{record.generation:04d}.jsonl.gz"
        with gzip.open(path, "rt") as f:
            scored = {json.loads(line)["task_id"] for line in f}
        assert scored <= set(drawn)
        if record.generation == 0:  # nothing could be reused yet: every drawn problem was run
            assert scored == set(drawn)


def test_champion_is_the_best_validated_and_every_output_names_it(reference: EvolutionRun) -> None:
    from neatpipe.evolution.store import ResultStore
    from neatpipe.genome import load_genome

    rows = reference.validation
    evolved = [v for v in rows if not v.get("baseline")]
    baselines = [v for v in rows if v.get("baseline")]
    assert len(evolved) == 2 and baselines == []
    champion_row = reference.champion_validation
    assert champion_row is evolved[0] and champion_row["label"].startswith("champion")
    assert champion_row["validated_fitness"] == max(v["validated_fitness"] for v in evolved)
    # the validated genomes are the two best ever seen by search fitness, over every generation
    with ResultStore(reference.run_dir / "evaluations.sqlite") as store:
        best = store.best_searched(2)
        everything = store.searched()
    assert {v["hash"] for v in evolved} == {r.genome for r in best}
    assert {r.generation for r in everything} == set(range(GENERATIONS))
    assert best[0].fitness == max(r.fitness for r in everything)
    for v in evolved:
        record = next(r for r in best if r.genome == v["hash"])
        assert v["search_fitness"] == record.fitness and v["search_pass_rate"] == record.pass_rate
        assert v["inflation"] == pytest.approx(record.pass_rate - v["mean"])  # both pass rates
    h = reference.champion.behaviour_hash()
    summary = json.loads((reference.run_dir / "summary.json").read_text())
    assert summary["champion"]["hash"] == h == champion_row["hash"]
    assert summary["champion"]["mean"] == champion_row["mean"]
    assert load_genome(reference.run_dir / "champion.yaml").behaviour_hash() == h
    assert EvolutionRun.load(reference.run_dir).champion.behaviour_hash() == h
    assert reference.champion_fitness == champion_row["search_fitness"]
    from neatpipe.evolution.report import write_report

    report = write_report(reference.run_dir).markdown.read_text()
    assert f"`{h}`" in report and f"validated pass@1 {champion_row['mean']:.3f}" in report


def descendants() -> set[int]:
    """Process ids of every living descendant of this process (read from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] != "Z":  # a zombie has exited
                parents[int(entry.name)] = int(fields[1])
    out: set[int] = set()
    frontier = {os.getpid()}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - out
        out |= frontier
    return out


def test_one_sandbox_per_run_and_nothing_left_running(tmp_path: Path) -> None:
    """Four synthetic presets check their candidates in the run's one sandbox; when the run ends, every
    process it started is gone."""
    from neatpipe.evolution.run import Progress
    from neatpipe.sandbox.pool import default_workers

    text = EXPERIMENT.replace(
        "models:\n  coder: synthetic:coder-1.5b\n  small: synthetic:small-1.5b\n",
        "models:\n  a: synthetic:coder-1.5b\n  b: synthetic:small-1.5b\n  c: synthetic:coder-3b\n"
        "  d: synthetic:general-3b\n",
    ).replace("budget: {generations: 5}", "budget: {generations: 2}")
    (tmp_path / "four.yaml").write_text(text)
    before = descendants()
    most = [0]

    class Watch(Progress):
        def genome_done(self, generation: int, done: int, total: int) -> None:
            most[0] = max(most[0], len(descendants() - before))

    evolve(tmp_path / "four.yaml", out=tmp_path / "run", progress=Watch(None))
    # one pool: its workers, each with at most one program child running at the moment we look
    assert 0 < most[0] <= 2 * default_workers()
    assert descendants() - before == set()


def test_time_limits_are_derived_once_and_kept_by_the_run(
    copied_run: Path, reference: EvolutionRun, tmp_path: Path, monkeypatch
) -> None:
    import sqlite3

    limits = json.loads((reference.run_dir / "run.json").read_text())["time_limits"]
    assert len(limits) == 164 and min(limits.values()) >= 6.0  # every HumanEval problem, the floor at least
    with sqlite3.connect(copied_run / "evaluations.sqlite") as db:
        before = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    # on a machine whose reference costs are unknown (or differ), the resumed run keeps its own limits:
    # every validation result comes back from the store instead of being judged again
    monkeypatch.setenv("NEATPIPE_CACHE_DIR", str(tmp_path / "elsewhere"))
    again = evolve(resume=copied_run, progress=False)
    with sqlite3.connect(copied_run / "evaluations.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == before
    assert not (tmp_path / "elsewhere").exists()  # nothing was measured
    assert outcome(copied_run) == outcome(reference.run_dir) and again.status == "finished"
