"""Analyses of pipeline runs: statistics over repeats and the refinement tables.

``stats``: mean/SD, separation in SD, Welch's t-test, bootstrap CIs for pass@1.
``iterations``: per-problem refinement trajectories (neatpipe JSONL or the reference study's
file) and the early-stopping, error-fix, transition and regression tables.
``paper``: the reference study's files (Table 2 separations, its stored iteration aggregates).
``render``: plain-text and Markdown renderings. ``cli``: ``neatpipe analyze``.
"""

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
