"""Analyses of pipeline runs: statistics over repeats and the refinement tables.

``stats``: mean/SD, separation in SD, Welch's t-test, bootstrap CIs for pass@1.
``iterations``: per-problem refinement trajectories (neatpipe JSONL or the reference study's
file) and the early-stopping, error-fix, transition and regression tables.
``paper``: the reference study's files (Table 2 separations, its stored iteration aggregates).
``render``: plain-text and Markdown renderings. ``cli``: ``neatpipe analyze``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neatpipe.lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and editors; at run time each name loads on first use
    from neatpipe.analysis.iterations import (
        ERROR_CATEGORIES,
        Attempt,
        IterationTrajectory,
        TrajectoryFormatError,
        TrajectorySet,
        early_stopping_table,
        error_category,
        error_fix_table,
        final_outcomes,
        load_trajectories,
        read_neatpipe_trajectories,
        read_study_trajectories,
        regression_table,
        transition_table,
    )
    from neatpipe.analysis.stats import (
        bootstrap_pass_at_1,
        separation,
        summarize,
        welch_t_test,
    )

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ERROR_CATEGORIES": ("neatpipe.analysis.iterations", "ERROR_CATEGORIES"),
        "Attempt": ("neatpipe.analysis.iterations", "Attempt"),
        "IterationTrajectory": ("neatpipe.analysis.iterations", "IterationTrajectory"),
        "TrajectoryFormatError": ("neatpipe.analysis.iterations", "TrajectoryFormatError"),
        "TrajectorySet": ("neatpipe.analysis.iterations", "TrajectorySet"),
        "early_stopping_table": ("neatpipe.analysis.iterations", "early_stopping_table"),
        "error_category": ("neatpipe.analysis.iterations", "error_category"),
        "error_fix_table": ("neatpipe.analysis.iterations", "error_fix_table"),
        "final_outcomes": ("neatpipe.analysis.iterations", "final_outcomes"),
        "load_trajectories": ("neatpipe.analysis.iterations", "load_trajectories"),
        "read_neatpipe_trajectories": ("neatpipe.analysis.iterations", "read_neatpipe_trajectories"),
        "read_study_trajectories": ("neatpipe.analysis.iterations", "read_study_trajectories"),
        "regression_table": ("neatpipe.analysis.iterations", "regression_table"),
        "transition_table": ("neatpipe.analysis.iterations", "transition_table"),
        "bootstrap_pass_at_1": ("neatpipe.analysis.stats", "bootstrap_pass_at_1"),
        "separation": ("neatpipe.analysis.stats", "separation"),
        "summarize": ("neatpipe.analysis.stats", "summarize"),
        "welch_t_test": ("neatpipe.analysis.stats", "welch_t_test"),
    },
    globals(),
)


__all__ = [
    "ERROR_CATEGORIES",
    "IterationTrajectory",
    "Attempt",
    "TrajectoryFormatError",
    "TrajectorySet",
    "bootstrap_pass_at_1",
    "early_stopping_table",
    "error_category",
    "error_fix_table",
    "final_outcomes",
    "load_trajectories",
    "read_neatpipe_trajectories",
    "read_study_trajectories",
    "regression_table",
    "separation",
    "summarize",
    "transition_table",
    "welch_t_test",
]
