"""The detail drawer: every capability, the memory estimate, the files with sizes and the model
card (README) rendered as sanitized markdown."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nicegui import ui

from mlxui.format import human_bytes
from mlxui.hub.model_info import ModelDetails
from mlxui.ui.components.capability_badges import CapabilityBadges
from mlxui.ui.components.safe_markdown import SafeMarkdown
from mlxui.ui.testid import testid


class ModelDetailsPanel(ui.column):
    def __init__(self, on_download: Callable[[str], Awaitable[None]]) -> None:
        super().__init__()
        self.classes("w-full gap-3")
        self._on_download = on_download
        testid(self, "model-details")

    def loading(self, repo_id: str) -> None:
        self.clear()
        with self:
            ui.label(repo_id).classes("text-lg font-semibold break-all")
            with ui.row().classes("items-center gap-2"):
                ui.spinner()
                ui.label("Reading the model's files…")

    def failed(self, repo_id: str, message: str) -> None:
        self.clear()
        with self:
            ui.label(repo_id).classes("text-lg font-semibold break-all")
            testid(ui.label(message).classes("text-amber-500"), "details-error")

    def show(self, details: ModelDetails, *, downloadable: bool) -> None:
        caps = details.capabilities
        estimate, fit = details.memory()
        self.clear()
        with self:
            ui.label(details.repo_id or str(details.path)).classes("text-lg font-semibold break-all")
            CapabilityBadges(caps, fit)
            if downloadable and details.repo_id:
                repo_id = details.repo_id
                testid(
                    ui.button("Download", icon="download", on_click=lambda: self._on_download(repo_id)),
                    "details-download",
                )
            rows = [
                ("Architecture", caps.architecture),
                ("Model type", caps.model_type),
                ("Parameters", f"{caps.parameters:,}" + (" (estimated)" if caps.parameters_estimated else "")
                 if caps.parameters else None),
                ("Quantization", _quant(caps)),
                ("Context length", f"{caps.context_length:,} tokens" if caps.context_length else None),
                ("Vision", _yes(caps.vision)),
                ("Tools", _yes(caps.tools)),
                ("Thinking", _yes(caps.thinking)),
                ("Download size", human_bytes(caps.size_bytes) if caps.size_bytes else None),
                ("Memory needed", f"{human_bytes(estimate.total_bytes)} (weights {human_bytes(estimate.weights_bytes)}"
                 f" + KV cache {human_bytes(estimate.kv_cache_bytes)} for {estimate.context_tokens:,} tokens)"
                 if estimate.weights_known else "unknown until the weights' size is known"),
            ]  # fmt: skip
            with testid(ui.grid(columns="auto 1fr").classes("gap-x-4 gap-y-1 text-sm"), "capability-table"):
                for name, value in rows:
                    ui.label(name).classes("text-slate-500")
                    ui.label(value if value is not None else "n/a")
            for problem in caps.problems:
                ui.label(problem).classes("text-xs text-amber-500")
            if details.files:
                with ui.expansion(f"Files ({len(details.files)})", icon="folder").classes("w-full"):
                    for f in sorted(details.files, key=lambda f: f.path):
                        with ui.row().classes("w-full text-xs no-wrap"):
                            ui.label(f.path).classes("truncate")
                            ui.space()
                            ui.label(human_bytes(f.size) if f.size is not None else "?")
            if details.readme_markdown:
                ui.separator()
                testid(SafeMarkdown(details.readme_markdown).classes("w-full text-sm"), "model-readme")


def _quant(caps) -> str | None:
    if not (caps.quant_bits or caps.quant_mode):
        return "none (full precision)" if caps.architecture else None
    group = f", group size {caps.quant_group_size}" if caps.quant_group_size else ""
    return f"{caps.quant_bits or '?'}-bit {caps.quant_mode or 'affine'}{group}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
