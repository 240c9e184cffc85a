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
