"""Model specs: which backend serves a model, from a short string or a YAML mapping.

Grammar (the text before the first ``:`` is the backend kind)::

    hf:<hub id or local path>        Qwen/Qwen2.5-Coder-1.5B-Instruct, ./models/tiny, /abs/path
    ollama:<tag>                     qwen2.5-coder:1.5b
    openai:<base url>#<model>        http://127.0.0.1:8000/v1#Qwen/Qwen2.5-Coder-1.5B-Instruct
    synthetic:<preset>               reserved for the synthetic coder backend

A mapping has the string under ``spec`` and options beside it::

    {spec: "hf:Qwen/Qwen2.5-Coder-1.5B-Instruct", dtype: bfloat16, revision: main}

Each kind's options are the fields of its spec class below. Parsing never touches the network or the
disk; every error names the spec and the offending field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from types import MappingProxyType
from typing import Any, ClassVar
from urllib.parse import urlsplit

from neatpipe.errors import shown
from neatpipe.models.errors import SpecError

DTYPES = ("auto", "bfloat16", "float16", "float32")
_DTYPE_ALIASES = {
    "bf16": "bfloat16",
    "fp16": "float16",
    "half": "float16",
    "fp32": "float32",
    "float": "float32",
}
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
_MEMORY_DEVICE_RE = re.compile(r"^(cpu|mps|cuda:\d+|\d+)$")
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KkMmGgTt]i?B|B)$")  # a capital B: bytes, never bits
_SIZE_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
_PRESET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"


# ---------------------------------------------------------------------------------------------------------
# option validators: (spec, field name, raw value) -> normalised value, raising SpecError


def _str(spec: object, name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(spec, name, f"expected a non-empty string, got {shown(value)}")
    return value


def _opt_str(spec: object, name: str, value: Any) -> str | None:
    return None if value is None else _str(spec, name, value)


def _pos_int(spec: object, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(spec, name, f"expected an integer >= 1, got {shown(value)}")
    return value


def _opt_pos_int(spec: object, name: str, value: Any) -> int | None:
    return None if value is None else _pos_int(spec, name, value)


def _nonneg_int(spec: object, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpecError(spec, name, f"expected an integer >= 0, got {shown(value)}")
    return value


def _pos_float(spec: object, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise SpecError(spec, name, f"expected a number > 0, got {shown(value)}")
    return float(value)


def _nonneg_float(spec: object, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise SpecError(spec, name, f"expected a number >= 0, got {shown(value)}")
    return float(value)


def _opt_bool(spec: object, name: str, value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise SpecError(spec, name, f"expected true or false, got {shown(value)}")
    return value


def _opt_nonneg_int(spec: object, name: str, value: Any) -> int | None:
    return None if value is None else _nonneg_int(spec, name, value)


def _opt_pos_float(spec: object, name: str, value: Any) -> float | None:
    return None if value is None else _pos_float(spec, name, value)


def _dtype(spec: object, name: str, value: Any) -> str:
    v = _DTYPE_ALIASES.get(value, value) if isinstance(value, str) else value
    if v not in DTYPES:
        raise SpecError(
            spec, name, f"expected one of {', '.join(DTYPES)} (or bf16, fp16, fp32), got {shown(value)}"
        )
    return v


def _device(spec: object, name: str, value: Any) -> str:
    if not isinstance(value, str) or not _DEVICE_RE.match(value):
        raise SpecError(spec, name, f"expected auto, cpu, mps, cuda or cuda:N, got {shown(value)}")
    return value


def _batch_size(spec: object, name: str, value: Any) -> int | str:
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(spec, name, f"expected 'auto' or an integer >= 1, got {shown(value)}")
    return value


def _device_map(spec: object, name: str, value: Any) -> str | None:
    if value is None:
        return None
    if value not in DEVICE_MAPS:
        raise SpecError(spec, name, f"expected one of {', '.join(DEVICE_MAPS)}, got {shown(value)}")
    return value


def _memory_size(spec: object, name: str, value: Any) -> int:
    """Bytes from an integer or a size such as ``6GiB``, ``500MB`` (our parse: no bit units, no guessing)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    match = _SIZE_RE.match(value.strip()) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise SpecError(
            spec, name, f"expected a size such as 6GiB, 500MB or a number of bytes, got {shown(value)}"
        )
    return max(1, int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]))


def _max_memory(spec: object, name: str, value: Any) -> tuple[tuple[str, int], ...] | None:
    """``{cuda:0: 6GiB, cpu: 24GiB}`` as sorted (device, bytes) pairs; a bare GPU index N means cuda:N."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not value:
        raise SpecError(
            spec,
            name,
            f"expected a mapping of device to size, e.g. {{cuda:0: 6GiB, cpu: 24GiB}}, got {shown(value)}",
        )
    out: dict[str, int] = {}
    for device, size in value.items():
        key = str(device) if isinstance(device, int | str) and not isinstance(device, bool) else ""
        if not _MEMORY_DEVICE_RE.match(key):
            raise SpecError(spec, name, f"devices are cpu, mps, cuda:N or a GPU index N, got {shown(device)}")
        out["cuda:" + key if key.isdigit() else key] = _memory_size(spec, f"{name}.{key}", size)
    return tuple(sorted(out.items()))


def _url(spec: object, name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SpecError(spec, name, f"expected an http(s) URL, got {shown(value)}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SpecError(spec, name, f"expected an http:// or https:// URL with a host, got {shown(value)}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise SpecError(spec, name, f"bad port in {shown(value)}: {exc}") from None
    if parts.query or parts.fragment:
        raise SpecError(spec, name, f"the URL must not have a query or fragment, got {shown(value)}")
    return value.rstrip("/")


def _opt(
    validator: Callable[[object, str, Any], Any],
    default: Any = MISSING,
    doc: str = "",
    render: Callable[[Any], Any] | None = None,
) -> Any:
    """A spec option: a dataclass field that records how to validate a value from a mapping (and, when
    the stored form is not what a YAML file should hold, how to render it back)."""
    metadata = {"validate": validator, "doc": doc, "render": render}
    if default is MISSING:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


# ---------------------------------------------------------------------------------------------------------
# the spec classes, one per backend kind


@dataclass(frozen=True)
class HFSpec:
    """``hf:<hub id or local path>``: a Hugging Face transformers causal LM run in this process."""

    kind: ClassVar[str] = "hf"
    target_field: ClassVar[str] = "model"

    model: str = _opt(_str, doc="hub id (org/name) or a local folder in the Hugging Face layout")
    revision: str | None = _opt(_opt_str, None, "hub branch, tag or commit (ignored for a local folder)")
    dtype: str = _opt(_dtype, "auto", "auto (bfloat16 on CUDA, float16 on MPS, float32 on CPU), or a dtype")
    device: str = _opt(_device, "auto", "auto (CUDA, then MPS, then CPU), cpu, mps, cuda, cuda:N")
    batch_size: int | str = _opt(_batch_size, "auto", "largest batch; 'auto' sizes it from free memory")
    cache_dir: str | None = _opt(_opt_str, None, "Hugging Face hub cache folder (default: HF_HUB_CACHE)")
    device_map: str | None = _opt(
        _device_map, None, "spread the model over GPUs, CPU and disk with accelerate (auto, balanced, ...)"
    )
    max_memory: tuple[tuple[str, int], ...] | None = _opt(
        _max_memory, None, "with device_map: most bytes per device, {cuda:0: 6GiB, cpu: 24GiB}", render=dict
    )
    offload_folder: str | None = _opt(_opt_str, None, "with device_map: where weights offloaded to disk go")

    def check_options(self, original: object) -> None:
        """Options that only make sense together: the placement options need ``device_map``, which
        replaces ``device``."""
        if self.device_map is None:
            for name in ("max_memory", "offload_folder"):
                if getattr(self, name) is not None:
                    raise SpecError(original, name, "only used with device_map (e.g. device_map: auto)")
        elif self.device != "auto":
            raise SpecError(
                original,
                "device",
                f"give device or device_map, not both (device_map {self.device_map!r} places the model)",
            )

    @property
    def is_local(self) -> bool:
        """Spelled as a path (``./x``, ``/x``, ``~/x``). The backend also treats any existing folder as local,
        as transformers does, so ``hf:models/tiny`` is the folder when it exists and a hub id otherwise."""
        return looks_like_path(self.model)

    def to_string(self) -> str:
        return f"hf:{self.model}"


_TOP_K, _PENALTY = _opt_nonneg_int, _opt_pos_float
_TOP_K_DOC = "sent to the server: 0 turns top-k off; set what the model's generation_config has, as hf: uses"
_PENALTY_DOC = "sent to the server: 1 is none; set what the model's generation_config has, as hf: uses"
_TIMEOUT_DOC = "deadline in seconds for one whole answer; a request past it is not sent again"
_RETRIES_DOC = "retries on connection errors, dropped connections, 429 and 5xx"
_BACKOFF_DOC = "retry delay: drawn up to this, doubling each retry, or the server's Retry-After"


@dataclass(frozen=True)
class OllamaSpec:
    """``ollama:<tag>``: a model served by Ollama's ``/api/chat``."""

    kind: ClassVar[str] = "ollama"
    target_field: ClassVar[str] = "tag"

    tag: str = _opt(_str, doc="the model tag as in `ollama list`, e.g. qwen2.5-coder:1.5b")
    base_url: str = _opt(_url, DEFAULT_OLLAMA_URL, "where Ollama listens")
    num_ctx: int | None = _opt(_opt_pos_int, None, "context window passed as options.num_ctx")
    digest: str | None = _opt(_opt_str, None, "pin the model digest (skips asking the server for it)")
    keep_alive: str | None = _opt(_opt_str, None, "how long Ollama keeps the model loaded, e.g. 30m")
    think: bool | None = _opt(
        _opt_bool,
        None,
        "false: a thinking model (qwen3, ...) answers without reasoning first; true: it thinks",
    )
    top_k: int | None = _opt(_TOP_K, None, _TOP_K_DOC)
    repetition_penalty: float | None = _opt(_PENALTY, None, _PENALTY_DOC)
    concurrency: int = _opt(_pos_int, 4, "requests in flight at once (match OLLAMA_NUM_PARALLEL)")
    timeout_s: float = _opt(_pos_float, 600.0, _TIMEOUT_DOC)
    retries: int = _opt(_nonneg_int, 3, _RETRIES_DOC)
    backoff_s: float = _opt(_nonneg_float, 0.5, _BACKOFF_DOC)

    def to_string(self) -> str:
        return f"ollama:{self.tag}"


@dataclass(frozen=True)
class OpenAISpec:
    """``openai:<base url>#<model>``: any server with OpenAI's ``/v1/chat/completions``.

    vLLM, SGLang, llama.cpp's ``llama-server``, LM Studio and others. The base URL may end in ``/v1``
    or not; ``/v1/chat/completions`` is appended either way.
    """

    kind: ClassVar[str] = "openai"
    target_field: ClassVar[str] = "model"

    base_url: str = _opt(_url, doc="the server's base URL, e.g. http://127.0.0.1:8000/v1")
    model: str = _opt(_str, doc="the model name the server expects in requests")
    revision: str | None = _opt(_opt_str, None, "your label for the weights behind the name (cache key)")
    api_key_env: str | None = _opt(_opt_str, None, "environment variable holding the API key, if any")
    top_k: int | None = _opt(_TOP_K, None, _TOP_K_DOC)
    repetition_penalty: float | None = _opt(_PENALTY, None, _PENALTY_DOC)
    concurrency: int = _opt(_pos_int, 256, "requests in flight at once (what the server batches)")
    timeout_s: float = _opt(_pos_float, 600.0, _TIMEOUT_DOC)
    retries: int = _opt(_nonneg_int, 3, _RETRIES_DOC)
    backoff_s: float = _opt(_nonneg_float, 0.5, _BACKOFF_DOC)

    @property
    def chat_url(self) -> str:
        base = self.base_url.rstrip("/")
        if not base.endswith("/v1"):
            base += "/v1"
        return base + "/chat/completions"

    def to_string(self) -> str:
        return f"openai:{self.base_url}#{self.model}"


@dataclass(frozen=True)
class SyntheticSpec:
    """``synthetic:<preset>``: reserved for the synthetic coder backend (options are kept as given)."""

    kind: ClassVar[str] = "synthetic"
    target_field: ClassVar[str] = "preset"

    preset: str = _opt(_str, doc="preset name")
    options: tuple[tuple[str, Any], ...] = field(default=(), metadata={"doc": "preset options, as given"})

    def to_string(self) -> str:
        return f"synthetic:{self.preset}"


ModelSpec = HFSpec | OllamaSpec | OpenAISpec | SyntheticSpec
SPEC_TYPES: Mapping[str, type] = MappingProxyType(
    {"hf": HFSpec, "ollama": OllamaSpec, "openai": OpenAISpec, "synthetic": SyntheticSpec}
)
KINDS: tuple[str, ...] = tuple(SPEC_TYPES)
_EXAMPLES = {
    "hf": "hf:Qwen/Qwen2.5-Coder-1.5B-Instruct or hf:./models/tiny",
    "ollama": "ollama:qwen2.5-coder:1.5b",
    "openai": "openai:http://127.0.0.1:8000/v1#Qwen/Qwen2.5-Coder-1.5B-Instruct",
    "synthetic": "synthetic:<preset>",
}


def looks_like_path(target: str) -> bool:
    """True for a local folder spelling (``/x``, ``./x``, ``../x``, ``~/x``, ``C:\\x``), not a hub id."""
    return (
        target.startswith(("/", "./", "../", "~", "\\"))
        or target in (".", "..")
        or bool(re.match(r"^[A-Za-z]:[\\/]", target))
    )


def option_names(kind: str) -> tuple[str, ...]:
    """The options a mapping may give for ``kind`` (everything but the target in the string)."""
    cls = SPEC_TYPES[kind]
    return tuple(f.name for f in fields(cls) if f.name not in _string_fields(cls))


def _string_fields(cls: type) -> tuple[str, ...]:
    return ("base_url", "model") if cls is OpenAISpec else (cls.target_field,)


def _split_string(spec_text: str, original: object) -> tuple[str, dict[str, str]]:
    if ":" not in spec_text:
        raise SpecError(original, "kind", f"expected KIND:TARGET with KIND one of {', '.join(KINDS)}")
    kind, rest = spec_text.split(":", 1)
    kind = kind.strip().lower()
    if kind not in SPEC_TYPES:
        raise SpecError(original, "kind", f"unknown backend kind {kind!r}; choose one of {', '.join(KINDS)}")
    rest = rest.strip()
    example = _EXAMPLES[kind]
    if kind == "openai":
        if "#" not in rest:
            raise SpecError(original, "model", f"expected openai:<base url>#<model>, e.g. {example}")
        url, model = rest.split("#", 1)
        if not model.strip():
            raise SpecError(original, "model", f"the model name after '#' is empty, e.g. {example}")
        return kind, {"base_url": url.strip(), "model": model.strip()}
    if not rest:
        target = SPEC_TYPES[kind].target_field
        raise SpecError(original, target, f"nothing after '{kind}:', e.g. {example}")
    if kind == "ollama" and re.search(r"\s", rest):
        raise SpecError(original, "tag", f"an Ollama tag has no spaces, got {shown(rest)}")
    if kind == "synthetic" and not _PRESET_RE.match(rest):
        raise SpecError(
            original, "preset", f"preset names use letters, digits, '_', '.', '-', got {shown(rest)}"
        )
    return kind, {SPEC_TYPES[kind].target_field: rest}


def parse_spec(value: str | Mapping[str, Any] | ModelSpec) -> ModelSpec:
    """A spec object from a string, a mapping (``spec`` plus options) or a spec object (returned as is)."""
    if isinstance(value, HFSpec | OllamaSpec | OpenAISpec | SyntheticSpec):
        return value
    if isinstance(value, str):
        kind, given = _split_string(value, value)
        options: dict[str, Any] = {}
    elif isinstance(value, Mapping):
        if "spec" not in value:
            raise SpecError(dict(value), "spec", "a mapping needs a 'spec' key holding e.g. 'hf:org/name'")
        text = value["spec"]
        if not isinstance(text, str):
            raise SpecError(dict(value), "spec", f"expected a string, got {shown(text)}")
        kind, given = _split_string(text, text)
        options = {k: v for k, v in value.items() if k != "spec"}
    else:
        raise SpecError(value, "spec", f"expected a string or a mapping, got {type(value).__name__}")

    cls = SPEC_TYPES[kind]
    original_spec = value if isinstance(value, str) else dict(value)
    if cls is SyntheticSpec:
        bad = [k for k in options if not isinstance(k, str)]
        if bad:
            raise SpecError(original_spec, str(bad[0]), "option names must be strings")
        return SyntheticSpec(preset=given["preset"], options=tuple(sorted(options.items())))

    allowed = option_names(kind)
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        validate = f.metadata["validate"]
        if f.name in given:
            kwargs[f.name] = validate(original_spec, f.name, given[f.name])
        elif f.name in options:
            kwargs[f.name] = validate(original_spec, f.name, options[f.name])
    for name in options:
        if name not in allowed:
            hint = f"; it is part of the spec string for {kind}" if name in _string_fields(cls) else ""
            raise SpecError(
                original_spec, str(name), f"unknown option for {kind}{hint}; options are {', '.join(allowed)}"
            )
    parsed = cls(**kwargs)
    check = getattr(parsed, "check_options", None)
    if check is not None:
        check(original_spec)
    return parsed


def spec_to_mapping(spec: ModelSpec) -> dict[str, Any]:
    """The mapping form (``spec`` plus the options that differ from their defaults), for YAML files."""
    out: dict[str, Any] = {"spec": spec.to_string()}
    if isinstance(spec, SyntheticSpec):
        out.update(dict(spec.options))
        return out
    for f in fields(spec):
        if f.name in _string_fields(type(spec)):
            continue
        v = getattr(spec, f.name)
        if v != f.default:
            render = f.metadata.get("render")
            out[f.name] = render(v) if render is not None and v is not None else v
    return out
