"""Shared test setup: data locations and the opt-in markers for slow and GPU tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NEATPIPE_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")
    parser.addoption("--run-gpu", action="store_true", help="also run tests marked gpu")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_slow = pytest.mark.skip(reason="slow: run with --run-slow (make test-all)")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU: run with --run-gpu on a GPU machine")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not config.getoption("--run-gpu"):
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """Tests never read or write the user's cache (downloads, measured reference costs): one fresh
    ``$NEATPIPE_CACHE_DIR`` per test session (a test that needs another one sets its own)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEATPIPE_CACHE_DIR", str(tmp_path_factory.mktemp("neatpipe-cache")))
        yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: the reference benchmark files (never copied into the repository)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"reference data folder not found: {SHARED_DATA} (set NEATPIPE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mbpp_path(shared_data: Path) -> Path:
    return shared_data / "sanitized-mbpp.json"


@pytest.fixture(scope="session")
def sandbox():
    """One warm sandbox pool shared by the tests that only need programs run (not pool behaviour)."""
    from neatpipe.sandbox import Sandbox

    with Sandbox() as pool:
        yield pool
