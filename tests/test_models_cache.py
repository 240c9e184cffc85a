"""The completion cache: keys, hit/miss splitting, modes, stats, prune, several processes at once."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from neatpipe.cli import main as cli_main
from neatpipe.models import (
    Backend,
    CachedBackend,
    CacheError,
    ChatRequest,
    Completion,
    CompletionCache,
    default_cache_path,
    load_backend,
    request_key,
)
from neatpipe.models.cache import cache_choice, canonical_request

REPO = Path(__file__).resolve().parents[1]


class EchoBackend(Backend):
    """Answers with the last message reversed; remembers every batch it was asked."""

    kind = "echo"

    def __init__(self, name: str = "echo-1") -> None:
        super().__init__(f"echo:{name}")
        self.name = name
        self.batches: list[list[ChatRequest]] = []

    def identity(self) -> str:
        return f"echo:{self.name}@v1"

    def _generate(self, requests):
        self.batches.append(list(requests))
        return [
            Completion(
                r.messages[-1].content[::-1], len(r.messages[-1].content), r.max_tokens, "length", 0.25
            )
            for r in requests
        ]


def req(text: str, **kw) -> ChatRequest:
    return ChatRequest.user(text, **kw)


@pytest.fixture
def cache(tmp_path) -> CompletionCache:
    with CompletionCache(tmp_path / "c.sqlite") as c:
        yield c


def test_key_depends_on_what_the_output_depends_on():
    base = req("hi", temperature=0.7, seed=1, max_tokens=10, stop=("a", "b"))
    key = request_key("echo", "m@1", base)
    assert (
        request_key("echo", "m@1", req("hi", temperature=0.7, seed=1, max_tokens=10, stop=("b", "a", "a")))
        == key
    )
    for other in (
        req("hi!", temperature=0.7, seed=1, max_tokens=10, stop=("a", "b")),
        req("hi", temperature=0.8, seed=1, max_tokens=10, stop=("a", "b")),
        req("hi", temperature=0.7, seed=2, max_tokens=10, stop=("a", "b")),
        req("hi", temperature=0.7, seed=1, max_tokens=11, stop=("a", "b")),
        req("hi", temperature=0.7, seed=1, max_tokens=10, stop=("a",)),
        req("hi", temperature=0.7, seed=1, max_tokens=10, stop=("a", "b"), top_p=0.9),
        req("hi", temperature=0.7, seed=1, max_tokens=10, stop=("a", "b"), system="be brief"),
    ):
        assert request_key("echo", "m@1", other) != key
    assert request_key("echo", "m@2", base) != key
    assert request_key("ollama", "m@1", base) != key
    # greedy ignores seed and top-p, so they do not split the cache
    assert request_key("e", "m", req("x", seed=1)) == request_key("e", "m", req("x", seed=2, top_p=0.5))
    assert canonical_request("e", "m", req("x", seed=9))["seed"] == 0


def test_default_location(monkeypatch, tmp_path):
    monkeypatch.setenv("NEATPIPE_CACHE_DIR", str(tmp_path / "d"))
    assert default_cache_path() == tmp_path / "d" / "completions.sqlite"
    monkeypatch.delenv("NEATPIPE_CACHE_DIR")
    assert default_cache_path() == Path.home() / ".cache" / "neatpipe" / "completions.sqlite"


def test_hits_skip_the_backend_and_misses_go_in_one_call(cache):
    inner = EchoBackend()
    backend = CachedBackend(inner, cache)
    first = backend.generate([req("abc"), req("de")])
    assert [c.text for c in first] == ["cba", "ed"] and not any(c.cached for c in first)
    again = backend.generate([req("xyz"), req("abc"), req("de"), req("uv")])
    assert [c.text for c in again] == ["zyx", "cba", "ed", "vu"]
    assert [c.cached for c in again] == [False, True, True, False]
    assert again[1].latency_s == 0.0 and again[1].prompt_tokens == 3
    assert [[r.messages[-1].content for r in b] for b in inner.batches] == [["abc", "de"], ["xyz", "uv"]]
    assert [(r.requests, r.cache_hits) for r in backend.usage.records] == [(2, 0), (4, 2)]
    assert len(inner.usage) == 2
    backend.generate([req("abc")])
    assert len(inner.usage) == 2  # all hits: no model call at all
    usage = backend.usage.total()
    assert (usage.cache_hits, usage.cached_prompt_tokens, usage.cached_completion_tokens) == (3, 8, 3 * 512)


def test_identical_requests_in_one_batch_are_paid_once(cache):
    inner = EchoBackend()
    out = CachedBackend(inner, cache).generate([req("same"), req("other"), req("same")])
    assert [c.text for c in out] == ["emas", "rehto", "emas"]
    assert [c.cached for c in out] == [False, False, True]
    assert len(inner.batches[0]) == 2


def test_other_model_identity_does_not_share_entries(cache):
    CachedBackend(EchoBackend("a"), cache).generate([req("q")])
    other = EchoBackend("b")
    assert not CachedBackend(other, cache).generate([req("q")])[0].cached
    assert len(other.batches) == 1


def test_modes(tmp_path):
    path = tmp_path / "m.sqlite"
    with CompletionCache(path, mode="off") as off:
        inner = EchoBackend()
        CachedBackend(inner, off).generate([req("a")])
        CachedBackend(inner, off).generate([req("a")])
        assert len(inner.batches) == 2 and not path.exists()
    with CompletionCache(path, mode="readonly") as ro:
        assert not CachedBackend(EchoBackend(), ro).generate([req("a")])[0].cached
        assert not path.exists()  # read-only never creates or writes the file
    with CompletionCache(path) as rw:
        CachedBackend(EchoBackend(), rw).generate([req("a")])
    with CompletionCache(path, mode="readonly") as ro:
        inner = EchoBackend()
        assert CachedBackend(inner, ro).generate([req("a")])[0].cached
        assert not inner.batches
        assert ro.stats().hits == 0  # read-only does not persist its counters
    with CompletionCache(path, mode="refresh") as refresh:
        inner = EchoBackend()
        assert not CachedBackend(inner, refresh).generate([req("a")])[0].cached
        assert len(inner.batches) == 1
    with pytest.raises(CacheError, match="mode 'sometimes'"):
        CompletionCache(path, mode="sometimes")  # type: ignore[arg-type]


def test_stats_are_persisted_per_model(cache, tmp_path):
    backend = CachedBackend(EchoBackend(), cache)
    backend.generate([req("aa"), req("bbb")])
    backend.generate([req("aa"), req("c")])
    with CompletionCache(cache.path) as reopened:
        stats = reopened.stats()
    assert (stats.entries, stats.hits, stats.misses) == (3, 1, 3)
    assert stats.prompt_tokens_saved == 2 and stats.completion_tokens_saved == 512
    assert stats.seconds_saved == pytest.approx(0.25)
    assert [m.model for m in stats.models] == ["echo:echo-1"]
    assert stats.hit_rate == pytest.approx(0.25)
    assert CompletionCache(tmp_path / "none.sqlite", mode="readonly").stats().entries == 0


def test_prune_by_age_model_and_all(cache):
    CachedBackend(EchoBackend("a"), cache).generate([req("1"), req("2")])
    CachedBackend(EchoBackend("b"), cache).generate([req("1")])
    conn = sqlite3.connect(cache.path)
    with conn:
        conn.execute("UPDATE completions SET last_used = ? WHERE text = '2'", (time.time() - 10 * 86400,))
    conn.close()
    assert cache.prune(older_than_days=5) == 1
    assert cache.prune(model="echo:b") == 1
    assert [(m.model, m.entries) for m in cache.stats().models] == [("echo:a", 1)]
    assert cache.prune(model="echo:*") == 1
    CachedBackend(EchoBackend("a"), cache).generate([req("3")])
    assert cache.prune(everything=True) == 1
    stats = cache.stats()
    assert (stats.entries, stats.hits, stats.misses) == (0, 0, 0)
    with pytest.raises(CacheError, match="needs"):
        cache.prune()


def test_cli_stats_and_prune(tmp_path, capsys):
    path = tmp_path / "cli.sqlite"
    with CompletionCache(path) as c:
        CachedBackend(EchoBackend(), c).generate([req("a"), req("b")])
        CachedBackend(EchoBackend(), c).generate([req("a")])
    assert cli_main(["cache", "stats", "--path", str(path)]) == 0
    out = capsys.readouterr().out
    assert "entries: 2" in out and "hits: 1" in out and "echo:echo-1" in out
    assert cli_main(["cache", "stats", "--path", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["entries"] == 2 and data["models"][0]["hits"] == 1
    assert cli_main(["cache", "prune", "--path", str(path)]) == 2
    assert "say what to prune" in capsys.readouterr().err
    assert cli_main(["cache", "prune", "--path", str(path), "--all", "--model", "x"]) == 2
    assert cli_main(["cache", "prune", "--path", str(path), "--older-than", "1"]) == 0
    assert "removed 0 entries" in capsys.readouterr().out
    assert cli_main(["cache", "prune", "--path", str(path), "--model", "echo:*"]) == 0
    assert "removed 2 entries" in capsys.readouterr().out


def test_load_backend_wraps_with_a_cache_path(tmp_path):
    backend = load_backend("openai:http://127.0.0.1:9#m", cache=tmp_path / "x.sqlite")
    assert isinstance(backend, CachedBackend) and backend.cache.path == tmp_path / "x.sqlite"
    assert not isinstance(load_backend("openai:http://127.0.0.1:9#m"), CachedBackend)


@pytest.mark.parametrize("word", ["off", "none", "NONE", "false", "no", False, None])
def test_a_no_cache_setting_builds_no_cache_and_no_file(word, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cache_choice(word) is None
    assert not isinstance(load_backend("synthetic:coder-1.5b", cache=word), CachedBackend)
    assert os.listdir(tmp_path) == []
    assert cache_choice("./none") == "./none" and cache_choice("default") == "default"


def test_a_garbage_cache_file_fails_when_the_backend_is_built_and_is_left_alone(tmp_path):
    path = tmp_path / "x.sqlite"
    path.write_bytes(b"\x00garbage" * 50)
    before = path.read_bytes()
    for mode in ("readwrite", "readonly", "refresh"):
        with pytest.raises(CacheError, match="move it aside"):
            load_backend("synthetic:coder-1.5b", cache=CompletionCache(path, mode=mode))
    assert path.read_bytes() == before
    assert load_backend("synthetic:coder-1.5b", cache=CompletionCache(path, mode="off")).cache.mode == "off"


_WRITER = textwrap.dedent(
    """
    import sys
    from neatpipe.models import Backend, CachedBackend, ChatRequest, Completion, CompletionCache

    class Echo(Backend):
        kind = "echo"
        def identity(self):
            return "echo:shared@v1"
        def _generate(self, requests):
            return [Completion(r.messages[-1].content.upper(), 1, 1, "stop", 0.0) for r in requests]

    worker, n = sys.argv[1], int(sys.argv[2])
    backend = CachedBackend(Echo("echo:shared"), CompletionCache(sys.argv[3], busy_timeout_s=20))
    for i in range(n):
        # every batch has the worker's own requests and requests that all workers share
        backend.generate([ChatRequest.user(f"{worker}-{i}"), ChatRequest.user(f"shared-{i}")])
    print(backend.usage.total().requests)
    """
)


def test_concurrent_processes_share_one_file(tmp_path):
    path = tmp_path / "shared.sqlite"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), f"w{k}", "60", str(path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(3)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.strip() == "120"
    with CompletionCache(path) as c:
        stats = c.stats()
        assert stats.entries == 3 * 60 + 60
        assert stats.hits + stats.misses == 3 * 120
        found = c.lookup([request_key("echo", "echo:shared@v1", ChatRequest.user("w2-59"))])
    assert [v.text for v in found.values()] == ["W2-59"]
