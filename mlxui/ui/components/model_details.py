"""The detail drawer: every capability, the memory estimate, the files with sizes and the model
card (README) rendered as sanitized markdown."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nicegui import ui
from nicegui.binding import BindableProperty

from mlxui.format import human_bytes
from mlxui.hub.capabilities import Capabilities
from mlxui.hub.memory import MemoryEstimate
from mlxui.hub.model_info import ModelDetails
from mlxui.ui.components.capability_badges import CapabilityBadges
from mlxui.ui.components.chat_button import ChatButton
from mlxui.ui.components.safe_markdown import SafeMarkdown
from mlxui.ui.testid import testid


class ModelDetailsPanel(ui.column):
    downloaded = BindableProperty()  # the shown model is in the cache: Chat instead of Download

    def __init__(self, on_download: Callable[[str], Awaitable[None]]) -> None:
        super().__init__()
        self.classes("w-full gap-3")
        self._on_download = on_download
        self.repo_id: str | None = None
        self.downloaded = False
        testid(self, "model-details")

    def mark_downloaded(self, repo_id: str) -> None:
        """A download finished: if it is the model shown, its main action becomes Chat."""
        if repo_id == self.repo_id:
            self.downloaded = True

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

    def show(self, details: ModelDetails, *, downloaded: bool) -> None:
        caps = details.capabilities
        estimate, fit = details.memory()
        self.repo_id, self.downloaded = details.repo_id, downloaded
        self.clear()
        with self:
            ui.label(details.repo_id or str(details.path)).classes("text-lg font-semibold break-all")
            CapabilityBadges(caps, fit)
            if details.repo_id:
                self._actions(details.repo_id)
            rows = [
                ("Architecture", caps.architecture),
                ("Model type", caps.model_type),
                ("Parameters", _parameters(caps)),
                ("Quantization", _quant(caps)),
                ("Context length", f"{caps.context_length:,} tokens" if caps.context_length else None),
                ("Vision", _yes(caps.vision)),
                ("Tools", _yes(caps.tools)),
                ("Thinking", _yes(caps.thinking)),
                ("Download size", human_bytes(caps.size_bytes) if caps.size_bytes else None),
            ]
            with testid(ui.grid(columns="auto 1fr").classes("gap-x-4 gap-y-1 text-sm"), "capability-table"):
                for name, value in rows:
                    ui.label(name).classes("text-slate-500")
                    ui.label(value if value is not None else "n/a")
                _memory_rows(estimate)
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

    def _actions(self, repo_id: str) -> None:
        with ui.row().classes("items-center gap-2"):
            download = ui.button("Download", icon="download", on_click=lambda: self._on_download(repo_id))
            testid(download, "details-download").bind_visibility_from(self, "downloaded", lambda d: not d)
            testid(ChatButton(repo_id), "details-chat").bind_visibility_from(self, "downloaded")
            note = ui.label("Downloaded").classes("text-xs text-positive")
            note.bind_visibility_from(self, "downloaded")


def _parameters(caps: Capabilities) -> str | None:
    """The card's label (the same number everywhere), then the exact count behind it."""
    if not caps.parameters_label:
        return None
    how = "estimated" if caps.parameters_estimated else "counted from the weights"
    return f"{caps.parameters_label} ({caps.parameters:,}, {how})"


def _memory_rows(estimate: MemoryEstimate) -> None:
    """The total, then the three parts it is the sum of."""
    ui.label("Memory needed").classes("text-slate-500")
    if not estimate.weights_known:
        ui.label("unknown until the weights' size is known")
        return
    testid(ui.label(human_bytes(estimate.total_bytes)).classes("font-medium"), "memory-total")
    parts = [
        ("weights", "Weights", estimate.weights_bytes),
        ("kv", f"KV cache ({estimate.context_tokens:,} tokens)", estimate.kv_cache_bytes),
        ("overhead", "Runtime (MLX, server, activations)", estimate.overhead_bytes),
    ]
    for i, (key, name, size) in enumerate(parts):
        ui.label(f"{'+ ' if i else ''}{name}").classes("text-slate-500 pl-3 text-xs self-center")
        testid(ui.label(human_bytes(size)).classes("text-xs self-center"), f"memory-{key}")


def _quant(caps) -> str | None:
    if not (caps.quant_bits or caps.quant_mode):
        return "none (full precision)" if caps.architecture else None
    group = f", group size {caps.quant_group_size}" if caps.quant_group_size else ""
    return f"{caps.quant_bits or '?'}-bit {caps.quant_mode or 'affine'}{group}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
