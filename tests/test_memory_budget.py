"""The memory budget (servers/memory_budget.py): sizes, defaults, the setting's check, the
environment override and where the budget in force comes from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlxui.config import ConfigError, load_config
from mlxui.servers import memory_budget
from mlxui.servers.memory_budget import (
    GIB,
    MIB,
    TIB,
    SizeError,
    check_budget,
    default_budget,
    default_source,
    effective_budget,
    format_size,
    parse_size,
)
from mlxui.servers.settings import ServerSettings
from mlxui.settings import SettingError


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("25769803776", 24 * GIB),
        (25769803776, 24 * GIB),
        ("24GB", 24 * GIB),
        ("24 GB", 24 * GIB),
        ("24G", 24 * GIB),
        ("24GiB", 24 * GIB),
        ("24gb", 24 * GIB),
        ("  24 gib ", 24 * GIB),
        ("512MB", 512 * MIB),
        ("512M", 512 * MIB),
        ("1.5TB", TIB * 3 // 2),
        ("0.5 GB", GIB // 2),
        ("100B", 100),
    ],
)
def test_sizes_are_bytes_or_binary_units(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lots", "'lots' is not a size: write bytes (25769803776) or a number with a unit: 24GB"),
        ("24 parsecs", "'24 parsecs' is not a size"),
        ("-1GB", "'-1GB' is not a size"),
        ("GB", "'GB' is not a size"),
        ("", "'' is not a size"),
        ("1.5", "'1.5' is not a whole number of bytes"),
        ("24 GB GB", "'24 GB GB' is not a size"),
        (True, "True is not a size"),
        (-5, "-5 is not a size: a size cannot be negative."),
    ],
)
def test_nonsense_is_refused_with_a_sentence(text: object, message: str) -> None:
    with pytest.raises(SizeError) as refused:
        parse_size(text)  # type: ignore[arg-type]
    assert str(refused.value).startswith(message) and str(refused.value).endswith(".")


def test_sizes_print_the_way_they_are_typed() -> None:
    assert [format_size(n) for n in (24 * GIB, GIB * 3 // 2, 512 * MIB, 2 * TIB, 100, 400 * GIB)] == [
        "24 GB",
        "1.5 GB",
        "512 MB",
        "2 TB",
        "100 B",
        "400 GB",
    ]
    for text in ("24 GB", "1.5 GB", "512 MB"):
        assert format_size(parse_size(text)) == text


@pytest.mark.parametrize(
    ("total", "system", "budget", "source"),
    [
        (32 * GIB, "darwin", 24 * GIB, "default: 75 % of 32 GB"),
        (16 * GIB, "Darwin", 12 * GIB, "default: 75 % of 16 GB"),
        (8 * GIB, "linux", 6 * GIB, "default: 8 GB less 2 GB for the system"),
        (64 * GIB, "Linux", 64 * GIB - round(6.4 * GIB), "default: 64 GB less 6.4 GB for the system"),
        (3 * GIB, "linux", GIB * 3 // 2, "default: 3 GB less 1.5 GB for the system"),
    ],
)
def test_defaults_suit_the_system(total: int, system: str, budget: int, source: str) -> None:
    assert abs(default_budget(total, system) - budget) <= 1
    assert default_source(total, system) == source


def test_the_setting_takes_bytes_or_sizes_and_refuses_out_of_range_values(monkeypatch) -> None:
    # The module object, not its dotted name: NiceGUI's user simulation drops `mlxui` from
    # sys.modules after each test, so a name lookup through the package can fail later in a run.
    monkeypatch.setattr(memory_budget, "physical_memory", lambda: 32 * GIB)
    settings = ServerSettings()
    assert settings.check("memory_budget", "24GB") == 24 * GIB
    assert settings.check("memory_budget", 24 * GIB) == 24 * GIB
    assert settings.check("memory_budget", float(GIB)) == GIB
    assert settings.check("memory_budget", "128 GB") == 128 * GIB, "more than RAM is allowed (swap)"
    assert settings.check("memory_budget", None) is None
    assert settings.check("memory_budget", "  ") is None, "blank: the default"
    refusals = {
        "100MB": "A memory budget of 100 MB is too small: give at least 256 MB.",
        "129GB": "A memory budget of 129 GB is more than 4 x this machine's 32 GB of memory: give at most 128 GB.",
        "huge": "'huge' is not a size",
    }
    for value, sentence in refusals.items():
        with pytest.raises(SettingError) as refused:
            settings.check("memory_budget", value)
        assert refused.value.field == "memory_budget" and refused.value.message.startswith(sentence)


def test_environment_beats_setting_beats_default(tmp_path: Path) -> None:
    env = {"MLXUI_HOME": str(tmp_path)}
    settings = ServerSettings()
    plain = load_config(env)
    assert plain.memory_budget is None
    assert effective_budget(settings, plain, total_bytes=32 * GIB, system="darwin") == (
        24 * GIB,
        "default: 75 % of 32 GB",
    )
    settings.memory_budget = 20 * GIB
    assert effective_budget(settings, plain) == (20 * GIB, "setting")
    overridden = load_config({**env, "MLXUI_MEMORY_BUDGET": "1.5GB"})
    assert overridden.memory_budget == GIB * 3 // 2
    assert effective_budget(settings, overridden) == (GIB * 3 // 2, "environment")
    assert load_config({**env, "MLXUI_MEMORY_BUDGET": " "}).memory_budget is None, "blank: unset"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("lots", "MLXUI_MEMORY_BUDGET='lots' cannot be used: 'lots' is not a size"),
        ("1MB", "MLXUI_MEMORY_BUDGET='1MB' cannot be used: A memory budget of 1 MB is too small"),
    ],
)
def test_a_bad_environment_budget_is_a_startup_error(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({"MLXUI_HOME": str(tmp_path), "MLXUI_MEMORY_BUDGET": value})


def test_a_bad_environment_budget_stops_the_cli_with_a_sentence_not_a_traceback(tmp_path: Path) -> None:
    env = {"MLXUI_HOME": str(tmp_path), "MLXUI_MEMORY_BUDGET": "24 parsecs", "PATH": "/usr/bin:/bin"}
    for command in (["run", "--no-browser"], ["settings", "list"]):
        done = subprocess.run(
            [sys.executable, "-m", "mlxui", *command],
            env={**env, "PYTHONPATH": str(Path(__file__).parent.parent)},
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(
            "MLXUI_MEMORY_BUDGET='24 parsecs' cannot be used: '24 parsecs' is not a size"
        )
        assert "Traceback" not in done.stderr and done.stdout == ""


def test_check_budget_uses_this_machines_memory_when_not_told() -> None:
    assert check_budget("256MB") == 256 * MIB
    with pytest.raises(SizeError, match="more than 4 x this machine's"):
        check_budget(10**18)
