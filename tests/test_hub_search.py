"""Hub search against the fake Hub through the real huggingface_hub session: sorting, paging on
demand, filters, and offline/bad-request failures that come back fast as clear errors."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from mlxui.hub.errors import BadQuery, HubUnavailable
from mlxui.hub.search import search_models
from tests.harness.fakehub import FakeHub
from tests.harness.fixtures_hub import HubEnv


def _author() -> str:
    return f"search-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def catalog(hf_env: HubEnv) -> tuple[str, FakeHub]:
    """Five listing-only models of a fresh author, each first by one sort key."""
    hub, author = hf_env.hub, _author()
    rows = [
        ("alpha-4bit", 500, 1, "2024-03-01T00:00:00.000Z", 3),
        ("beta-8bit", 100, 90, "2024-01-01T00:00:00.000Z", 1),
        ("gamma-4bit", 300, 5, "2024-06-01T00:00:00.000Z", 2),
        ("delta-bf16", 200, 40, "2024-02-01T00:00:00.000Z", 99),
        ("epsilon-4bit", 50, 3, "2024-04-01T00:00:00.000Z", 0),
    ]
    for name, downloads, likes, modified, trending in rows:
        hub.add_listing_only(
            f"{author}/{name}", downloads=downloads, likes=likes, last_modified=modified,
            trending_score=trending, library_name="mlx", tags=["mlx", "4-bit"],
        )  # fmt: skip
    hub.requests.clear()
    return author, hub


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("downloads", ["alpha-4bit", "gamma-4bit", "delta-bf16", "beta-8bit", "epsilon-4bit"]),
        ("likes", ["beta-8bit", "delta-bf16", "gamma-4bit", "epsilon-4bit", "alpha-4bit"]),
        ("updated", ["gamma-4bit", "epsilon-4bit", "alpha-4bit", "delta-bf16", "beta-8bit"]),
        ("trending", ["delta-bf16", "alpha-4bit", "gamma-4bit", "beta-8bit", "epsilon-4bit"]),
    ],
)
async def test_sort_orders_results(catalog, sort: str, expected: list[str]) -> None:
    author, hub = catalog
    results = await search_models(author=author, sort=sort, endpoint=hub.url)
    assert [m.name for m in results.models] == expected
    assert not results.has_more


async def test_results_carry_the_card_fields(catalog) -> None:
    author, hub = catalog
    (model,) = (await search_models("gamma", author=author, endpoint=hub.url)).models
    assert model.repo_id == f"{author}/gamma-4bit" and model.author == author
    assert (model.downloads, model.likes, model.trending_score) == (300, 5, 2)
    assert model.last_modified is not None and model.last_modified.isoformat().startswith("2024-06-01")
    assert model.is_mlx and "4-bit" in model.tags and model.library_name == "mlx"
    assert model.sha and len(model.sha) == 40  # capabilities are cached per commit
    assert model.gated is False and model.private is False
    assert model.to_dict()["last_modified"].startswith("2024-06-01")


async def test_pages_load_only_when_asked(catalog) -> None:
    author, hub = catalog
    results = await search_models(author=author, sort="downloads", limit=2, endpoint=hub.url)
    assert [m.name for m in results.models] == ["alpha-4bit", "gamma-4bit"]
    assert results.has_more
    assert len(hub.requests) == 1  # nothing fetched ahead of the scroll

    page2 = await results.more()
    assert [m.name for m in page2] == ["delta-bf16", "beta-8bit"]
    assert len(hub.requests) == 2 and "cursor=" in hub.requests[-1].query
    page3 = await results.more()
    assert [m.name for m in page3] == ["epsilon-4bit"]
    assert not results.has_more
    assert await results.more() == []
    assert len(hub.requests) == 3
    assert [m.name for m in results.models][-1] == "epsilon-4bit" and len(results.models) == 5


async def test_a_fast_double_scroll_loads_each_page_once(catalog) -> None:
    author, hub = catalog
    results = await search_models(author=author, limit=2, endpoint=hub.url)
    first, second = await asyncio.gather(results.more(), results.more())
    names = [m.repo_id for m in results.models]
    assert len(names) == len(set(names)) == 5
    assert len(first) == 2 and len(second) == 1


async def test_query_matches_names(catalog) -> None:
    author, hub = catalog
    results = await search_models("4bit", author=author, endpoint=hub.url)
    assert sorted(m.name for m in results.models) == ["alpha-4bit", "epsilon-4bit", "gamma-4bit"]
    assert (await search_models("no-such-thing", author=author, endpoint=hub.url)).models == []


async def test_mlx_only_beyond_mlx_community(hf_env: HubEnv) -> None:
    hub, needle = hf_env.hub, uuid.uuid4().hex[:10]
    hub.add_listing_only(f"someone/{needle}-mlx", library_name="mlx", downloads=3)
    hub.add_listing_only(f"other/{needle}-torch", library_name="transformers", downloads=2)
    hub.add_listing_only(f"third/{needle}-gguf", library_name="gguf", tags=["gguf"], downloads=1)

    everything = await search_models(needle, author=None, endpoint=hub.url)
    assert [(m.name, m.is_mlx) for m in everything.models] == [
        (f"{needle}-mlx", True), (f"{needle}-torch", False), (f"{needle}-gguf", False),
    ]  # fmt: skip
    mlx = await search_models(needle, author=None, mlx_only=True, endpoint=hub.url)
    assert [m.repo_id for m in mlx.models] == [f"someone/{needle}-mlx"]


async def test_gated_models_are_marked(hf_env: HubEnv) -> None:
    author = _author()
    hf_env.hub.add_listing_only(f"{author}/locked", gated=True)
    (model,) = (await search_models(author=author, endpoint=hf_env.endpoint)).models
    assert model.gated


async def test_offline_hub_fails_fast_with_a_clear_error(hf_env: HubEnv) -> None:
    hf_env.hub.offline = True
    started = time.monotonic()
    with pytest.raises(HubUnavailable) as caught:
        await search_models("qwen", endpoint=hf_env.endpoint)
    assert time.monotonic() - started < 5
    assert caught.value.message == f"Cannot connect to the Hub at {hf_env.endpoint}."


async def test_server_error_is_not_retried_for_half_a_minute(hf_env: HubEnv) -> None:
    hf_env.hub.status_overrides["*"] = 503
    started = time.monotonic()
    with pytest.raises(HubUnavailable, match="answered 503"):
        await search_models("qwen", endpoint=hf_env.endpoint)
    assert time.monotonic() - started < 5
    assert len(hf_env.hub.requests) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query": "x" * 201}, "too long"),
        ({"query": "bad\x00query"}, "control characters"),
        ({"sort": "random"}, "Unknown sort"),
        ({"limit": 0}, "page size"),
        ({"author": "../etc"}, "not a Hub user"),
    ],
)
async def test_unusable_searches_are_refused_before_asking(hf_env: HubEnv, kwargs, message: str) -> None:
    with pytest.raises(BadQuery, match=message):
        await search_models(endpoint=hf_env.endpoint, **kwargs)
    assert hf_env.hub.requests == []
