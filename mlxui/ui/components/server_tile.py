"""A running server: state, live numbers with sparklines, and its controls. Everything is bound to
the server's state and metrics, which the one process-wide sampler writes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from nicegui import ui

from mlxui.format import human_count, human_duration
from mlxui.servers.distributed import describe_ranks, is_distributed
from mlxui.servers.model_defaults import display_name
from mlxui.servers.process import ManagedServer
from mlxui.servers.state import ServerState
from mlxui.ui.components.sparkline import Sparkline
from mlxui.ui.components.state_chip import StateChip
from mlxui.ui.memory_text import memory_size
from mlxui.ui.testid import testid

Action = Callable[[ManagedServer], Awaitable[None] | None]


class ServerTile(ui.card):
    def __init__(
        self, server: ManagedServer, *, gateway_url: str, on_stop: Action, on_restart: Action, on_logs: Action
    ) -> None:
        super().__init__()
        self.server = server
        m = server.metrics
        self.classes("w-full gap-2").props("bordered")
        testid(self, f"server-tile-{server.name}")
        with self:
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                with ui.column().classes("gap-0 min-w-0"):
                    ui.label(display_name(server.profile)).classes("text-base font-semibold truncate")
                    ui.label(server.profile.model).classes("text-xs text-slate-500 truncate")
                    if is_distributed(server.profile):  # local ranks are summed below; remote named
                        ranks = ui.label(describe_ranks(server.profile)).classes("text-xs text-slate-500")
                        testid(ranks, f"ranks-{server.name}").tooltip(
                            "Memory and CPU are summed over the ranks on this Mac; ranks on other hosts "
                            "are not measured here."
                        )
                ui.space()
                if server.profile.pinned:
                    keep = ui.chip("Keep loaded", icon="push_pin").props("dense square outline")
                    testid(keep.classes("text-violet-700 dark:text-violet-300"), f"pinned-{server.name}")
                    keep.tooltip("Never stopped to make room for another model")
                testid(StateChip(server), f"state-{server.name}")
            plan = testid(
                ui.label().classes("text-xs text-slate-600 dark:text-slate-400"), f"plan-{server.name}"
            )
            for name in ("reserved_bytes", "rss_bytes"):  # the whole line from either number
                plan.bind_text_from(m, name, lambda _: _plan(m))
            plan.tooltip("Planned: the memory set aside for it (its measured peak, or the estimate before "
                         "its first run). Using: what its processes use now.")  # fmt: skip
            with ui.grid(columns=3).classes("w-full gap-3"):
                self._metric("Memory", m, "rss_bytes", memory_size, "#7c5cff", lambda v: v / 1e6)
                self._metric(
                    "CPU", m, "cpu_percent", lambda v: "n/a" if v is None else f"{v:.0f} %", "#22c55e"
                )
                self._metric("GPU", m, "gpu_util", lambda v: "n/a" if v is None else f"{v:.0f} %", "#f59e0b")
            with ui.row().classes("w-full gap-4 text-sm items-center"):
                tps = testid(ui.label(), f"tps-{server.name}")
                # Counters change with every request; they are shown once per sampler tick, so a
                # busy server costs the websocket the same few bytes per second as an idle one.
                tps.bind_text_from(m, "tick", lambda _: f"{m.tokens_per_s:.1f} tok/s")
                total = testid(ui.label().classes("text-slate-500"), f"tokens-{server.name}")
                total.bind_text_from(m, "tick", lambda _: _tokens(m))
                ui.label().classes("text-slate-500").bind_text_from(
                    m, "tick", lambda _: f"{human_count(m.requests)} request{'s' if m.requests != 1 else ''}"
                )
                ui.space()
                ui.label().classes("text-slate-500").bind_text_from(
                    m, "uptime_s", lambda s: f"up {human_duration(s)}" if s is not None else ""
                )
            with ui.row().classes("w-full items-center gap-1 no-wrap text-xs"):
                # The address clients should use: it stays while the backend's own port changes.
                ui.label("Use it at").classes("text-slate-500")
                testid(ui.label(f"{gateway_url} · model {display_name(server.profile)}").classes("font-mono truncate"),
                       f"gateway-address-{server.name}")  # fmt: skip
                copy = ui.button(icon="content_copy", on_click=lambda: self._copy(gateway_url))
                testid(copy.props("flat dense round size=xs aria-label='Copy the gateway address'"),
                       f"copy-address-{server.name}").tooltip("Copy the gateway address")  # fmt: skip
            err = ui.label().classes("text-xs text-red-400 whitespace-pre-wrap")
            err.bind_text_from(server, "error", lambda e: e or "")
            err.bind_visibility_from(server, "error", bool)
            with ui.row().classes("w-full gap-1"):
                self._button("Stop", "stop", lambda: on_stop(server))
                self._button("Restart", "restart_alt", lambda: on_restart(server))
                self._button("Logs", "article", lambda: on_logs(server))
                self._button(
                    "Chat", "forum", lambda: ui.navigate.to(f"/chat?server={quote(server.name, safe='')}")
                )
                ui.space()
                ui.label().classes("text-xs text-slate-500 self-center").bind_text_from(
                    server, "port", lambda p: f"backend port {p}" if p else ""
                ).tooltip("The model server's own port: it changes at every start; clients use the gateway.")

    def _copy(self, gateway_url: str) -> None:
        ui.clipboard.write(gateway_url)
        ui.notify(f"Copied {gateway_url}: use it with model {display_name(self.server.profile)!r}.")

    def _metric(self, title: str, metrics, field: str, fmt, color: str, scale=lambda v: v) -> None:
        with ui.column().classes("gap-0 min-w-0"):
            with ui.row().classes("w-full text-xs text-slate-500 no-wrap"):
                ui.label(title)
                ui.space()
                # slate-700 on the light card and slate-300 on the dark one: both over 4.5:1
                value = testid(
                    ui.label().classes("text-slate-700 dark:text-slate-300"), f"{field}-{self.server.name}"
                )
                value.bind_text_from(metrics, field, fmt)
            Sparkline(metrics, field, color=color, scale=scale)

    def _button(self, label: str, icon: str, action) -> None:
        # violet-700 / violet-300: the primary's hue at 4.5:1 or more on the light and the dark card
        button = ui.button(label, icon=icon, on_click=action, color=None).props("flat dense no-caps size=sm")
        button.classes("text-violet-700 dark:text-violet-300")
        testid(button, f"{label.lower()}-{self.server.name}")
        if label in ("Stop", "Restart"):
            button.bind_enabled_from(
                self.server, "state", lambda s: s in (ServerState.READY, ServerState.LOADING)
            )


def _plan(m) -> str:
    """ "planned 5.1 GB, using 4.8 GB" (binary sizes, as all memory numbers: memory_text.py)."""
    return f"planned {memory_size(m.reserved_bytes)}, using {memory_size(m.rss_bytes)}"


def _tokens(m) -> str:
    return f"{human_count(m.prompt_tokens_total)} prompt + {human_count(m.completion_tokens_total)} completion tokens"
