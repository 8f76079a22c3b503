"""Pytest fixtures for the fake Hub (registered as a plugin in tests/conftest.py).

- `fake_hub`: the session's FakeHub, with every fault knob and the request log reset around
  each test (repositories stay; give yours a test-unique id).
- `hf_env`: points the in-process huggingface_hub (and child processes, through the
  environment) at the fake Hub, with a fresh HF cache and home and no token.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.fakehub import VALID_TOKEN, FakeHub


@dataclass(frozen=True)
class HubEnv:
    """Where huggingface_hub now looks: endpoint, cache (HF_HUB_CACHE) and home (HF_HOME)."""

    hub: FakeHub
    endpoint: str
    cache_dir: Path
    hf_home: Path
    token: str = VALID_TOKEN  # accepted by the fake Hub (whoami, gated repos)


@pytest.fixture(scope="session")
def fake_hub_session() -> Iterator[FakeHub]:
    with FakeHub() as hub:
        yield hub


@pytest.fixture
def fake_hub(fake_hub_session: FakeHub) -> Iterator[FakeHub]:
    fake_hub_session.reset()
    yield fake_hub_session
    fake_hub_session.reset()


@pytest.fixture
def hf_env(fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubEnv:
    # huggingface_hub reads its environment once, at import: the variables reach child
    # processes, and the module-level copies below are what this process actually uses.
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import _cache_manager

    home = tmp_path / "hf_home"
    cache = home / "hub"
    cache.mkdir(parents=True)
    env = {
        "HF_ENDPOINT": fake_hub.url,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in (
        "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
        "HF_OIDC_RESOURCE", "HUGGINGFACE_HUB_CACHE", "HF_ASSETS_CACHE", "HF_XET_CACHE",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)

    patches = {
        "ENDPOINT": fake_hub.url,
        "HUGGINGFACE_CO_URL_TEMPLATE": fake_hub.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(cache),
        "HUGGINGFACE_HUB_CACHE": str(cache),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_TELEMETRY": True,
    }
    for name, value in patches.items():
        monkeypatch.setattr(constants, name, value)
    monkeypatch.setattr(_cache_manager, "HF_HUB_CACHE", str(cache))  # scan_cache_dir() default
    monkeypatch.setattr(hf_api.api, "endpoint", fake_hub.url)  # huggingface_hub.list_models() etc.
    return HubEnv(hub=fake_hub, endpoint=fake_hub.url, cache_dir=cache, hf_home=home)
