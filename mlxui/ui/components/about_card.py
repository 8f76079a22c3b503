"""Versions, MLX device and where mlxui keeps things: what a bug report needs."""

from __future__ import annotations

from nicegui import ui

from mlxui.config import Config
from mlxui.system.backend import detect_backend, package_versions
from mlxui.ui.testid import testid


class AboutCard(ui.card):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.classes("w-full gap-2").props("bordered")
        rows = [("MLX device", detect_backend())]
        rows += list(package_versions().items())
        rows += [
            ("Data folder", str(config.home)),
            ("Hugging Face cache", str(config.hf_cache)),
            ("Hub endpoint", config.hf_endpoint),
            ("Gateway", f"{config.base_url}/v1"),
        ]
        with self:
            ui.label("About").classes("text-lg font-semibold")
            with testid(ui.grid(columns="auto 1fr").classes("gap-x-6 gap-y-1 text-sm"), "about-table"):
                for name, value in rows:
                    ui.label(name).classes("text-slate-500")
                    ui.label(value).classes("break-all")
