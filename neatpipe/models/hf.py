"""The Hugging Face transformers backend: a causal LM in this process, batched on CUDA, MPS or CPU.

Loading goes through ``AutoTokenizer`` / ``AutoModelForCausalLM.from_pretrained`` for a hub id and for a
local folder alike, so the tiny models the tests build exercise the same path as a downloaded model.
Offline mode (``HF_HUB_OFFLINE=1``) is respected: a hub model missing from the local cache is reported
with the command that downloads it. A folder with a PEFT ``adapter_config.json`` (what ``neatpipe finetune
--adapter`` writes) loads as the base model it names with the LoRA adapter merged in. Models live in a :class:`ModelPool`, an explicit object that several
backends can share, which keeps them within a memory budget and unloads the least recently used first.

torch and transformers are imported only when a model is loaded, so parsing specs, reading the cache and
serving cache hits never pay for them.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neatpipe.errors import bounded
from neatpipe.models.base import Backend
from neatpipe.models.errors import ModelNotAvailableError, RequestError, SpecError
from neatpipe.models.spec import HFSpec, spec_to_mapping
from neatpipe.models.types import ChatRequest, Completion

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
ADAPTER_CONFIG = "adapter_config.json"  # a PEFT adapter folder: loaded as its base model plus the adapter
_ELEMENT_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
_FULL_HASH_LIMIT = 64 * 2**20
_PARTIAL_HASH_BYTES = 16 * 2**20


# ---------------------------------------------------------------------------------------------------------
# device, dtype, offline mode


def resolve_device(name: str) -> str:
    """``auto`` means CUDA if present, then Apple MPS, then CPU; anything else is checked and returned."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelNotAvailableError(f"device {name!r} was asked for but torch sees no CUDA GPU")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelNotAvailableError("device 'mps' was asked for but torch sees no Apple MPS device")
    return name


def resolve_dtype(name: str, device: str) -> str:
    """``auto`` means bfloat16 on CUDA (float16 where bf16 is unsupported), float16 on MPS, float32 on CPU."""
    if name != "auto":
        return name
    if device.startswith("cuda"):
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float16" if device == "mps" else "float32"


def attention_implementation(dtype: str) -> str | None:
    """``eager`` for 16-bit types, else None (transformers' default, SDPA).

    Why: measured on CPU with bfloat16, the SDPA kernel's result for a row depends on how long the padded
    key sequence is (the reduction is split by total length), so the same prompt alone and in a batch of
    longer prompts gave different greedy tokens in about one request in ten. Eager attention (matmul,
    float32 softmax, matmul) gave identical tokens in every case, and was no slower there. In float32
    the SDPA kernel is already batch-independent, so it stays.
    """
    return "eager" if dtype in ("bfloat16", "float16") else None


def is_offline(environ: Mapping[str, str] | None = None) -> bool:
    """Hugging Face offline mode: ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` set to a true value."""
    env = os.environ if environ is None else environ
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if env.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    return False


def hub_cache_dir(cache_dir: str | None, environ: Mapping[str, str] | None = None) -> str:
    """Where the hub cache is: the spec's ``cache_dir``, ``HF_HUB_CACHE``, ``$HF_HOME/hub`` or the default."""
    env = os.environ if environ is None else environ
    if cache_dir:
        return str(Path(cache_dir).expanduser())
    if env.get("HF_HUB_CACHE"):
        return str(Path(env["HF_HUB_CACHE"]).expanduser())
    if env.get("HF_HOME"):
        return str(Path(env["HF_HOME"]).expanduser() / "hub")
    return str(Path("~/.cache/huggingface/hub").expanduser())


def cached_snapshot(repo_id: str, revision: str | None, cache_dir: str) -> Path | None:
    """The local snapshot folder of ``repo_id`` at ``revision`` if its config.json is cached, else None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return None
    found = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir, revision=revision)
    return Path(found).parent if isinstance(found, str) else None


def folder_fingerprint(folder: Path) -> str:
    """SHA-256 over a model folder's files (names, sizes, contents; files over 64 MiB by head, tail, size).

    What a local model's cache key rests on: rebuilding a tiny model with another seed changes it;
    moving the folder does not.
    """
    h = hashlib.sha256()
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.suffix not in (".md", ".lock")
    )
    for p in files:
        size = p.stat().st_size
        h.update(f"{p.relative_to(folder).as_posix()}\0{size}\0".encode())
        with p.open("rb") as f:
            if size <= _FULL_HASH_LIMIT:
                h.update(f.read())
            else:
                h.update(f.read(_PARTIAL_HASH_BYTES))
                f.seek(size - _PARTIAL_HASH_BYTES)
                h.update(f.read(_PARTIAL_HASH_BYTES))
    return h.hexdigest()


def estimate_model_bytes(folder: Path | None, dtype: str) -> int:
    """Bytes the weights take in memory at ``dtype``, from the weight files' sizes (0 if unknown)."""
    if folder is None or not folder.is_dir():
        return 0
    stored = sum(p.stat().st_size for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES)
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        config = {}
    stored_dtype = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    ratio = _ELEMENT_BYTES.get(dtype, 4) / _ELEMENT_BYTES.get(stored_dtype, 4)
    return int(stored * ratio)


def adapter_base_spec(spec: HFSpec, folder: Path) -> HFSpec:
    """The spec of the base model a LoRA adapter folder names (``base_model_name_or_path`` and
    ``revision`` in its ``adapter_config.json``), with ``spec``'s dtype, device and placement."""
    import dataclasses

    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelNotAvailableError(
            f"{spec.to_string()}: cannot read {folder / ADAPTER_CONFIG}: {bounded(str(exc))}"
        ) from exc
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if not isinstance(base, str) or not base:
        raise ModelNotAvailableError(
            f"{spec.to_string()}: {folder / ADAPTER_CONFIG} names no base model (base_model_name_or_path)"
        )
    if Path(base).expanduser().resolve() == folder:
        raise ModelNotAvailableError(f"{spec.to_string()}: the adapter in {folder} names itself as its base")
    revision = config.get("revision")
    return dataclasses.replace(spec, model=base, revision=revision if isinstance(revision, str) else None)


# ---------------------------------------------------------------------------------------------------------
# the pool of resident models


@dataclass
class LoadedModel:
    """A model and tokenizer in memory, with what they cost and where they came from."""

    model: Any
    tokenizer: Any | None
    device: str
    dtype: str
    nbytes: int
    revision: str  # a hub commit, or "local"


class ModelPool:
    """Models resident in memory within ``budget_bytes`` (None: no limit); least recently used leave first.

    Backends of several models (a generator and a refiner) share one pool so that together they stay
    within the accelerator's memory. A model that alone exceeds the budget is still loaded, alone.
    """

    def __init__(self, budget_bytes: int | None = None) -> None:
        self.budget_bytes = budget_bytes
        self._models: OrderedDict[Hashable, LoadedModel] = OrderedDict()
        self._lock = threading.RLock()
        self.loads = 0
        self.evictions: list[Hashable] = []

    def acquire(self, key: Hashable, load: Callable[[], LoadedModel], estimate_bytes: int = 0) -> LoadedModel:
        """The resident model for ``key``, loading it (after making room) when it is not resident."""
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            self._make_room(estimate_bytes)
            loaded = load()
            self.loads += 1
            self._models[key] = loaded
            self._make_room(0, keep=key)
            return loaded

    def _make_room(self, incoming: int, keep: Hashable | None = None) -> None:
        if self.budget_bytes is None:
            return
        while self._models and self.used_bytes + incoming > self.budget_bytes:
            oldest = next(iter(self._models))
            if oldest == keep:
                break
            self.unload(oldest)

    def unload(self, key: Hashable) -> bool:
        """Drop a model from memory (it is loaded again when next used)."""
        with self._lock:
            loaded = self._models.pop(key, None)
            if loaded is None:
                return False
            self.evictions.append(key)
            device = loaded.device
            del loaded
        _release_memory(device)
        return True

    def clear(self) -> None:
        with self._lock:
            for key in list(self._models):
                self.unload(key)

    @property
    def used_bytes(self) -> int:
        with self._lock:
            return sum(m.nbytes for m in self._models.values())

    def resident(self) -> tuple[Hashable, ...]:
        """Keys of resident models, least recently used first."""
        with self._lock:
            return tuple(self._models)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._models


def _release_memory(device: str) -> None:
    import gc

    gc.collect()
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


# ---------------------------------------------------------------------------------------------------------
# chat formatting


def encode_chat(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Prompt token ids through the tokenizer's chat template (with the assistant turn opened).

    A tokenizer without a template (a base model) gets the messages' contents joined by blank lines,
    with its usual special tokens.
    """
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    text = "\n\n".join(m["content"] for m in messages)
    return list(tokenizer(text, add_special_tokens=True)["input_ids"])


def end_token_ids(model: Any, tokenizer: Any | None) -> list[int]:
    """End-of-sequence ids from the generation config, the model config and the tokenizer."""
    ids: list[int] = []
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None), tokenizer):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            value = [value]
        for v in value or []:
            if isinstance(v, int) and v not in ids:
                ids.append(v)
    return ids


def pad_token_id(model: Any, tokenizer: Any | None, eos: Sequence[int]) -> int:
    for source in (tokenizer, getattr(model, "generation_config", None), getattr(model, "config", None)):
        value = getattr(source, "pad_token_id", None) if source is not None else None
        if isinstance(value, int):
            return value
    return eos[0] if eos else 0


def hub_download_command() -> str:
    """The download command of the installed huggingface_hub: ``hf download`` (the ``hf`` command, from
    0.34 on; 1.0 dropped ``huggingface-cli``) or ``huggingface-cli download`` for an older release.

    Why: a message that names a command the user's installation lacks sends them looking for it.
    """
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        scripts = {
            ep.name for ep in distribution("huggingface_hub").entry_points if ep.group == "console_scripts"
        }
    except PackageNotFoundError:
        scripts = set()
    if "hf" not in scripts and "huggingface-cli" in scripts:
        return "huggingface-cli download"
    return "hf download"


def generation_defaults(model: Any) -> dict[str, Any]:
    """``top_k``, ``top_p`` and ``repetition_penalty`` that the model's generation config sets.

    Why: a server running the same model (vLLM, for one) applies them by default, so ``hf:`` does too,
    and the two decode alike. A request's own top-p below 1 wins over the config's.
    """
    config = getattr(model, "generation_config", None)
    out: dict[str, Any] = {}
    top_k = getattr(config, "top_k", None)
    if isinstance(top_k, int) and top_k > 0:
        out["top_k"] = top_k
    top_p = getattr(config, "top_p", None)
    if isinstance(top_p, int | float) and 0 < top_p < 1:
        out["top_p"] = float(top_p)
    penalty = getattr(config, "repetition_penalty", None)
    if isinstance(penalty, int | float) and penalty > 0 and penalty != 1:
        out["repetition_penalty"] = float(penalty)
    return out


# ---------------------------------------------------------------------------------------------------------
# the backend


class HFBackend(Backend):
    """A transformers causal LM, batched with per-request sampling, budgets and stop strings.

    ``pool`` holds the model (a private pool when None). ``batch_buckets``: fixed batch sizes that batches
    are padded up to (``"auto"``: on CUDA only, where new shapes cost warm-up; None: never).
    ``drop_finished``: drop finished rows from the batch and KV cache instead of feeding them padding.
    ``fail_hook(rows, kv_length)`` runs before each forward pass (tests use it to simulate OOM).
    ``preloaded`` is for :meth:`from_model`.
    """

    kind = "hf"

    def __init__(
        self,
        spec: HFSpec,
        *,
        pool: ModelPool | None = None,
        batch_buckets: Sequence[int] | str | None = "auto",
        drop_finished: bool = True,
        fail_hook: Callable[[int, int], None] | None = None,
        environ: Mapping[str, str] | None = None,
        preloaded: LoadedModel | None = None,
    ) -> None:
        super().__init__(spec.to_string())
        self.spec = spec
        self.pool = pool if pool is not None else ModelPool()
        self.batch_buckets = batch_buckets
        self.drop_finished = drop_finished
        self.fail_hook = fail_hook
        self._environ = dict(os.environ if environ is None else environ)
        self._run_lock = threading.Lock()  # one batch at a time on a model, whatever thread asks
        self._identity: str | None = None
        self._device: str | None = None
        self._generator: Any = None
        self._generator_for: int | None = None
        self._state: Any = None  # GeneratorState, kept across reloads
        self._preloaded = preloaded
        self.base: HFBackend | None = None  # for a LoRA adapter folder: the backend of its base model
        if preloaded is not None:
            self._device = preloaded.device
            config = getattr(preloaded.model, "config", None)
            digest = hashlib.sha256(repr(config.to_dict() if config else None).encode()).hexdigest()[:16]
            self._identity = f"hf:{spec.model}#{digest}:{preloaded.dtype}"
            self.source, self.folder = spec.model, None
        elif (
            spec.is_local or Path(spec.model).expanduser().is_dir()
        ):  # an existing folder wins, as in transformers
            folder = Path(spec.model).expanduser().resolve()
            if (folder / ADAPTER_CONFIG).is_file():
                self.base = HFBackend(adapter_base_spec(spec, folder), environ=self._environ)
            elif not (folder / "config.json").is_file():
                raise ModelNotAvailableError(
                    f"{spec.to_string()}: no model folder at {folder} (expected config.json and weights in the "
                    f"Hugging Face layout, or {ADAPTER_CONFIG} of a LoRA adapter; "
                    f"`neatpipe models make-tiny {spec.model}` writes a tiny model)"
                )
            self.source: str = str(folder)
            self.folder: Path | None = folder
        else:
            self.source = spec.model
            self.folder = None

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any | None = None,
        *,
        name: str | None = None,
        batch_size: int | str = "auto",
        **options: Any,
    ) -> HFBackend:
        """A backend around a model already in memory (benchmarks build one from a config in code).

        Without a tokenizer only :meth:`generate_tokens` works (chat needs a template and decoding).
        """
        label = name or str(getattr(model.config, "_name_or_path", "") or "in-memory")
        param = next(model.parameters())
        dtype = str(param.dtype).removeprefix("torch.")
        nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
        loaded = LoadedModel(model, tokenizer, str(param.device), dtype, nbytes, "memory")
        spec = HFSpec(
            model=f"memory:{label}", dtype=dtype if dtype in _ELEMENT_BYTES else "auto", batch_size=batch_size
        )
        return cls(spec, preloaded=loaded, **options)

    # -- identity and loading -------------------------------------------------------------------------------

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = resolve_device(self.spec.device)
        return self._device

    @property
    def dtype(self) -> str:
        if self.spec.dtype != "auto":  # no device probe (and no torch import) needed
            return self.spec.dtype
        return resolve_dtype(self.spec.dtype, self.device)

    @property
    def pool_key(self) -> tuple[Hashable, ...]:
        spec = self.spec
        return (self.source, spec.revision, self.dtype, self.device, spec.device_map, spec.max_memory)

    @property
    def is_loaded(self) -> bool:
        return self._preloaded is not None or self.pool_key in self.pool

    def identity(self) -> str:
        """``hf:<hub id>@<commit>:<dtype>``, ``hf:local#<content fingerprint>:<dtype>``, or for an adapter
        folder ``hf:adapter#<its fingerprint>+<its base model's identity>``.

        A local folder is identified by its content, so moving it keeps its cache entries and rebuilding
        it with other weights does not reuse them. A hub model is identified by the exact commit in the
        local cache (the model is loaded, and downloaded when online, if no snapshot is cached yet).
        """
        if self._identity is None:
            if self.base is not None and self.folder is not None:
                self._identity = f"hf:adapter#{folder_fingerprint(self.folder)[:20]}+{self.base.identity()}"
            elif self.folder is not None:
                self._identity = f"hf:local#{folder_fingerprint(self.folder)[:20]}:{self.dtype}"
            else:
                cache = hub_cache_dir(self.spec.cache_dir, self._environ)
                snap = cached_snapshot(self.source, self.spec.revision, cache)
                if snap is None:
                    self._loaded()
                    snap = cached_snapshot(self.source, self.spec.revision, cache)
                commit = snap.name if snap is not None else (self.spec.revision or "main")
                self._identity = f"hf:{self.source}@{commit}:{self.dtype}"
        return self._identity

    def _missing_message(self, detail: str) -> str:
        rev = self.spec.revision or "main"
        cache = hub_cache_dir(self.spec.cache_dir, self._environ)
        state = (
            "offline mode is on (HF_HUB_OFFLINE=1)"
            if is_offline(self._environ)
            else "it could not be downloaded"
        )
        rev_flag = f" --revision {self.spec.revision}" if self.spec.revision else ""
        command = hub_download_command()
        return (
            f"model {self.source!r} (revision {rev}) is not in the local Hugging Face cache ({cache}) and {state}"
            f"{': ' + detail if detail else ''}.\n"
            f"Download it on a machine with internet access:\n"
            f"    {command} {self.source}{rev_flag}\n"
            f"then copy the cache folder here or point HF_HUB_CACHE at it; or save the model to a folder "
            f"(`{command} {self.source} --local-dir /path/to/folder`) and use the spec hf:/path/to/folder."
        )

    def _load(self) -> LoadedModel:
        if self.base is not None:
            return self._load_adapter(self.base)
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device, dtype = self.device, self.dtype
        offline = is_offline(self._environ)
        kwargs: dict[str, Any] = {}
        if self.folder is None:
            cache = hub_cache_dir(self.spec.cache_dir, self._environ)
            kwargs = {"revision": self.spec.revision, "cache_dir": cache, "local_files_only": offline}
            if offline and cached_snapshot(self.source, self.spec.revision, cache) is None:
                raise ModelNotAvailableError(self._missing_message(""))
        dtype_kw = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
        placement = self._placement()
        model_kwargs: dict[str, Any] = {dtype_kw: getattr(torch, dtype)}
        attention = attention_implementation(dtype)
        if attention is not None:
            model_kwargs["attn_implementation"] = attention
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.source, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(self.source, **model_kwargs, **kwargs, **placement)
        except OSError as exc:
            if self.folder is not None:
                raise ModelNotAvailableError(
                    f"{self.spec.to_string()}: cannot load {self.folder}: {exc}"
                ) from exc
            raise ModelNotAvailableError(self._missing_message(str(exc).splitlines()[0])) from exc
        except ValueError as exc:
            if not placement:
                raise
            raise SpecError(
                spec_to_mapping(self.spec),
                "device_map",
                f"accelerate cannot place the model: {bounded(str(exc))}",
            ) from exc
        if placement:
            device = self._input_device(model)
        else:
            model.to(device)
        model.eval()
        # offloaded weights sit on the meta device and take no memory until a layer runs
        nbytes = sum(p.numel() * p.element_size() for p in model.parameters() if p.device.type != "meta")
        nbytes += sum(b.numel() * b.element_size() for b in model.buffers() if b.device.type != "meta")
        revision = "local"
        if self.folder is None:
            snap = cached_snapshot(self.source, self.spec.revision, kwargs["cache_dir"])
            revision = snap.name if snap is not None else (self.spec.revision or "main")
        return LoadedModel(model, tokenizer, device, dtype, nbytes, revision)

    def _load_adapter(self, base: HFBackend) -> LoadedModel:
        """The base model with this folder's LoRA adapter merged into its weights (so it decodes as fast
        as the base), and the folder's own tokenizer when it has one (it carries the chat template the
        adapter was trained with)."""
        assert self.folder is not None
        try:
            from peft import PeftModel
        except ImportError as exc:
            raise ModelNotAvailableError(
                f"{self.spec.to_string()} is a LoRA adapter; loading it needs peft "
                f"(pip install 'neatpipe[train]')"
            ) from exc
        loaded = base._load()
        try:
            model = PeftModel.from_pretrained(loaded.model, str(self.folder)).merge_and_unload()
            tokenizer = loaded.tokenizer
            if (self.folder / "tokenizer_config.json").is_file():
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelNotAvailableError(
                f"{self.spec.to_string()}: cannot apply the adapter in {self.folder} to its base "
                f"{base.spec.to_string()}: {bounded(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)}"
            ) from exc
        model.eval()
        return LoadedModel(model, tokenizer, loaded.device, loaded.dtype, loaded.nbytes, loaded.revision)

    def _placement(self) -> dict[str, Any]:
        """``from_pretrained`` arguments that let accelerate spread the model over GPUs, CPU memory and
        disk (``device_map``), for a model larger than one device; empty without ``device_map``."""
        spec = self.spec
        if spec.device_map is None:
            return {}
        placement: dict[str, Any] = {"device_map": spec.device_map}
        if spec.max_memory is not None:  # accelerate names GPUs by index
            placement["max_memory"] = {
                (int(name.removeprefix("cuda:")) if name.startswith("cuda:") else name): size
                for name, size in spec.max_memory
            }
        if spec.offload_folder is not None:
            placement["offload_folder"] = str(Path(spec.offload_folder).expanduser())
        return placement

    def _input_device(self, model: Any) -> str:
        """Where a placed model takes its inputs: the device of its first weights, as the decoder sees it.

        Accelerate moves activations between the devices of a placed model, but the token ids must start
        on a real device; weights offloaded to disk are on the meta device until their layer runs.
        """
        device = next(model.parameters()).device
        if device.type == "meta":
            raise SpecError(
                spec_to_mapping(self.spec),
                "max_memory",
                "the first layers of the model were offloaded to disk, so inputs have no device to start on; "
                "give the first device room for at least the input embeddings",
            )
        return str(device)

    def _loaded(self) -> LoadedModel:
        if self._preloaded is not None:
            return self._preloaded
        folder = self.folder if self.base is None else self.base.folder
        if folder is None:
            folder = cached_snapshot(
                self.source, self.spec.revision, hub_cache_dir(self.spec.cache_dir, self._environ)
            )
        return self.pool.acquire(self.pool_key, self._load, estimate_model_bytes(folder, self.dtype))

    def load_model(self) -> LoadedModel:
        """A fresh copy of the model and tokenizer, outside the pool: for training, which changes the
        weights (generation shares the pooled copy instead)."""
        return self._load()

    def _generator_of(self, loaded: LoadedModel) -> Any:
        from neatpipe.models.decoding import DEFAULT_BUCKETS, BatchedGenerator

        if self._generator is not None and self._generator_for == id(loaded.model):
            return self._generator
        buckets = self.batch_buckets
        if buckets == "auto":
            buckets = DEFAULT_BUCKETS if loaded.device.startswith("cuda") else None
        tok = loaded.tokenizer
        eos = end_token_ids(loaded.model, tok)
        decode = None if tok is None else (lambda ids: tok.decode(list(ids), skip_special_tokens=True))
        gen = BatchedGenerator(
            loaded.model,
            eos_ids=eos,
            pad_id=pad_token_id(loaded.model, tok, eos),
            decode=decode,
            batch_size=self.spec.batch_size,
            batch_buckets=buckets,  # type: ignore[arg-type]
            drop_finished=self.drop_finished,
            fail_hook=self.fail_hook,
        )
        if self._state is not None:
            gen.state = self._state
        self._state = gen.state
        self._generator, self._generator_for = gen, id(loaded.model)
        return gen

    @property
    def state(self) -> Any:
        """The generator's :class:`~neatpipe.models.decoding.GeneratorState` (None before the first batch)."""
        return self._state

    # -- generation -----------------------------------------------------------------------------------------

    def generate_tokens(self, requests: Sequence[Any]) -> list[Any]:
        """Token-level generation (:class:`~neatpipe.models.decoding.TokenRequest` in, results out).

        The batched path without chat formatting or the call log; benchmarks use it with prompts that are
        token ids already.
        """
        with self._run_lock:
            loaded = self._loaded()
            return self._generator_of(loaded).run(list(requests))

    def _generate(self, requests: list[ChatRequest]) -> list[Completion]:
        with self._run_lock:
            return self._generate_locked(requests)

    def _generate_locked(self, requests: list[ChatRequest]) -> list[Completion]:
        from neatpipe.models.decoding import TokenRequest

        loaded = self._loaded()
        if loaded.tokenizer is None:
            raise RequestError(f"{self.label}: chat requests need a tokenizer; this backend has none")
        gen = self._generator_of(loaded)
        defaults = generation_defaults(loaded.model)
        token_requests = []
        for r in requests:
            ids = encode_chat(loaded.tokenizer, r.messages_as_dicts())
            top_p = r.top_p if r.top_p < 1.0 else defaults.get("top_p", 1.0)
            token_requests.append(
                TokenRequest(
                    tuple(ids),
                    r.max_tokens,
                    r.temperature,
                    top_p,
                    r.seed,
                    r.stop,
                    top_k=defaults.get("top_k", 0),
                    repetition_penalty=defaults.get("repetition_penalty", 1.0),
                )
            )
        results = gen.run(token_requests)  # a prompt longer than the context ends with "length", alone
        return [
            Completion(res.text or "", len(tr.prompt_ids), len(res.token_ids), res.finish_reason, res.seconds)
            for tr, res in zip(token_requests, results, strict=True)
        ]

    def unload(self) -> None:
        """Free this backend's model (it is loaded again on the next call)."""
        if self._preloaded is None:
            self.pool.unload(self.pool_key)
        self._generator = self._generator_for = None

    def close(self) -> None:
        self.unload()


def load_hf(spec: HFSpec, *, pool: ModelPool | None = None, runner: object = None) -> HFBackend:
    """Registry entry for ``hf:`` (``runner`` is unused: a model runs no programs)."""
    return HFBackend(spec, pool=pool)
