"""Where mlxui listens. Saved for the next start; flags and MLXUI_HOST/MLXUI_PORT still win."""

from __future__ import annotations

from nicegui import ui

from mlxui.config import LOOPBACK_HOSTS, Config, ConfigError, save_network_settings
from mlxui.ui.testid import testid


class NetworkCard(ui.card):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.classes("w-full gap-2").props("bordered")
        with self:
            ui.label("Address").classes("text-lg font-semibold")
            ui.label(f"Now serving {config.base_url}. Changes apply at the next start.").classes(
                "text-sm text-slate-500"
            )
            with ui.row().classes("w-full gap-2 no-wrap items-start"):
                self.host = testid(
                    ui.input("Host", value=config.host).props("outlined dense").classes("grow"), "host"
                )
                self.port = testid(
                    ui.number("Port", value=config.port, format="%d").props("outlined dense"), "port"
                )
                testid(ui.button("Save", on_click=self.save).props("no-caps"), "network-save")
            self.warning = testid(ui.label().classes("text-sm text-warning"), "host-warning")
            self.host.on_value_change(self._warn)
            self._warn()

    def _warn(self) -> None:
        host = (self.host.value or "").strip()
        self.warning.text = (
            ""
            if host in LOOPBACK_HOSTS
            else f"Binding to {host} lets anyone who can reach this machine use mlxui and its models."
        )

    def save(self) -> None:
        host = (self.host.value or "").strip() or "127.0.0.1"
        try:
            save_network_settings(self.config.home, host, int(self.port.value or 0))
        except (ConfigError, ValueError) as exc:
            self.port.error = str(exc)
            return
        self.port.error = None
        ui.notify(
            f"Saved: mlxui will listen on {host}:{int(self.port.value)} after a restart.", type="positive"
        )
