"""The new-profile form: the name follows the chosen model (its short name, valid and unique)
until the user types one; an empty field shows what it means; jargon fields explain themselves."""

from __future__ import annotations

import pytest
from nicegui.testing.user import User

from mlxui.ui.components.profile_editor import suggest_name
from tests.test_servers_page import wait_until


@pytest.fixture
def cached_models(mlxui_home, hub_cache, monkeypatch) -> dict[str, str]:
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache.cache_dir))
    return hub_cache.repos


def field(user: User, marker: str):
    return user.find(marker=marker).elements.pop()


async def test_the_name_follows_the_model_until_the_user_types_one(cached_models, user: User) -> None:
    await user.open(f"/servers?model={cached_models['plain']}")
    await user.should_see(marker="profile-save")
    assert field(user, "profile-name").value == "scripted-plain"
    field(user, "profile-model").value = cached_models["tiny_llama"]
    await wait_until(lambda: field(user, "profile-name").value == "tiny-llama")
    user.find(marker="profile-name").clear().type("my-llama")
    field(user, "profile-model").value = cached_models["plain"]
    assert field(user, "profile-name").value == "my-llama", "a typed name stays"
    user.find(marker="profile-name").clear()
    field(user, "profile-model").value = cached_models["tiny_llama"]
    await wait_until(lambda: field(user, "profile-name").value == "tiny-llama")  # cleared: it follows again


async def test_a_suggested_name_is_unique(cached_models, user: User) -> None:
    await user.open(f"/servers?model={cached_models['plain']}")
    await user.should_see(marker="profile-save")
    user.find(marker="profile-save").click()
    await user.should_see(marker="profile-row-scripted-plain")
    await user.open(f"/servers?model={cached_models['plain']}")
    await user.should_see(marker="profile-save")
    assert field(user, "profile-name").value == "scripted-plain-2"
    user.find(marker="profile-save").click()
    await user.should_see(marker="profile-row-scripted-plain-2")


async def test_empty_fields_show_their_default_and_jargon_has_a_hint(cached_models, user: User) -> None:
    await user.open(f"/servers?model={cached_models['plain']}")
    await user.should_see(marker="profile-save")
    placeholders = {m: field(user, f"profile-{m}").props["placeholder"] for m in
                    ("port", "ttl", "temperature", "top-p", "max-tokens", "prompt-cache", "draft-model")}  # fmt: skip
    assert placeholders["port"] == "auto"
    assert placeholders["temperature"] == "server default (0)"
    assert placeholders["prompt-cache"] == "server default (10)"
    assert all(placeholders.values())
    assert "follow-up" in field(user, "profile-prompt-cache").props["hint"]
    assert "drafts tokens" in field(user, "profile-draft-model").props["hint"]
    await user.should_not_see(marker="hint-chat_template_args")  # no thinking switch for this model
    field(user, "profile-model").value = cached_models["think_tokens"]
    await user.should_see(marker="hint-chat_template_args")
    assert "chat_template_args" in field(user, "hint-chat_template_args").text
    field(user, "profile-model").value = cached_models["plain"]
    field(user, "profile-ttl").value = None
    field(user, "profile-name").value = "no-defaults"
    user.find(marker="profile-save").click()
    await user.should_see(marker="profile-row-no-defaults")


def test_suggested_names_are_valid_profile_names() -> None:
    assert suggest_name("mlx-community/Qwen3 4B (4bit)", set()) == "Qwen3-4B--4bit-"
    assert suggest_name("/models/-weird", set()) == "weird"
    assert suggest_name("org/...", set()) == "server"
    assert suggest_name("org/a", {"a", "a-2"}) == "a-3"


async def test_the_distributed_fields_are_folded_away_and_show_their_errors(
    cached_models, user: User
) -> None:
    await user.open(f"/servers?model={cached_models['plain']}")
    await user.should_see(marker="profile-save")
    assert field(user, "profile-distributed").value is False  # the simple form stays simple
    assert (
        field(user, "profile-backend").value == "ring" and field(user, "profile-parallel").value == "tensor"
    )
    field(user, "profile-hosts").value = "10.0.0.1, -oProxyCommand=x"
    user.find(marker="profile-save").click()
    await wait_until(lambda: field(user, "profile-hosts").error is not None)
    assert "host names or IP addresses" in field(user, "profile-distributed-problem").text
    assert field(user, "profile-distributed").value is True  # opened to show where the error is
