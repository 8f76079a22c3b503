"""The crash loop guard with a fake clock: three automatic restarts in five minutes, then down."""

from __future__ import annotations

from mlxui.servers.crash_guard import CrashGuard


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_three_crashes_restart_the_fourth_within_the_window_trips() -> None:
    clock = Clock()
    guard = CrashGuard(clock=clock)
    for n in range(1, 4):
        guard.record_crash()
        assert guard.may_restart() and guard.crashes() == n
        clock.now += 60
    guard.record_crash()  # the 4th, 180 s after the first
    assert not guard.may_restart() and guard.tripped
    assert guard.refusal("plain") == (
        "plain crashed 4 times in 5 minutes; it stays stopped until you start it: see its log."
    )
    clock.now += 3600  # the window moves on, the guard stays tripped: only a user's start clears it
    assert not guard.may_restart() and guard.crashes() == 0


def test_crashes_older_than_the_window_do_not_count() -> None:
    clock = Clock()
    guard = CrashGuard(clock=clock)
    for _ in range(10):  # one crash every 2 minutes: never more than 3 within 5 minutes
        guard.record_crash()
        assert guard.may_restart()
        clock.now += 120
    assert guard.crashes() == 2  # 120 s and 240 s ago; 360 s ago fell out


def test_reset_by_a_user_start_gives_three_restarts_again() -> None:
    clock = Clock()
    guard = CrashGuard(clock=clock)
    for _ in range(4):
        guard.record_crash()
    assert not guard.may_restart()
    guard.reset()
    assert guard.may_restart() and guard.crashes() == 0
    for _ in range(3):
        guard.record_crash()
    assert guard.may_restart()


def test_window_and_limit_are_settings() -> None:
    clock = Clock()
    guard = CrashGuard(window_s=60, max_restarts=1, clock=clock)
    guard.record_crash()
    assert guard.may_restart()
    clock.now += 61
    guard.record_crash()
    assert guard.may_restart()  # the first one left the window
    guard.record_crash()
    assert not guard.may_restart()
    assert guard.refusal("x").startswith("x crashed 2 times in 1 minutes;")
