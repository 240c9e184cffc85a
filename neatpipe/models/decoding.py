"""Batched token generation with a KV cache, per-request sampling and stopping (needs torch).

Why a loop of our own instead of ``model.generate``: every request in a batch has its own temperature,
top-p, seed, token budget and stop strings, and its output must not depend on which other requests share
the batch. ``generate`` applies one sampling configuration and one random stream to the whole batch.

How the independence is obtained:

* Prompts are left-padded and position ids count only real tokens, so a row sees the same positions
  whatever the padding (attention masks hide the pads).
* Sampling uses Gumbel-max with noise that is a hash of (request seed, step, token id): no random stream
  is shared between rows, and the noise is the same on every device. Temperature 0 is plain argmax.
* Finished rows either stay in the batch fed with a pad token (their outputs ignored) or are dropped
  from the batch and the KV cache (``drop_finished``); neither changes the other rows' tokens.

Batches: requests are sorted by prompt length (so each batch pads little) and cut into batches of at
most the batch limit. With ``batch_buckets`` a batch is padded with finished filler rows up to a fixed
bucket size, so a shrinking refine batch reuses shapes that are already warm. An out-of-memory error
halves the limit and retries the batch; the outputs are the same because they depend only on each
request.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from neatpipe.models.errors import OutOfMemoryError

DEFAULT_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256)
_MASK32 = 0xFFFFFFFF

FailHook = Callable[[int, int], None]
"""Called as ``hook(rows, kv_length)`` before every forward pass; may raise to simulate out-of-memory."""


@dataclass(frozen=True)
class TokenRequest:
    """A generation request at the token level (the chat layer builds these from chat requests)."""

    prompt_ids: tuple[int, ...]
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    top_k: int = 0  # 0: no top-k filter
    repetition_penalty: float = 1.0  # as transformers': seen tokens' logits divided (or, if < 0, multiplied)

    def __post_init__(self) -> None:
        if not self.prompt_ids:
            raise ValueError("prompt_ids is empty")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.top_k < 0 or not self.repetition_penalty > 0:
            raise ValueError(
                f"top_k must be >= 0 and repetition_penalty > 0, got {self.top_k}, {self.repetition_penalty}"
            )


@dataclass(frozen=True)
class TokenResult:
    """Generated token ids (an end-of-sequence token included when one ended the row) and the text."""

    token_ids: tuple[int, ...]
    text: str | None
    finish_reason: str
    seconds: float  # from the start of the run() call until the row finished


@dataclass(frozen=True)
class BatchRecord:
    """One batch as run: its shape, how long it took, and whether the shape was new to this generator."""

    rows: int  # real requests
    padded_rows: int  # rows including bucket fillers
    prompt_length: int  # padded prompt length
    steps: int  # decode steps (forward passes after the prefill)
    new_tokens: int  # tokens generated for real requests
    row_steps: int  # sum over steps of the rows in the batch (the work done, fillers included)
    compactions: int
    seconds: float
    cold: bool  # first batch of this (padded_rows, prompt_length) shape


@dataclass
class GeneratorState:
    """What a generator learned and did across calls (explicit, per generator)."""

    batch_limit: int
    oom_halvings: int = 0
    ceiling: int = 0  # the limit before any halving (0: not known yet)
    clean_batches: int = 0  # batches run without out-of-memory since the limit last changed
    regrowths: int = 0
    shapes_seen: set[tuple[int, int]] = field(default_factory=set)
    batches: list[BatchRecord] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------
# per-request noise: a counter-based hash, so no generator state is shared between rows


def _hash32_int32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 on int32 tensors read as unsigned: int32 products wrap modulo 2**32 as uint32 ones do,
    and each right shift is masked so that it is a logical one. Three times faster than the int64
    arithmetic it replaced (which emulated 32-bit products with 16-bit halves), and the same bits."""
    x = x ^ ((x >> 16) & 0xFFFF)
    x = x * 0x7FEB352D
    x = x ^ ((x >> 15) & 0x1FFFF)
    x = x * (0x846CA68B - 2**32)
    x = x ^ ((x >> 16) & 0xFFFF)
    return x


def _as_int32(x: torch.Tensor) -> torch.Tensor:
    """Values in [0, 2**32) as int32 with the same 32 bits (int32 tensors pass through)."""
    return x if x.dtype == torch.int32 else (x - ((x >> 31) & 1) * 2**32).to(torch.int32)


def hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mixer (lowbias32) over int64 tensors holding values in [0, 2**32)."""
    return _hash32_int32(_as_int32(x)).to(torch.int64) & _MASK32


def hash32_int(x: int) -> int:
    """:func:`hash32` of one Python int (same arithmetic), for the per-row keys."""
    x &= _MASK32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _MASK32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _MASK32
    x ^= x >> 16
    return x


def row_key(seed: int, step: int) -> int:
    """The 32-bit noise key of one row at one step, from its 64-bit seed."""
    k = hash32_int(seed & _MASK32)
    k = hash32_int(k ^ ((seed >> 32) & _MASK32))
    return hash32_int(k ^ (step & _MASK32) ^ 0x9E3779B9)


def gumbel_noise(keys: torch.Tensor, token_hash: torch.Tensor) -> torch.Tensor:
    """Gumbel(0, 1) noise: a function of (row key, token hash) only.

    ``keys`` has one entry per row; ``token_hash`` is the hashes of the vocabulary (shape ``(vocab,)``, noise
    of shape ``(rows, vocab)``) or of each row's candidate tokens (shape ``(rows, k)``, noise alike).
    """
    hashes = _as_int32(token_hash[None, :] if token_hash.dim() == 1 else token_hash)
    h = _hash32_int32(_as_int32(keys)[:, None] ^ hashes)
    u = (((h >> 8) & 0xFFFFFF).to(torch.float32) + 0.5) * (1.0 / 16777216.0)  # 24 bits inside (0, 1) ...
    u = u.clamp(max=_U_MAX)  # ... except the top value, which float32 rounds up to 1 (infinite noise)
    return -torch.log(-torch.log(u))


_U_MAX = 1.0 - 2.0**-24  # the largest float32 below 1
# Gumbel noise from gumbel_noise lies in [-log(-log(2**-25)), -log(-log(_U_MAX))] = [-2.85, 16.64]: a token
# whose score is more than the width of that range below the row's best score can never be sampled.
GUMBEL_SPAN = 16.64 - (-2.86)


def select_tokens(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_p: torch.Tensor,
    keys: torch.Tensor | None,
    token_hash: torch.Tensor | None,
    top_k: torch.Tensor | None = None,
    nucleus: bool | None = None,
) -> torch.Tensor:
    """The next token of each row: argmax where temperature is 0, else filtered Gumbel-max.

    Filters: ``top_k`` (per row, 0 = off) keeps a row's k best tokens; ``top_p`` then keeps the smallest
    set of most likely tokens whose mass (after top-k) reaches p. ``nucleus`` says whether any row has
    top-p below 1 (None: look, which costs a device sync).

    Why noise only for a few candidates per row: noise for every row and vocabulary entry (an integer
    hash and two logarithms, 25 million of each for 164 rows of Qwen's vocabulary) cost seconds per step
    on a CPU. Gumbel noise here is bounded (:data:`GUMBEL_SPAN`), so only tokens within that span of a
    row's best score can win; they are taken with ``topk`` (k = the most any row has) and get noise by
    the same hash as before, so the token chosen is the one the full computation would choose. When
    most of the vocabulary is within the span (a flat distribution), every token gets noise instead.
    """
    logits = logits.float()
    greedy = logits.argmax(dim=-1)
    if keys is None or token_hash is None:
        return greedy
    t = temperature.clamp(min=1e-6)[:, None]
    scores = logits / t
    best = scores.max(dim=-1, keepdim=True).values
    floor = best - (GUMBEL_SPAN + 1e-6 * best.abs())  # the relative term covers float32 rounding
    k = int((scores >= floor).sum(dim=-1).max())  # one device sync
    if k * 8 > scores.shape[-1] and top_k is None:  # most of the vocabulary: topk would cost more
        return _select_dense(scores, greedy, temperature, top_p, keys, token_hash, nucleus)
    if top_k is not None:  # top-k tokens may lie below the floor; they cannot win but weigh in top-p
        k = max(k, min(int(top_k.max()), scores.shape[-1]))
    values, index = scores.topk(k, dim=-1)  # sorted, best first
    keep = torch.ones_like(values, dtype=torch.bool)
    if top_k is not None:
        rank = torch.arange(k, device=scores.device)[None, :]
        keep &= (top_k[:, None] <= 0) | (rank < top_k[:, None])
    if nucleus is None:
        nucleus = bool((top_p < 1.0).any())
    if nucleus:
        probs = torch.softmax(scores, dim=-1).gather(1, index)
        if top_k is not None:  # top-p weighs the tokens top-k kept, renormalised
            probs = probs * keep
            probs = probs / probs.sum(dim=-1, keepdim=True)
        before = probs.cumsum(dim=-1) - probs  # mass of strictly more likely tokens
        # rows with top_p == 1 keep every token exactly (rounding in the cumulative sum must not drop any)
        keep &= ~((before >= top_p[:, None]) & (top_p[:, None] < 1.0))
    keep &= values >= floor
    noisy = (values + gumbel_noise(keys, token_hash[index])).masked_fill(~keep, float("-inf"))
    sampled = index.gather(1, noisy.argmax(dim=-1, keepdim=True))[:, 0]
    return torch.where(temperature > 0, sampled, greedy)


def _select_dense(
    scores: torch.Tensor,
    greedy: torch.Tensor,
    temperature: torch.Tensor,
    top_p: torch.Tensor,
    keys: torch.Tensor,
    token_hash: torch.Tensor,
    nucleus: bool | None,
) -> torch.Tensor:
    """Gumbel-max with noise for every token (flat distributions, where most tokens are candidates)."""
    if nucleus is None:
        nucleus = bool((top_p < 1.0).any())
    if nucleus:
        probs = torch.softmax(scores, dim=-1)
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of strictly more likely tokens
        drop_sorted = (before >= top_p[:, None]) & (top_p[:, None] < 1.0)
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    sampled = (scores + gumbel_noise(keys, token_hash[: scores.shape[-1]])).argmax(dim=-1)
    return torch.where(temperature > 0, sampled, greedy)


# ---------------------------------------------------------------------------------------------------------


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA/MPS/CPU allocation failures, whatever class this torch version raises them as."""
    types = tuple(
        t
        for t in (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None))
        if t
    )
    if types and isinstance(exc, types):
        return True
    return isinstance(exc, RuntimeError | MemoryError) and "out of memory" in str(exc).lower()


def _cache_kwarg(model: Any) -> str:
    """transformers 5.x names the KV cache argument ``cache``; 4.x named it ``past_key_values``."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


class BatchedGenerator:
    """Runs :class:`TokenRequest` batches on one causal LM.

    ``batch_size``: the most rows per batch (an int) or ``"auto"`` (estimated from free memory, at most
    ``max_auto_batch``). ``decode`` turns token ids into text (needed for stop strings). ``eos_ids`` end a
    row unless its request ignores them. ``fail_hook`` lets tests simulate out-of-memory.
    """

    def __init__(
        self,
        model: Any,
        *,
        eos_ids: Sequence[int],
        pad_id: int,
        decode: Callable[[Sequence[int]], str] | None = None,
        batch_size: int | str = "auto",
        batch_buckets: Sequence[int] | None = None,
        drop_finished: bool = True,
        compact_fraction: float = 0.25,
        pad_to_multiple: int = 8,
        max_auto_batch: int = 256,
        fail_hook: FailHook | None = None,
        regrow_after: int = 4,
    ) -> None:
        self.model = model
        self.eos_ids = frozenset(int(e) for e in eos_ids)
        self.pad_id = int(pad_id)
        self.decode = decode
        self.batch_buckets = tuple(sorted(set(batch_buckets))) if batch_buckets else None
        self.drop_finished = drop_finished
        self.compact_fraction = compact_fraction
        self.pad_to_multiple = max(1, pad_to_multiple)
        self.max_auto_batch = max_auto_batch
        self.fail_hook = fail_hook
        self.regrow_after = max(1, regrow_after)
        self.requested_batch_size = batch_size
        self.state = GeneratorState(batch_limit=batch_size if isinstance(batch_size, int) else 0)
        self._cache_kw = _cache_kwarg(model)
        self._token_hash: torch.Tensor | None = None
        config = model.config
        self.vocab_size = int(config.vocab_size)
        self.max_positions = getattr(config, "max_position_embeddings", None)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # -- batch sizing -------------------------------------------------------------------------------------

    def _kv_bytes_per_token(self) -> int:
        c = (
            self.model.config.get_text_config()
            if hasattr(self.model.config, "get_text_config")
            else self.model.config
        )
        heads = getattr(c, "num_attention_heads", 1)
        kv_heads = getattr(c, "num_key_value_heads", None) or heads
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // heads
        elem = next(self.model.parameters()).element_size()
        return 2 * c.num_hidden_layers * kv_heads * head_dim * elem

    def auto_batch_limit(self, tokens_per_row: int) -> int:
        """Rows that fit in free accelerator memory for KV cache and logits; a fixed cap on CPU."""
        device = self.device
        if device.type != "cuda":
            return min(self.max_auto_batch, 64)
        free, _total = torch.cuda.mem_get_info(device)
        per_row = tokens_per_row * self._kv_bytes_per_token() + self.vocab_size * 4 * 4
        rows = int(free * 0.7 // max(per_row, 1))
        return max(1, min(self.max_auto_batch, rows))

    def _bucket(self, n: int) -> int:
        if not self.batch_buckets:
            return n
        for b in self.batch_buckets:
            if b >= n:
                return b
        return n

    def _limit(self, requests: Sequence[TokenRequest]) -> int:
        if self.state.batch_limit <= 0:
            longest = max(len(r.prompt_ids) + r.max_new_tokens for r in requests)
            self.state.batch_limit = self.auto_batch_limit(longest)
        if self.state.ceiling <= 0:
            self.state.ceiling = self.state.batch_limit
        return max(1, self.state.batch_limit)

    def _after_clean_batch(self, rows: int) -> None:
        """Double a halved limit back (up to the first one) after ``regrow_after`` full batches ran.

        Why: an out-of-memory error can be passing (a long batch, another model loaded for a while);
        keeping the halved limit forever would cost throughput for the rest of the run.
        """
        state = self.state
        if state.batch_limit >= state.ceiling or rows < state.batch_limit:
            return
        state.clean_batches += 1
        if state.clean_batches >= self.regrow_after:
            state.batch_limit = min(state.ceiling, state.batch_limit * 2)
            state.clean_batches = 0
            state.regrowths += 1

    # -- the public entry -----------------------------------------------------------------------------------

    @torch.inference_mode()
    def run(self, requests: Sequence[TokenRequest]) -> list[TokenResult]:
        """Results in request order. Batches are formed from requests sorted by prompt length."""
        if not requests:
            return []
        for i, r in enumerate(requests):
            if any(s for s in r.stop) and self.decode is None:
                raise ValueError(f"request {i}: stop strings need a tokenizer to decode with")
        results: list[TokenResult | None] = [None] * len(requests)
        requests = list(requests)
        if self.max_positions is not None:  # a prompt that leaves no room ends at once, alone
            for i, r in enumerate(requests):
                room = int(self.max_positions) - len(r.prompt_ids)
                if room < 1:
                    results[i] = TokenResult((), "" if self.decode is not None else None, "length", 0.0)
                elif r.max_new_tokens > room:
                    requests[i] = replace(r, max_new_tokens=room)
        order = sorted(
            (i for i in range(len(requests)) if results[i] is None),
            key=lambda i: (len(requests[i].prompt_ids), i),
        )
        started = time.perf_counter()
        pos = 0
        while pos < len(order):
            limit = self._limit(requests)
            chunk = order[pos : pos + limit]
            try:
                out = self._run_batch([requests[i] for i in chunk], started, limit)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                self._free_memory()
                if len(chunk) == 1:
                    raise OutOfMemoryError(
                        f"out of memory generating one request ({len(requests[chunk[0]].prompt_ids)} prompt "
                        f"tokens + {requests[chunk[0]].max_new_tokens} new) on {self.device}: {exc}"
                    ) from exc
                self.state.batch_limit = max(1, len(chunk) // 2)
                self.state.oom_halvings += 1
                self.state.clean_batches = 0
                continue
            self._after_clean_batch(len(chunk))
            for i, res in zip(chunk, out, strict=True):
                results[i] = res
            pos += len(chunk)
        return [r for r in results if r is not None]

    def _free_memory(self) -> None:
        import gc

        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        elif self.device.type == "mps" and hasattr(torch, "mps"):
            torch.mps.empty_cache()

    def _hashes(self, device: torch.device) -> torch.Tensor:
        if self._token_hash is None or self._token_hash.device != device:
            ids = torch.arange(self.vocab_size, dtype=torch.int64, device=device)
            self._token_hash = hash32((ids * 2654435761 + 0x5BD1E995) & _MASK32)
        return self._token_hash

    def _forward(
        self,
        input_ids: torch.Tensor,
        attention: torch.Tensor,
        positions: torch.Tensor,
        cache: Any,
        last_only: bool,
    ) -> torch.Tensor:
        if self.fail_hook is not None:
            self.fail_hook(int(input_ids.shape[0]), int(attention.shape[1]))
        kwargs = {self._cache_kw: cache, "use_cache": True}
        if last_only:
            kwargs["logits_to_keep"] = 1
        out = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions, **kwargs)
        return out.logits[:, -1, :]

    def _new_cache(self) -> Any:
        from transformers import DynamicCache

        try:
            return DynamicCache(config=self.model.config)
        except TypeError:  # older transformers
            return DynamicCache()

    def _run_batch(self, batch: list[TokenRequest], started: float, limit: int) -> list[TokenResult]:
        t0 = time.perf_counter()
        device = self.device
        n = len(batch)
        rows = max(n, min(self._bucket(n), limit))  # filler rows up to a bucket, never past the limit
        fillers = rows - n
        prompts = [r.prompt_ids for r in batch] + [batch[0].prompt_ids] * fillers
        width = max(len(p) for p in prompts)
        width = int(math.ceil(width / self.pad_to_multiple) * self.pad_to_multiple)
        shape = (rows, width)
        cold = shape not in self.state.shapes_seen

        ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((rows, width), dtype=torch.long)
        for r, p in enumerate(prompts):
            ids[r, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            attention[r, width - len(p) :] = 1
        ids, attention = ids.to(device), attention.to(device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        last_pos = positions[:, -1].clone()

        temps = [r.temperature for r in batch] + [0.0] * fillers
        top_ps = [r.top_p for r in batch] + [1.0] * fillers
        seeds = [r.seed for r in batch] + [0] * fillers
        sampling = any(t > 0 for t in temps)
        nucleus = any(p < 1.0 for t, p in zip(temps, top_ps, strict=True) if t > 0)
        temp_t = torch.tensor(temps, dtype=torch.float32, device=device)
        top_p_t = torch.tensor(top_ps, dtype=torch.float32, device=device)
        token_hash = self._hashes(device) if sampling else None
        top_ks = [r.top_k for r in batch] + [0] * fillers
        top_k_t = torch.tensor(top_ks, device=device) if any(k > 0 for k in top_ks) else None
        penalties = [r.repetition_penalty for r in batch] + [1.0] * fillers
        penalty_t = seen = None
        if any(p != 1.0 for p in penalties):
            penalty_t = torch.tensor(penalties, dtype=torch.float32, device=device)[:, None]
            seen = torch.zeros((rows, self.vocab_size), dtype=torch.bool)
            for r, p in enumerate(prompts):
                seen[r, torch.tensor(sorted(set(p)), dtype=torch.long)] = True
            seen = seen.to(device)

        generated: list[list[int]] = [[] for _ in range(rows)]
        done = [False] * n + [True] * fillers
        finish: list[str] = ["length"] * rows
        seconds = [0.0] * rows
        active_rows = list(range(rows))  # batch row -> request row, after compactions
        stop_window = [max((len(s) for s in r.stop), default=0) + 4 for r in batch]

        cache = self._new_cache()
        logits = self._prefill(prompts, ids, attention, positions, cache)
        steps = row_steps = compactions = 0
        while True:
            keys = None
            if sampling:
                step_keys = [row_key(seeds[r], len(generated[r])) for r in active_rows]
                keys = torch.tensor(step_keys, dtype=torch.int64, device=device)
            if seen is not None and penalty_t is not None:  # as transformers' repetition penalty
                logits = logits.float()
                penalized = torch.where(logits < 0, logits * penalty_t, logits / penalty_t)
                logits = torch.where(seen, penalized, logits)
            nxt = select_tokens(logits, temp_t, top_p_t, keys, token_hash, top_k_t, nucleus)
            if seen is not None:
                seen.scatter_(1, nxt[:, None], True)
            chosen = nxt.tolist()  # the one host sync of a greedy step
            now = time.perf_counter() - started
            for j, r in enumerate(active_rows):
                if done[r]:
                    continue
                tok = chosen[j]
                req = batch[r]
                generated[r].append(tok)
                if tok in self.eos_ids and not req.ignore_eos:
                    done[r], finish[r] = True, "stop"
                elif req.stop and self._hits_stop(generated[r], req.stop, stop_window[r]):
                    done[r], finish[r] = True, "stop"
                elif len(generated[r]) >= req.max_new_tokens:
                    done[r], finish[r] = True, "length"
                if done[r]:
                    seconds[r] = now
            if all(done[r] for r in range(n)):
                break

            keep = self._compaction(active_rows, done)
            if keep is not None:
                index = torch.tensor(keep, dtype=torch.long, device=device)
                cache.batch_select_indices(index)
                attention, last_pos, nxt = attention[index], last_pos[index], nxt[index]
                temp_t, top_p_t = temp_t[index], top_p_t[index]
                if top_k_t is not None:
                    top_k_t = top_k_t[index]
                if seen is not None and penalty_t is not None:
                    seen, penalty_t = seen[index], penalty_t[index]
                active_rows = [active_rows[k] for k in keep]
                compactions += 1
            finished_mask = torch.tensor([done[r] for r in active_rows], device=device)
            nxt = nxt.masked_fill(finished_mask, self.pad_id)
            attention = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=1)
            last_pos = last_pos + 1
            logits = self._forward(nxt[:, None], attention, last_pos[:, None], cache, last_only=False)
            steps += 1
            row_steps += len(active_rows)

        elapsed = time.perf_counter() - t0
        self.state.shapes_seen.add(shape)
        self.state.batches.append(
            BatchRecord(
                n,
                rows,
                width,
                steps,
                sum(len(generated[r]) for r in range(n)),
                row_steps,
                compactions,
                elapsed,
                cold,
            )
        )
        return [self._result(batch[r], generated[r], finish[r], seconds[r]) for r in range(n)]

    def _prefill(
        self,
        prompts: Sequence[tuple[int, ...]],
        ids: torch.Tensor,
        attention: torch.Tensor,
        positions: torch.Tensor,
        cache: Any,
    ) -> torch.Tensor:
        """The prefill's last-position logits for every row. A prompt that several rows share (the same
        prompt sampled with other seeds or temperatures) is run once and its KV cache copied to those
        rows: a row's values are computed exactly as they would be alone, so nothing else changes."""
        first: dict[tuple[int, ...], int] = {}
        rows = [first.setdefault(p, r) for r, p in enumerate(prompts)]
        if len(first) == len(prompts):
            return self._forward(ids, attention, positions, cache, last_only=True)
        unique = torch.tensor(sorted(first.values()), dtype=torch.long, device=ids.device)
        logits = self._forward(ids[unique], attention[unique], positions[unique], cache, last_only=True)
        slot = {r: k for k, r in enumerate(unique.tolist())}
        expand = torch.tensor([slot[r] for r in rows], dtype=torch.long, device=ids.device)
        cache.batch_select_indices(expand)
        return logits[expand]

    def _compaction(self, active_rows: list[int], done: list[bool]) -> list[int] | None:
        """Batch positions to keep when enough rows finished to be worth dropping, else None."""
        if not self.drop_finished:
            return None
        alive = [k for k, r in enumerate(active_rows) if not done[r]]
        target = self._bucket(len(alive))
        if target >= len(active_rows):
            return None
        finished = len(active_rows) - len(alive)
        if finished < max(1, self.compact_fraction * len(active_rows)):
            return None
        fill = [k for k, r in enumerate(active_rows) if done[r]][: target - len(alive)]
        return sorted(alive + fill)

    def _hits_stop(self, tokens: list[int], stops: tuple[str, ...], window: int) -> bool:
        assert self.decode is not None
        tail = self.decode(tokens[-window:])
        return any(s in tail for s in stops)

    def _result(self, req: TokenRequest, tokens: list[int], finish: str, seconds: float) -> TokenResult:
        text = None
        if self.decode is not None:
            text = self.decode(tokens)
            if req.stop:
                cut = min((i for i in (text.find(s) for s in req.stop) if i >= 0), default=-1)
                if cut >= 0:
                    text = text[:cut]
                    finish = "stop"
        return TokenResult(tuple(tokens), text, finish, seconds)
