"""``neatpipe bench pipeline`` runs and reports the same work batched and one problem at a time."""

from __future__ import annotations

from neatpipe.cli import main


def test_the_pipeline_benchmark_prints_both_runs_with_their_call_counts(capsys) -> None:
    assert (
        main(
            ["bench", "pipeline", "--problems", "4", "--tokens", "8", "--iterations", "1", "--device", "cpu"]
        )
        == 0
    )
    out = capsys.readouterr().out
    rows = {
        line.split("|")[1].strip(): line.split("|")[2:] for line in out.splitlines() if line.startswith("| ")
    }
    batched, single = rows["batched across problems"], rows["one problem at a time"]
    calls = int(batched[2]), int(single[2])
    assert (
        calls[0] <= 2 and calls[1] == 4 * calls[0]
    )  # one call per node step, against one per problem and step
    assert single[4].strip() == batched[4].strip()  # same seeds, same work: the same problems pass
    assert single[5].strip().endswith("x") and batched[5].strip() == "-"


def test_the_evaluation_benchmark_prints_both_ways_and_checks_they_agree(capsys) -> None:
    args = [
        "bench",
        "evaluation",
        "--genomes",
        "6",
        "--problems",
        "3",
        "--tokens",
        "8",
        "--models",
        "synthetic",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    rows = {
        line.split("|")[2].strip(): [c.strip() for c in line.split("|")[3:-1]]
        for line in out.splitlines()
        if line.startswith("| synthetic")
    }
    genome, generation = rows["genome"], rows["generation"]
    assert int(generation[0]) < int(genome[0])  # backend calls: one per round, not per genome and step
    assert int(generation[2]) > int(genome[2])  # the largest batch spans genomes
    assert genome[3].split("/")[0] == generation[3].split("/")[0]  # the same requests were made
    assert int(generation[5]) < int(genome[5])  # fewer sandbox batches
    assert genome[-1] == "1.00x" and generation[-1].endswith("x")
    assert "synthetic: fitness identical in every way" in out
