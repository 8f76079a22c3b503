"""Pytest fixtures (registered in tests/conftest.py): tiny models built once, real servers shared.

Servers are session-scoped and started on first use, so a test run pays only for the servers
its tests ask for; each is stopped (by pid) when the session ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import models, procguard
from tests.harness.mlxserver import RunningServer, ServerKind, start_server
from tests.harness.tool_models import build_scripted_tools


@dataclass(frozen=True)
class ModelDirs:
    """Folders of the built test models (see tests/harness/models.py for their replies)."""

    plain: Path
    think_tokens: Path
    think_text: Path
    endless: Path
    tiny_llama: Path
    vlm: Path

    def as_dict(self) -> dict[str, Path]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class HubCache:
    """An HF cache dir holding every test model as a repo; `repos` maps ModelDirs names to repo ids."""

    cache_dir: Path
    repos: dict[str, str]
    snapshots: dict[str, Path]


HUB_REPOS = {
    "plain": "mlxui-test/scripted-plain",
    "think_tokens": "mlxui-test/scripted-think-tokens",
    "think_text": "mlxui-test/scripted-think-text",
    "endless": "mlxui-test/scripted-endless",
    "tiny_llama": "mlxui-test/tiny-llama",
    "vlm": "mlxui-test/tiny-qwen2-vl",
}


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> ModelDirs:
    root = tmp_path_factory.mktemp("models")
    return ModelDirs(
        plain=models.build_scripted_plain(root / "plain"),
        think_tokens=models.build_scripted_think_tokens(root / "think_tokens"),
        think_text=models.build_scripted_think_text(root / "think_text"),
        endless=models.build_scripted_endless(root / "endless"),
        tiny_llama=models.build_tiny_llama(root / "tiny_llama"),
        vlm=models.build_tiny_vlm(root / "vlm"),
    )


@pytest.fixture(scope="session")
def hub_cache(model_dirs: ModelDirs, tmp_path_factory: pytest.TempPathFactory) -> HubCache:
    """Every test model laid out as if huggingface_hub had downloaded it (read-only use, please)."""
    cache_dir = tmp_path_factory.mktemp("hf-cache")
    snapshots = {
        name: models.as_hf_cache_repo(path, cache_dir, HUB_REPOS[name])
        for name, path in model_dirs.as_dict().items()
    }
    return HubCache(cache_dir, dict(HUB_REPOS), snapshots)


def _serve(
    model: Path, kind: ServerKind, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    server = start_server(model, kind, log_dir=tmp_path_factory.mktemp("server-logs"))
    procguard.keep(server.pid)  # outlives the test that first asked for it, by design
    try:
        yield server
    finally:
        server.stop()
        procguard.release(server.pid)


@pytest.fixture(scope="session")
def plain_server(model_dirs: ModelDirs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from _serve(model_dirs.plain, "lm", tmp_path_factory)


@pytest.fixture(scope="session")
def think_tokens_server(
    model_dirs: ModelDirs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    yield from _serve(model_dirs.think_tokens, "lm", tmp_path_factory)


@pytest.fixture(scope="session")
def think_text_server(
    model_dirs: ModelDirs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    yield from _serve(model_dirs.think_text, "lm", tmp_path_factory)


@pytest.fixture(scope="session")
def endless_server(
    model_dirs: ModelDirs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    yield from _serve(model_dirs.endless, "lm", tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_llama_server(
    model_dirs: ModelDirs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    yield from _serve(model_dirs.tiny_llama, "lm", tmp_path_factory)


@pytest.fixture(scope="session")
def vlm_server(model_dirs: ModelDirs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from _serve(model_dirs.vlm, "vlm", tmp_path_factory)


@pytest.fixture(scope="session")
def tool_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scripted tool-calling model (tests/harness/tool_models.py); kept out of `hub_cache`, so
    the tests that list every cached model see the same set as before: serve it by its path."""
    return build_scripted_tools(tmp_path_factory.mktemp("models") / "tools")


@pytest.fixture(scope="session")
def tools_server(tool_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from _serve(tool_model_dir, "lm", tmp_path_factory)
