"""Fixtures for the download tests; test modules load them with
`pytest_plugins = ["tests.harness.fixtures_downloads"]` (helpers: tests/harness/downloads.py).

- `models`: three model folders (24 MB, 6 MB, 1 MB of random weights + small json files), once.
- `add_repo(kind, **hub_options)`: serves one of them on the fake Hub under a fresh id.
- `download_db`: a real SQLite database through mlxui.db, per test.
- `manager_factory(**options)`: DownloadManagers on the test's HF cache with quick retries,
  shut down at teardown (before the database closes).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mlxui.db import close_db, init_db
from mlxui.hub.downloads import DownloadManager
from tests.harness.downloads import BIG, MEDIUM, SMALL, make_model
from tests.harness.fakehub import FakeHub
from tests.harness.fixtures_hub import HubEnv


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dl_models")
    return {
        name: make_model(root / name, size)
        for name, size in (("big", BIG), ("medium", MEDIUM), ("small", SMALL))
    }


@pytest.fixture
def add_repo(fake_hub: FakeHub, models: dict[str, Path]) -> Callable[..., str]:
    """Serve one of the model folders under a test-unique id; returns the id."""

    def add(kind: str = "small", **kwargs: object) -> str:
        repo_id = f"dl/{kind}-{uuid.uuid4().hex[:8]}"
        fake_hub.add_repo(repo_id, models[kind], **kwargs)
        return repo_id

    return add


@pytest.fixture
async def download_db(tmp_path: Path) -> AsyncIterator[Path]:
    path = tmp_path / "mlxui.sqlite3"
    await init_db(path)
    yield path
    await close_db()


@pytest.fixture
async def manager_factory(hf_env: HubEnv, download_db: Path) -> AsyncIterator[Callable[..., DownloadManager]]:
    made: list[DownloadManager] = []

    def make(**kwargs: object) -> DownloadManager:
        options: dict = {"backoff": 0.05, "stall_timeout": 5.0, "retries": 2} | kwargs
        token_provider = options.pop("token_provider", lambda: None)
        manager = DownloadManager(hf_env.cache_dir, hf_env.endpoint, token_provider, **options)
        made.append(manager)
        return manager

    yield make
    for manager in made:
        await manager.shutdown()
