"""Settings: the Hugging Face token is checked against the Hub, stored masked, and used."""

from __future__ import annotations

from huggingface_hub import get_token
from nicegui import ui
from nicegui.testing.user import User

from mlxui import __version__


async def test_token_is_checked_saved_masked_and_removed(hf_env, user: User) -> None:
    await user.open("/settings")
    await user.should_see(marker="token-current", content="No token saved.")
    user.find(marker="token-input").type("hf_wrong_token")
    user.find(marker="token-check").click()
    await user.should_see(marker="token-result", content="does not accept this token")
    assert get_token() is None
    user.find(marker="token-input").clear().type(hf_env.token)
    user.find(marker="token-save").click()
    await user.should_see(marker="token-result", content="belongs to tester")
    assert get_token() == hf_env.token
    await user.should_see(marker="token-current", content="hf_…alid")
    await user.should_not_see(hf_env.token)
    user.find(marker="token-remove").click()
    await user.should_see(marker="token-current", content="No token saved.")
    assert get_token() is None


async def test_offline_token_check_says_so(hf_env, user: User) -> None:
    hf_env.hub.offline = True
    await user.open("/settings")
    user.find(marker="token-input").type(hf_env.token)
    user.find(marker="token-check").click()
    await user.should_see(marker="token-result", content="Cannot connect")


async def test_about_lists_versions_and_places(user: User, mlxui_home) -> None:
    await user.open("/settings")
    await user.should_see("mlx-lm")
    labels = [e.text for e in user.find(kind=ui.label).elements]
    assert __version__ in labels, "mlxui's version is listed on its own"
    assert "CPU" in labels or "Metal" in labels or "CUDA" in labels
    assert str(mlxui_home) in labels
