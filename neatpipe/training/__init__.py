"""Training from execution feedback: run directories -> datasets (SFT, repair, preference).

>>> from neatpipe.training import export_dataset                               # doctest: +SKIP
>>> export_dataset(["runs/synthetic"], "data/synthetic", kinds=("sft", "repair"))  # doctest: +SKIP

Names are loaded on first use (:mod:`neatpipe.lazy`). See ``docs/training.md``.
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
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors only
    from neatpipe.training.dataset import DatasetError, ExportReport, export_dataset, load_run, norm_id

__getattr__, __dir__ = lazy_exports(
    __name__, {name: (f"neatpipe.training.{module}", name) for name, module in _EXPORTS.items()}, globals()
)

__all__ = ["DatasetError", "ExportReport", "export_dataset", "load_run", "norm_id"]
