"""Fine-tuning a causal LM on neatpipe's datasets with TRL (SFT, DPO) and PEFT (LoRA).

The training loop is TRL's (``SFTTrainer``, ``DPOTrainer``); this module checks the inputs first (data
files, model spec, options, output folder: a fault is a one-line :class:`FinetuneError` or
:class:`~neatpipe.training.data.TrainingDataError` before any model loads), then writes a folder that
``hf:DIR`` loads like any model, so the fine-tuned model goes straight back into genomes:

- merged weights (default; with ``lora`` the adapter is merged with ``merge_and_unload``), or with
  ``adapter`` only the LoRA adapter (``adapter_config.json`` naming the base model);
- the tokenizer with its chat template;
- ``training_log.jsonl`` (one line per logged step: step, loss, learning rate, epoch, and for DPO the
  reward margin and accuracy), ``loss.svg`` (when matplotlib is installed) and ``finetune.json`` (data
  files with their SHA-256, model spec, method, hyper-parameters, seed, library versions, time).

SFT examples train on the completion only (the last assistant message) through TRL's prompt-completion
form, which works with any chat template. DPO with LoRA uses the base model (the adapter switched off)
as its reference; full DPO loads a frozen copy of the model. trl, peft, datasets and torch are imported
only when training starts.
"""

from __future__ import annotations

import contextlib
import json
import math
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from neatpipe.errors import NeatpipeError, bounded, shown
from neatpipe.io import FileError, atomic_write_text, check_output_dir
from neatpipe.training.data import TrainingData, check_method, read_training_data

LOG_FILE = "training_log.jsonl"
PLOT_FILE = "loss.svg"
RECORD_FILE = "finetune.json"
RECORD_FORMAT = "neatpipe-finetune/1"

#: learning rates used when none is given: (method, lora) -> rate (TRL's defaults for full training,
#: the usual tenfold for LoRA, whose few new weights start at zero effect)
DEFAULT_LEARNING_RATES = {
    ("sft", False): 2e-5,
    ("sft", True): 2e-4,
    ("dpo", False): 1e-6,
    ("dpo", True): 1e-5,
}
#: what the training log keeps of each logged step (TRL's names; DPO adds the reward statistics)
_LOGGED = {
    "loss": "loss",
    "learning_rate": "learning_rate",
    "epoch": "epoch",
    "grad_norm": "grad_norm",
    "rewards/margins": "reward_margin",
    "rewards/accuracies": "reward_accuracy",
}
_LIBRARIES = ("trl", "peft", "transformers", "torch", "datasets", "neatpipe")


class FinetuneError(NeatpipeError, ValueError):
    """Options, model spec or output folder that fine-tuning cannot use; the message names which."""


@dataclass(frozen=True)
class FinetuneOptions:
    """How to train. ``learning_rate`` None means :data:`DEFAULT_LEARNING_RATES`; ``max_steps`` None means
    ``epochs`` passes over the data. ``adapter`` keeps the LoRA adapter only (needs ``lora``)."""

    method: str = "sft"
    lora: bool = False
    adapter: bool = False
    epochs: float = 1.0
    max_steps: int | None = None
    learning_rate: float | None = None
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 1024
    warmup_steps: int = 0
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    beta: float = 0.1
    seed: int = 0
    logging_steps: int = 1

    def check(self) -> None:
        """Each option in range, and the options that need each other together."""
        check_method(self.method)
        positive_ints = ("batch_size", "grad_accum", "max_length", "lora_r", "lora_alpha", "logging_steps")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise FinetuneError(f"{name} must be a whole number of at least 1, got {shown(value)}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise FinetuneError(
                f"max_steps must be a whole number of at least 1, got {shown(self.max_steps)}"
            )
        for name in ("epochs", "beta"):
            value = getattr(self, name)
            if not _finite(value) or value <= 0:
                raise FinetuneError(f"{name} must be a finite number above 0, got {shown(value)}")
        if self.learning_rate is not None and (not _finite(self.learning_rate) or self.learning_rate <= 0):
            raise FinetuneError(
                f"learning_rate must be a finite number above 0, got {shown(self.learning_rate)}"
            )
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise FinetuneError(
                f"warmup_steps must be a whole number of at least 0, got {shown(self.warmup_steps)}"
            )
        if not _finite(self.lora_dropout) or not 0 <= self.lora_dropout < 1:
            raise FinetuneError(
                f"lora_dropout must be at least 0 and below 1, got {shown(self.lora_dropout)}"
            )
        if self.adapter and not self.lora:
            raise FinetuneError("adapter output needs LoRA training (--lora): full training has no adapter")

    @property
    def rate(self) -> float:
        """The learning rate used: the one given, or the default for the method and LoRA."""
        return self.learning_rate or DEFAULT_LEARNING_RATES[(self.method, self.lora)]

    @property
    def output_kind(self) -> str:
        return "adapter" if self.adapter else "merged" if self.lora else "full"


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class FinetuneResult:
    """What a fine-tuning run wrote: the folder (load it as ``hf:<out>``), the log and the record."""

    out: Path
    log: list[dict[str, float]]
    record: dict[str, Any]
    plot: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def spec(self) -> str:
        return f"hf:{self.out}"


# ---------------------------------------------------------------------------------------------------------
# checks before training


def resolve_model_spec(model: str | Mapping[str, Any] | Any) -> Any:
    """``model`` as an :class:`~neatpipe.models.spec.HFSpec`; ``hf:`` only (training needs the weights)."""
    from neatpipe.models.spec import HFSpec, parse_spec

    if isinstance(model, str) and ":" not in model.split("/")[0]:
        model = f"hf:{model}"  # a bare hub id or folder
    spec = parse_spec(model)
    if not isinstance(spec, HFSpec):
        raise FinetuneError(
            f"--model {spec.to_string()}: fine-tuning needs the weights, so an hf: model "
            "(a hub id or a local folder), not a served model"
        )
    return spec


def check_out_dir(out: str | Path) -> Path:
    """``out`` if it can be written and holds nothing yet (an old model's files would mix with the new)."""
    path = check_output_dir(out)
    if path.exists() and any(path.iterdir()):
        raise FileError(path, "is not empty; give a new folder for the fine-tuned model")
    return path


def _import_training_libraries() -> None:
    missing = []
    for name in ("trl", "peft", "datasets"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise FinetuneError(f"fine-tuning needs {', '.join(missing)}: pip install 'neatpipe[train]'")


# ---------------------------------------------------------------------------------------------------------
# training


def finetune(
    data: Sequence[str | Path],
    model: str | Mapping[str, Any] | Any,
    out: str | Path,
    options: FinetuneOptions | None = None,
    *,
    progress: bool = False,
) -> FinetuneResult:
    """Train ``model`` (an ``hf:`` spec) on the JSONL files ``data`` and write the result to ``out``.

    Everything that can be checked without a model is checked first: options, data files (line by
    line), the spec, the output folder, the training libraries. ``progress`` shows TRL's progress bar.
    """
    options = options or FinetuneOptions()
    options.check()
    training = read_training_data(list(data), options.method)
    spec = resolve_model_spec(model)
    out_dir = check_out_dir(out)
    _import_training_libraries()

    from neatpipe.models.hf import HFBackend

    backend = HFBackend(spec)
    if options.adapter and backend.base is not None:
        raise FinetuneError(
            f"--adapter: {spec.to_string()} is itself an adapter; train on its merged form "
            "(drop --adapter, or fine-tune the base model)"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # everything is written into a hidden folder beside ``out`` and renamed at the end, so ``out`` is
    # either a whole model or not there (a failed run leaves no half-written model behind)
    work = out_dir.parent / f".{out_dir.name}.partial-{secrets.token_hex(4)}"
    work.mkdir()  # with the mode the umask gives, which the renamed folder keeps
    try:
        with _progress_bars(progress):
            started = time.perf_counter()
            trainer, log = _train(training, backend, options, work, progress)
            seconds = time.perf_counter() - started
            _save(trainer, options, work)
        notes: list[str] = []
        write_loss_plot(log, work / PLOT_FILE, options.method, notes)
        record = _record(training, spec, backend, options, log, seconds)
        atomic_write_text(work / RECORD_FILE, json.dumps(record, indent=2) + "\n")
        if out_dir.exists():
            out_dir.rmdir()  # checked empty above
        work.rename(out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    plot = out_dir / PLOT_FILE if (out_dir / PLOT_FILE).is_file() else None
    return FinetuneResult(out_dir, log, record, plot, notes)


@contextlib.contextmanager
def _progress_bars(shown_: bool) -> Iterator[None]:
    """Hugging Face's loading, dataset and saving bars off while a quiet run trains (restored after)."""
    if shown_:
        yield
        return
    import datasets
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    dataset_bars = datasets.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()
        if dataset_bars:
            datasets.enable_progress_bars()


def _train(
    training: TrainingData, backend: Any, options: FinetuneOptions, out_dir: Path, progress: bool
) -> tuple[Any, list[dict[str, float]]]:
    """Runs TRL's trainer; returns it (its ``model`` is what was trained) and the training log."""
    from datasets import Dataset
    from transformers import TrainerCallback, set_seed

    set_seed(options.seed)  # before the model and the LoRA weights are made
    loaded = backend.load_model()
    dataset = Dataset.from_list(list(training.examples))
    log: list[dict[str, float]] = []
    log_path = out_dir / LOG_FILE
    log_path.write_text("")

    class _Log(TrainerCallback):
        """Keeps each logged training step, and appends it to the log file as it comes."""

        def on_log(
            self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **kw: Any
        ):
            if not logs or "loss" not in logs:
                return
            entry: dict[str, float] = {"step": int(state.global_step)}
            entry.update({name: float(logs[key]) for key, name in _LOGGED.items() if key in logs})
            log.append(entry)
            with log_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")

    with tempfile.TemporaryDirectory(prefix="neatpipe-finetune-") as scratch:
        common = dict(
            output_dir=scratch,
            num_train_epochs=options.epochs,
            max_steps=options.max_steps or -1,
            learning_rate=options.rate,
            per_device_train_batch_size=options.batch_size,
            gradient_accumulation_steps=options.grad_accum,
            warmup_steps=options.warmup_steps,
            max_length=options.max_length,
            logging_steps=options.logging_steps,
            save_strategy="no",
            report_to="none",
            seed=options.seed,
            data_seed=options.seed,
            use_cpu=loaded.device == "cpu",
            dataloader_num_workers=0,
            disable_tqdm=not progress,
        )
        peft_config = _lora_config(options, backend) if options.lora else None
        trainer = _make_trainer(training.method, loaded, dataset, common, options, peft_config, backend)
        trainer.add_callback(_Log())
        if not progress:
            from transformers import PrinterCallback

            trainer.remove_callback(PrinterCallback)  # without a bar the trainer prints each log dict
        try:
            trainer.train()
        except RuntimeError as exc:
            if "out of memory" in str(exc).lower():
                from neatpipe.models.errors import OutOfMemoryError

                raise OutOfMemoryError(
                    f"fine-tuning ran out of memory on {loaded.device}: lower --batch-size or --max-length, "
                    "or train with --lora"
                ) from exc
            raise
    return trainer, log


def _lora_config(options: FinetuneOptions, backend: Any) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=options.lora_r,
        lora_alpha=options.lora_alpha,
        lora_dropout=options.lora_dropout,
        target_modules="all-linear",  # every linear layer of the blocks (the output head is left out)
        task_type="CAUSAL_LM",
        revision=backend.spec.revision if backend.folder is None else None,
    )


def _make_trainer(
    method: str,
    loaded: Any,
    dataset: Any,
    common: dict[str, Any],
    options: FinetuneOptions,
    peft_config: Any,
    backend: Any,
) -> Any:
    if method == "sft":
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(**common, completion_only_loss=True)
        return SFTTrainer(
            model=loaded.model,
            args=args,
            train_dataset=dataset,
            processing_class=loaded.tokenizer,
            peft_config=peft_config,
        )
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(**common, beta=options.beta)
    reference = None
    if peft_config is None:  # full DPO: a frozen copy of the starting model is the reference
        reference = backend.load_model().model
    return DPOTrainer(
        model=loaded.model,
        ref_model=reference,
        args=args,
        train_dataset=dataset,
        processing_class=loaded.tokenizer,
        peft_config=peft_config,
    )


def _save(trainer: Any, options: FinetuneOptions, out_dir: Path) -> None:
    """The model (merged, adapter or full weights) and the tokenizer with its chat template."""
    model = trainer.model
    if options.lora and not options.adapter:
        model = model.merge_and_unload()
    model.save_pretrained(str(out_dir))
    trainer.processing_class.save_pretrained(str(out_dir))


# ---------------------------------------------------------------------------------------------------------
# what is written beside the model


def write_loss_plot(
    log: Sequence[Mapping[str, float]], path: Path, method: str, notes: list[str]
) -> Path | None:
    """The training loss by step as SVG (and the DPO reward margin beside it); None, with a note in
    ``notes``, when matplotlib is missing or nothing was logged."""
    if not log:
        notes.append("no loss plot: no training step was logged")
        return None
    try:
        import matplotlib
    except ImportError:
        notes.append("no loss plot: matplotlib is not installed (pip install 'neatpipe[plot]')")
        return None
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    steps = [e["step"] for e in log]
    margins = [e["reward_margin"] for e in log if "reward_margin" in e]
    fig = Figure(figsize=(9 if margins else 5, 3.5))
    axes = fig.subplots(1, 2 if margins else 1, squeeze=False)[0]
    axes[0].plot(steps, [e["loss"] for e in log], marker="." if len(log) < 50 else None)
    axes[0].set(xlabel="step", ylabel="training loss", title=f"{method} training loss")
    if margins:
        axes[1].plot([e["step"] for e in log if "reward_margin" in e], margins, color="tab:green")
        axes[1].set(xlabel="step", ylabel="reward margin (chosen - rejected)", title="DPO reward margin")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="svg")
    return path


def library_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in _LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _record(
    training: TrainingData,
    spec: Any,
    backend: Any,
    options: FinetuneOptions,
    log: Sequence[Mapping[str, float]],
    seconds: float,
) -> dict[str, Any]:
    from neatpipe.models.spec import spec_to_mapping

    hyper = asdict(options)
    hyper["learning_rate"] = options.rate
    return {
        "format": RECORD_FORMAT,
        "method": options.method,
        "output": options.output_kind,
        "model": {"spec": spec_to_mapping(spec), "source": backend.source, "identity": backend.identity()},
        "data": [asdict(f) for f in training.files],
        "examples": len(training.examples),
        "hyperparameters": hyper,
        "seed": options.seed,
        "steps": int(log[-1]["step"]) if log else 0,
        "first_loss": log[0]["loss"] if log else None,
        "last_loss": log[-1]["loss"] if log else None,
        "train_seconds": round(seconds, 3),
        "versions": library_versions(),
    }


def describe(result: FinetuneResult) -> str:
    """A few lines for the terminal: what was written and how the loss went."""
    r = result.record
    loss = ""
    if r["first_loss"] is not None:
        loss = f", loss {r['first_loss']:.4g} -> {r['last_loss']:.4g}"
    lines = [
        f"fine-tuned {bounded(r['model']['source'], 200)} ({r['method']}, {r['output']}) on "
        f"{r['examples']} examples: {r['steps']} steps in {r['train_seconds']:.1f} s{loss}",
        f"wrote {result.out} (use it as hf:{result.out})",
        *result.notes,
    ]
    return "\n".join(lines)
