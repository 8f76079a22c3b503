"""The Models page against the fake Hub: search, badges, filters, downloads tile, local models."""

from __future__ import annotations

import asyncio

import pytest
from nicegui import ui
from nicegui.testing.user import User

from mlxui.ui.components.hub_results import HubResults
from mlxui.ui.components.model_card import ModelCard

AUTHOR = "pagetest"


@pytest.fixture(scope="session")
def page_repos(fake_hub_session, model_dirs) -> dict[str, str]:
    hub = fake_hub_session
    repos = {
        "plain": f"{AUTHOR}/Plain-4bit",
        "thinker": f"{AUTHOR}/Thinker-8bit",
        "vision": f"{AUTHOR}/Tiny-VL",
        "gated": f"{AUTHOR}/Gated-Model",
    }
    if hub.repo(repos["plain"]) is None:
        hub.add_repo(repos["plain"], model_dirs.plain, downloads=1000, likes=10, tags=["mlx"])
        hub.add_repo(repos["thinker"], model_dirs.think_tokens, downloads=900, likes=30, tags=["mlx"])
        hub.add_repo(repos["vision"], model_dirs.vlm, downloads=800, likes=5, tags=["mlx"])
        hub.add_repo(repos["gated"], model_dirs.plain, gated=True, downloads=700, tags=["mlx"])
        for i in range(40):
            hub.add_listing_only(f"{AUTHOR}/Listing-{i:02d}", downloads=100 - i, tags=["mlx"])
    return repos


async def open_models(user: User) -> None:
    await user.open("/models")
    user.find(marker="author-input").clear().type(AUTHOR)
    await wait_until(lambda: card_names(user) and all(n.startswith(AUTHOR) for n in card_names(user)))


def cards(user: User) -> list[ModelCard]:
    """The result cards in page order."""
    results = [e for e in user.find(HubResults).elements if not e.is_deleted]
    return [card for _, card in results[0].cards.values()] if results else []


def card_names(user: User) -> list[str]:
    return [c.model.repo_id for c in cards(user)]


def card(user: User, repo_id: str) -> ModelCard:
    return next(c for c in cards(user) if c.model.repo_id == repo_id)


async def wait_until(check, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def show_card(user: User, repo_id: str) -> ModelCard:
    """What the browser does when a card scrolls into view."""
    target = card(user, repo_id)
    user.find(marker=f"lazy-{repo_id}").trigger("visibility", True)
    await wait_until(lambda: target.loaded)
    return target


async def test_search_lists_hub_models_by_downloads(hf_env, page_repos, user: User) -> None:
    await open_models(user)
    names = card_names(user)
    assert names[:4] == [
        page_repos["plain"],
        page_repos["thinker"],
        page_repos["vision"],
        page_repos["gated"],
    ]
    assert len(names) == 30, "first page"
    await user.should_see(marker="result-count", content="30 models shown · scroll for more")


async def test_more_results_load_at_the_end_of_the_list(hf_env, page_repos, user: User) -> None:
    await open_models(user)
    user.find(marker="load-more").click()
    await wait_until(lambda: len(card_names(user)) == 44)
    assert f"{AUTHOR}/Listing-39" in card_names(user)


async def test_typing_a_query_narrows_results(hf_env, page_repos, user: User) -> None:
    await open_models(user)
    user.find(marker="search-input").type("thinker")
    await wait_until(lambda: card_names(user) == [page_repos["thinker"]])


async def test_badges_appear_when_a_card_is_shown_and_filters_use_them(
    hf_env, page_repos, user: User
) -> None:
    await open_models(user)
    thinker = await show_card(user, page_repos["thinker"])
    vision = await show_card(user, page_repos["vision"])
    assert thinker.caps.thinking and not thinker.caps.vision
    assert vision.caps.vision
    assert "Thinking" in [b.text for b in thinker.badges.descendants() if isinstance(b, ui.badge)]
    assert thinker.fit == "fits"
    tips = {e.text for e in thinker.badges.descendants() if isinstance(e, ui.tooltip)}
    assert "Reasons before it answers; the chat shows the thinking in its own panel." in tips
    assert any(t.startswith("Reads up to ") for t in tips), "the context badge says what ctx means"
    assert "Its weights and a conversation of the default length fit in this machine's memory." in tips
    user.find(marker="filter-vision").trigger("update:selected", True)
    wrapper = thinker.parent_slot.parent
    await wait_until(lambda: not wrapper.visible)
    assert vision.parent_slot.parent.visible
    fetched = [
        r for r in hf_env.hub.requests if r.repo_id == page_repos["thinker"] and "config.json" in r.path
    ]
    assert fetched, "capabilities come from the model's own small files"
    assert not any(r.path.endswith(".safetensors") and r.method == "GET" for r in hf_env.hub.requests), (
        "reading capabilities never downloads weights"
    )


async def test_gated_model_card_says_a_token_is_needed(hf_env, page_repos, user: User) -> None:
    await open_models(user)
    gated = await show_card(user, page_repos["gated"])
    await wait_until(lambda: any("token" in getattr(e, "text", "") for e in gated.badges.descendants()))


async def test_offline_hub_shows_a_banner_not_a_traceback(hf_env, page_repos, user: User) -> None:
    hf_env.hub.offline = True
    await user.open("/models")
    await user.should_see(marker="hub-banner", content="Offline")


async def test_download_moves_the_model_into_the_tile_then_local(hf_env, page_repos, user: User) -> None:
    await open_models(user)
    repo = page_repos["vision"]
    hf_env.hub.throttle_bps = 300_000  # long enough to see it in the tile
    user.find(marker=f"download-{repo}").click()
    await user.should_see(marker=f"download-row-{repo}")
    await wait_until(lambda: not card(user, repo).visible)
    others = [c for c in cards(user) if c.model.repo_id != repo]
    assert all(c.visible for c in others)
    assert not any(isinstance(e, ui.linear_progress) for c in cards(user) for e in c.descendants()), (
        "ordinary model tiles never show a progress bar"
    )
    hf_env.hub.throttle_bps = None
    await wait_until(lambda: card(user, repo).visible, timeout=30)
    user.find(marker="tab-local").click()
    await user.should_see(marker=f"local-model-{repo}")


@pytest.mark.browser
def test_models_page_in_chromium_scroll_stays_put_while_downloading(
    fake_hub, page_repos, chrome, tmp_path
) -> None:
    from selenium.webdriver.common.by import By

    from tests.harness.app_process import running_app
    from tests.harness.browser import find_marked, screenshot, wait_for

    env = {"HF_ENDPOINT": fake_hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_CACHE": str(tmp_path / "cache")}
    repo = page_repos["vision"]
    with running_app(tmp_path / "home", env=env) as app:
        chrome.get(f"{app.url}/models?author={AUTHOR}")
        wait_for(lambda: find_marked(chrome, f"model-card-{repo}"), what="search results")
        wait_for(lambda: "Vision" in find_marked(chrome, f"model-card-{repo}").text, what="lazy badges")
        fake_hub.throttle_bps = 120_000
        find_marked(chrome, f"download-{repo}").click()
        bar = wait_for(lambda: find_marked(chrome, f"download-progress-{repo}"), what="download in the tile")
        wait_for(lambda: not find_marked(chrome, f"model-card-{repo}").is_displayed(), what="card hidden")
        assert find_marked(chrome, f"lazy-{repo}").size["height"] < 4, "the hidden card leaves no empty gap"
        screenshot(chrome, "models-downloading")
        cards = chrome.find_elements(By.CSS_SELECTOR, '[data-testid^="model-card-"]')
        assert cards and not any(c.find_elements(By.CSS_SELECTOR, ".q-linear-progress") for c in cards)
        chrome.execute_script("window.scrollTo(0, 700)")
        toolbar = find_marked(chrome, "models-toolbar")
        wait_for(lambda: chrome.execute_script("return window.scrollY") == 700, what="scrolled")
        progress_before = bar.get_attribute("aria-valuenow")
        wait_for(
            lambda: bar.get_attribute("aria-valuenow") != progress_before, timeout=15, what="progress moves"
        )
        assert chrome.execute_script("return window.scrollY") == 700, "scroll position must not jump"
        top = chrome.execute_script("return arguments[0].getBoundingClientRect().top", toolbar)
        assert 40 <= top <= 70, f"search bar sticks under the header (top={top})"
        screenshot(chrome, "models-scrolled")
        fake_hub.throttle_bps = None
        wait_for(lambda: find_marked(chrome, f"model-card-{repo}").is_displayed(), timeout=30, what="done")
