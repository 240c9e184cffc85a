"""Training from execution feedback: run directories -> datasets (SFT, repair, preference), and fine-tuning
models on them with TRL and PEFT.

>>> from neatpipe.training import export_dataset, finetune, FinetuneOptions              # doctest: +SKIP
>>> export_dataset(["runs/harvest"], "data/harvest", kinds=("sft", "repair"))          # doctest: +SKIP
>>> finetune(["data/harvest/sft.jsonl"], "hf:./tiny", "tuned", FinetuneOptions(lora=True)).spec  # doctest: +SKIP
'hf:tuned'

Names are loaded on first use (:mod:`neatpipe.lazy`); importing this package imports neither torch nor
trl. See ``docs/training.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neatpipe.lazy import lazy_exports

_EXPORTS = {
    "DatasetError": "dataset",
    "ExportReport": "dataset",
    "export_dataset": "dataset",
    "load_run": "dataset",
    "norm_id": "dataset",
    "TrainingData": "data",
    "TrainingDataError": "data",
    "read_training_data": "data",
    "FinetuneError": "finetune",
    "FinetuneOptions": "finetune",
    "FinetuneResult": "finetune",
    "finetune": "finetune",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors only
    from neatpipe.training.data import TrainingData, TrainingDataError, read_training_data
    from neatpipe.training.dataset import DatasetError, ExportReport, export_dataset, load_run, norm_id
    from neatpipe.training.finetune import FinetuneError, FinetuneOptions, FinetuneResult, finetune

__getattr__, __dir__ = lazy_exports(
    __name__, {name: (f"neatpipe.training.{module}", name) for name, module in _EXPORTS.items()}, globals()
)

__all__ = [
    "DatasetError",
    "ExportReport",
    "FinetuneError",
    "FinetuneOptions",
    "FinetuneResult",
    "TrainingData",
    "TrainingDataError",
    "export_dataset",
    "finetune",
    "load_run",
    "norm_id",
    "read_training_data",
]
