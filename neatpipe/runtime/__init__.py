"""The runtime: genome -> plan -> batched run over problems -> trajectories.

>>> from neatpipe.runtime import compile_plan, run_pipeline, write_trajectories    # doctest: +SKIP
>>> run = run_pipeline(genome, problems, {"coder": backend}, sandbox, seed=0)     # doctest: +SKIP
>>> write_trajectories("runs/x/trajectories.jsonl", run.trajectories)             # doctest: +SKIP

Names are loaded on first use (:mod:`neatpipe.lazy`), as in every package.
See ``docs/runtime.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neatpipe.lazy import lazy_exports

_EXPORTS = {
    "STEP_KINDS": "plan",
    "Plan": "plan",
    "Step": "plan",
    "compile_plan": "plan",
    "FEEDBACK_POLICIES": "runner",
    "GENOME_POLICY": "runner",
    "PipelineError": "runner",
    "ModelWork": "runner",
    "PipelineJob": "runner",
    "PipelineRun": "runner",
    "SandboxWork": "runner",
    "StepStats": "runner",
    "StreamStats": "runner",
    "normalised_code": "runner",
    "request_seed": "runner",
    "run_pipeline": "runner",
    "run_pipelines": "runner",
    "FORMAT": "trajectory",
    "FeedbackResult": "trajectory",
    "FinalResult": "trajectory",
    "HiddenResult": "trajectory",
    "StageIteration": "trajectory",
    "StageTrace": "trajectory",
    "TraceStep": "trajectory",
    "Trajectory": "trajectory",
    "TrajectoryError": "trajectory",
    "read_trajectories": "trajectory",
    "write_trajectories": "trajectory",
    "RequestRecord": "trajectory",
    "TEXTS_FILE": "texts",
    "RecordedCall": "texts",
    "TextStore": "texts",
    "TextStoreError": "texts",
    "request_of": "texts",
    "store_texts": "texts",
    "text_key": "texts",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors only
    from neatpipe.runtime.plan import STEP_KINDS, Plan, Step, compile_plan
    from neatpipe.runtime.runner import (
        FEEDBACK_POLICIES,
        GENOME_POLICY,
        ModelWork,
        PipelineError,
        PipelineJob,
        PipelineRun,
        SandboxWork,
        StepStats,
        StreamStats,
        normalised_code,
        request_seed,
        run_pipeline,
        run_pipelines,
    )
    from neatpipe.runtime.texts import (
        TEXTS_FILE,
        RecordedCall,
        TextStore,
        TextStoreError,
        request_of,
        store_texts,
        text_key,
    )
    from neatpipe.runtime.trajectory import (
        FORMAT,
        FeedbackResult,
        FinalResult,
        HiddenResult,
        RequestRecord,
        StageIteration,
        StageTrace,
        TraceStep,
        Trajectory,
        TrajectoryError,
        read_trajectories,
        write_trajectories,
    )


__getattr__, __dir__ = lazy_exports(
    __name__, {name: (f"neatpipe.runtime.{module}", name) for name, module in _EXPORTS.items()}, globals()
)


__all__ = [
    "TEXTS_FILE",
    "FEEDBACK_POLICIES",
    "FORMAT",
    "FeedbackResult",
    "FinalResult",
    "GENOME_POLICY",
    "HiddenResult",
    "ModelWork",
    "PipelineError",
    "PipelineJob",
    "PipelineRun",
    "Plan",
    "RecordedCall",
    "RequestRecord",
    "STEP_KINDS",
    "SandboxWork",
    "StageIteration",
    "StageTrace",
    "Step",
    "StepStats",
    "StreamStats",
    "TextStore",
    "TextStoreError",
    "TraceStep",
    "Trajectory",
    "TrajectoryError",
    "compile_plan",
    "normalised_code",
    "read_trajectories",
    "request_of",
    "request_seed",
    "run_pipeline",
    "run_pipelines",
    "store_texts",
    "text_key",
    "write_trajectories",
]
