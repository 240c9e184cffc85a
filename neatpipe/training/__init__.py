"""Training on what pipelines did: fine-tuning models with TRL and PEFT on neatpipe's datasets.

>>> from neatpipe.training import FinetuneOptions, finetune
>>> result = finetune(["sft.jsonl"], "hf:./tiny", "tuned", FinetuneOptions(lora=True))  # doctest: +SKIP
>>> result.spec  # load it in any genome's model pool                               # doctest: +SKIP
'hf:tuned'

Importing this package imports neither torch nor trl; training does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neatpipe.lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and editors; at run time each name loads on first use
    from neatpipe.training.data import TrainingData, TrainingDataError, read_training_data
    from neatpipe.training.finetune import FinetuneError, FinetuneOptions, FinetuneResult, finetune

_EXPORTS = {
    "TrainingData": ("neatpipe.training.data", "TrainingData"),
    "TrainingDataError": ("neatpipe.training.data", "TrainingDataError"),
    "read_training_data": ("neatpipe.training.data", "read_training_data"),
    "FinetuneError": ("neatpipe.training.finetune", "FinetuneError"),
    "FinetuneOptions": ("neatpipe.training.finetune", "FinetuneOptions"),
    "FinetuneResult": ("neatpipe.training.finetune", "FinetuneResult"),
    "finetune": ("neatpipe.training.finetune", "finetune"),
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
__all__ = [
    "FinetuneError",
    "FinetuneOptions",
    "FinetuneResult",
    "TrainingData",
    "TrainingDataError",
    "finetune",
    "read_training_data",
]
