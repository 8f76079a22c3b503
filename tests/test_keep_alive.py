"""`keep_alive` as Ollama clients send it: every accepted form, the refusals, the idle limit."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mlxui.servers.keep_alive import (
    KEEP_LOADED,
    KeepAliveError,
    idle_limit,
    over_idle_limit,
    parse_keep_alive,
)
from mlxui.servers.process import ManagedServer
from mlxui.servers.profiles import Profile
from mlxui.servers.state import ServerState


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (300, 300.0),
        (2.5, 2.5),
        ("0", 0.0),
        ("45", 45.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("500ms", 0.5),
        ("2m30s", 150.0),
        (" 10s ", 10.0),
        ("+10s", 10.0),
        ("-0", 0.0),
    ],
)
def test_accepted_forms(value: object, seconds: float) -> None:
    assert parse_keep_alive(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [-1, -0.5, "-1", "-1m", "-1h30m"])
def test_negative_keeps_the_model_loaded(value: object) -> None:
    assert parse_keep_alive(value) == KEEP_LOADED == math.inf


@pytest.mark.parametrize(
    "value",
    ["", " ", "-", "abc", "5x", "1d", "5 m", "5m30", "m", "1h-30m", "inf", "nan", "1e3", True, False,
     [], {}, ["5m"], 1e400, 10**400, "9" * 400 + "s", float("nan"), float("inf")],
)  # fmt: skip
def test_refusals_say_what_is_accepted(value: object) -> None:
    with pytest.raises(KeepAliveError) as refused:
        parse_keep_alive(value)
    message = str(refused.value)
    assert message.startswith('keep_alive takes seconds or a duration like "30s", "5m" or "1h30m"')
    assert f"got {value!r}"[:40] in message


def test_a_long_value_is_shortened_in_the_sentence() -> None:
    with pytest.raises(KeepAliveError) as refused:
        parse_keep_alive("x" * 1000)
    assert len(str(refused.value)) < 250 and str(refused.value).endswith("xxx....")


def _server(tmp_path: Path, idle_ttl: int | None, on_demand: bool) -> ManagedServer:
    profile = Profile(name="p", model="some/model", idle_ttl=idle_ttl)
    server = ManagedServer(profile, logs_dir=tmp_path, env={}, publish=lambda *_: None)
    server.on_demand = on_demand
    return server


def test_idle_limit_prefers_the_request_override_and_covers_user_starts(tmp_path: Path) -> None:
    assert idle_limit(_server(tmp_path, 60, on_demand=True)) == 60
    assert idle_limit(_server(tmp_path, 60, on_demand=False)) is None  # a user's start stays
    assert idle_limit(_server(tmp_path, None, on_demand=True)) is None
    by_hand = _server(tmp_path, None, on_demand=False)
    by_hand.keep_loaded_for(2.0)
    assert idle_limit(by_hand) == 2.0  # an override applies to a server started by hand too
    by_hand.keep_loaded_for(0.0)
    assert idle_limit(by_hand) == 0.0
    on_demand = _server(tmp_path, 1, on_demand=True)
    on_demand.keep_loaded_for(KEEP_LOADED)
    assert idle_limit(on_demand) is None


def test_over_idle_limit_only_for_ready_servers(tmp_path: Path) -> None:
    server = _server(tmp_path, 5, on_demand=True)
    assert not over_idle_limit(server, 100.0)  # STOPPED
    server.state = ServerState.READY
    assert over_idle_limit(server, 5.1) and not over_idle_limit(server, 5.0)
    server.keep_loaded_for(0.0)
    assert over_idle_limit(server, 0.01) and not over_idle_limit(server, 0.0)  # 0 while in flight
