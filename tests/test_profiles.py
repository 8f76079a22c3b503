"""Server profiles: what the form's validation says per field, CRUD, duplicate, YAML round-trip."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from mlxui.config import Config
from mlxui.db import close_db, init_db
from mlxui.db.models import ServerProfile
from mlxui.servers.profiles import ProfileBook, ProfileError
from mlxui.servers.supervisor import Supervisor
from tests.harness.fixtures_models import HubCache, ModelDirs

PLAIN = "mlxui-test/scripted-plain"
VLM = "mlxui-test/tiny-qwen2-vl"


@pytest.fixture
async def profiles(tmp_path: Path, hub_cache: HubCache) -> AsyncIterator[ProfileBook]:
    await init_db(tmp_path / "mlxui.sqlite3")
    config = Config(home=tmp_path / "home", hf_cache=hub_cache.cache_dir, port=8765)
    yield Supervisor(config, gpu=None).profiles  # the one book, as the app has it
    await close_db()


async def errors_of(profiles: ProfileBook, values: dict) -> dict[str, str]:
    with pytest.raises(ProfileError) as caught:
        await profiles.create(values)
    assert (caught.value.field, caught.value.message) in caught.value.errors.items()
    return caught.value.errors


async def test_kind_follows_the_models_capabilities(profiles: ProfileBook, model_dirs: ModelDirs) -> None:
    text = await profiles.create({"name": "text", "model": PLAIN})
    vision = await profiles.create({"name": "vision", "model": VLM})
    folder = await profiles.create({"name": "folder", "model": str(model_dirs.vlm)})
    assert (text.kind, vision.kind, folder.kind) == ("lm", "vlm", "vlm")
    assert folder.model == str(model_dirs.vlm) and text.port is None and text.chat_template_args == {}


async def test_every_bad_field_gets_its_own_message(profiles: ProfileBook) -> None:
    errors = await errors_of(
        profiles,
        {
            "name": "my model",
            "model": "mlx-community/not-downloaded",
            "kind": "gguf",
            "port": 80,
            "temperature": 2.5,
            "top_p": 0,
            "max_tokens": 0,
            "prompt_cache_size": -1,
            "chat_template_args": "{enable_thinking: false}",
            "draft_model": "/nowhere",
            "autostart": "yes",
            "idle_ttl": 2.5,
            "colour": "red",
        },
    )
    assert errors == {
        "colour": "'colour' is not a profile setting.",
        "name": "Use up to 64 letters, digits, dots, dashes or underscores (no spaces).",
        "model": "mlx-community/not-downloaded is not downloaded: download it on the Models page first.",
        "kind": "The server kind is 'lm' (mlx_lm.server) or 'vlm' (mlx_vlm.server).",
        "port": "Must be between 1024 and 65535.",
        "chat_template_args": "Not valid JSON: Expecting property name enclosed in double quotes (line 1).",
        "draft_model": "/nowhere is not a model folder (it has no config.json).",
        "autostart": "Choose yes or no.",
        "temperature": "Must be from 0 up to 2.",
        "top_p": "Must be above 0 up to 1.",
        "max_tokens": "Must be between 1 and 1048576.",
        "prompt_cache_size": "Must be between 0 and 10000.",
        "idle_ttl": "Give a whole number or leave it empty.",
    }
    assert await profiles.all() == []  # nothing was written


async def test_names_models_and_ports_that_clash(profiles: ProfileBook, tmp_path: Path) -> None:
    await profiles.create({"name": "Qwen", "model": PLAIN, "port": 9001})
    errors = await errors_of(profiles, {"name": "qwen", "model": PLAIN, "port": 9001})
    assert errors == {
        "name": "A profile named 'qwen' already exists.",
        "port": "Port 9001 is already used by the profile 'Qwen'.",
    }
    assert (await errors_of(profiles, {"name": "a", "model": PLAIN, "port": 8765}))["port"].startswith(
        "Port 8765 is mlxui's own port"
    )
    assert await errors_of(profiles, {"name": "", "model": ""}) == {
        "name": "Give the profile a name.",
        "model": "Choose a model: a downloaded repo or a local folder.",
    }
    assert (await errors_of(profiles, {"name": "b", "model": str(tmp_path)}))["model"].endswith(
        "is not a model folder (it has no config.json)."
    )
    assert (await errors_of(profiles, {"name": "c", "model": "qwen"}))["model"].startswith("Give a model id")
    assert (await errors_of(profiles, {"name": "d", "model": "rel/../x"}))["model"]


async def test_form_values_are_normalised(profiles: ProfileBook) -> None:
    created = await profiles.create(
        {
            "name": " spaced ",
            "model": PLAIN,
            "port": 9100.0,  # number inputs deliver floats
            "max_tokens": 256.0,
            "temperature": 0,
            "chat_template_args": '{"enable_thinking": false}',
            "idle_ttl": "",
        }
    )
    assert (created.name, created.port, created.max_tokens, created.temperature) == ("spaced", 9100, 256, 0.0)
    assert created.chat_template_args == {"enable_thinking": False} and created.idle_ttl is None


async def test_update_rename_delete_and_run_fields_survive_edits(profiles: ProfileBook) -> None:
    await profiles.create({"name": "one", "model": PLAIN})
    await profiles.create({"name": "two", "model": PLAIN})
    await ServerProfile.filter(name="one").update(run_pid=4242, run_port=5000)
    changed = await profiles.update("one", {"model": VLM, "temperature": 0.5})
    assert changed.kind == "vlm" and changed.temperature == 0.5
    assert (changed.run_pid, changed.run_port) == (4242, 5000)  # the supervisor's record is kept
    with pytest.raises(ProfileError) as clash:
        await profiles.update("one", {"name": "two"})
    assert clash.value.errors == {"name": "A profile named 'two' already exists."}
    renamed = await profiles.update("one", {"name": "uno"})
    assert renamed.name == "uno" and await profiles.get("one") is None
    await profiles.delete("uno")
    assert [p.name for p in await profiles.all()] == ["two"]
    with pytest.raises(ProfileError, match="There is no profile named 'uno'"):
        await profiles.delete("uno")


async def test_duplicate_names_the_copy_and_frees_a_fixed_port(profiles: ProfileBook) -> None:
    await profiles.create({"name": "base", "model": PLAIN, "port": 9200, "autostart": True, "max_tokens": 64})
    copy = await profiles.duplicate("base")
    again = await profiles.duplicate("base")
    named = await profiles.duplicate("base", "custom")
    assert (copy.name, again.name, named.name) == ("base-copy", "base-copy-2", "custom")
    assert copy.port is None and copy.autostart is False and copy.max_tokens == 64


async def test_yaml_export_import_round_trip(profiles: ProfileBook, model_dirs: ModelDirs) -> None:
    await profiles.create({"name": "a", "model": PLAIN, "port": 9300, "temperature": 0.7, "idle_ttl": 600})
    await profiles.create(
        {"name": "b", "model": str(model_dirs.plain), "chat_template_args": {"enable_thinking": False}}
    )
    await profiles.create({"name": "c", "model": VLM, "autostart": True, "draft_model": PLAIN})
    before = [p.editable() for p in await profiles.all()]
    text = await profiles.export_yaml()
    assert yaml.safe_load(text)["version"] == 1 and "run_pid" not in text

    for p in await profiles.all():
        await profiles.delete(p.name)
    imported = await profiles.import_yaml(text)
    assert [p.editable() for p in imported] == before

    with pytest.raises(ProfileError) as exists:
        await profiles.import_yaml(text)
    assert exists.value.field == "profiles[0] (a).name"
    replaced = await profiles.import_yaml(text.replace("9300", "9301"), replace_existing=True)
    assert [p.port for p in replaced] == [9301, None, None]


async def test_import_is_all_or_nothing(profiles: ProfileBook) -> None:
    text = yaml.safe_dump(
        {
            "version": 1,
            "profiles": [{"name": "ok", "model": PLAIN}, {"name": "bad", "model": PLAIN, "port": 1}],
        }
    )
    with pytest.raises(ProfileError) as caught:
        await profiles.import_yaml(text)
    assert caught.value.errors == {"profiles[1] (bad).port": "Must be between 1024 and 65535."}
    assert await profiles.all() == []
    clash = yaml.safe_dump(
        [{"name": "x", "model": PLAIN, "port": 9400}, {"name": "y", "model": PLAIN, "port": 9400}]
    )
    with pytest.raises(ProfileError, match="already used by the profile 'x'"):
        await profiles.import_yaml(clash)
    for bad, message in [
        ("a: [", "This is not a YAML file"),
        ("version: 2\nprofiles: []", "version 2"),
        ("just text", "Expected a mapping with a 'profiles' list"),
        (yaml.safe_dump([{"name": "x", "model": PLAIN}, {"name": "x", "model": PLAIN}]), "twice: x"),
        (yaml.safe_dump([{"name": "x", "model": PLAIN}] * 2), "anchors and aliases"),  # one object twice
    ]:
        with pytest.raises(ProfileError, match=message):
            await profiles.import_yaml(bad)
