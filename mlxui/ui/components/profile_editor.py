"""Create or edit a server profile, with a message under each field the server-side rules reject."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from mlxui.hub.local import LocalEntry
from mlxui.servers.profiles import Profile, ProfileBook, ProfileError
from mlxui.ui.testid import testid


class ProfileEditor(ui.dialog):
    """`await ProfileEditor(...).edit(profile_or_None, model=...)` -> the saved Profile or None."""

    def __init__(
        self, profiles: ProfileBook, models: list[LocalEntry], on_saved: Callable[[Profile], Awaitable[None]]
    ):
        super().__init__()
        self.profiles, self.models, self.on_saved = profiles, models, on_saved
        self.original: Profile | None = None
        self.fields: dict[str, ui.element] = {}
        with self, ui.card().classes("w-[560px] max-w-full gap-2"):
            self.title = ui.label().classes("text-lg font-semibold")
            self.fields["name"] = testid(
                ui.input("Name").props("outlined dense").classes("w-full"), "profile-name"
            )
            options = {m.repo_id or str(m.path): _model_label(m) for m in models}
            self.fields["model"] = testid(
                ui.select(options, label="Model (downloaded repo or local folder)", with_input=True,
                          new_value_mode="add-unique").props("outlined dense").classes("w-full"),
                "profile-model",
            )  # fmt: skip
            self.fields["model"].on_value_change(self._model_changed)
            self.thinking_hint = ui.label().classes("text-xs text-slate-500")
            with ui.row().classes("w-full gap-2 no-wrap"):
                self.fields["port"] = testid(ui.number("Port (blank: automatic)", format="%d").props("outlined dense")
                                             .classes("grow"), "profile-port")  # fmt: skip
                self.fields["idle_ttl"] = testid(ui.number("Stop when idle for (s)", format="%d").props("outlined dense")
                                                 .classes("grow"), "profile-ttl")  # fmt: skip
            with ui.row().classes("w-full gap-2 no-wrap"):
                self.fields["temperature"] = (
                    ui.number("Temperature", step=0.1).props("outlined dense").classes("grow")
                )
                self.fields["top_p"] = ui.number("Top p", step=0.05).props("outlined dense").classes("grow")
                self.fields["max_tokens"] = (
                    ui.number("Max tokens", format="%d").props("outlined dense").classes("grow")
                )
            with ui.row().classes("w-full gap-2 no-wrap"):
                self.fields["prompt_cache_size"] = ui.number("Prompt cache size", format="%d").props(
                    "outlined dense").classes("grow")  # fmt: skip
                self.fields["draft_model"] = (
                    ui.input("Draft model (optional)").props("outlined dense").classes("grow")
                )
            self.thinking = testid(ui.switch("Thinking on by default (enable_thinking)"), "profile-thinking")
            self.fields["autostart"] = testid(ui.switch("Start with mlxui"), "profile-autostart")
            self.form_error = testid(ui.label().classes("text-sm text-negative"), "profile-error")
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=self.close).props("flat")
                testid(ui.button("Save", on_click=self.save), "profile-save")

    def edit(
        self, profile: Profile | None, *, model: str | None = None, copy_of: Profile | None = None
    ) -> None:
        self.original = profile
        source = profile or copy_of
        self.title.text = f"Edit {profile.name}" if profile else "New server profile"
        values: dict[str, Any] = source.editable() if source else {}
        if copy_of and not profile:
            values["name"] = f"{copy_of.name}-copy"
        if source is None:
            values["idle_ttl"] = self.default_ttl
        if model:
            values["model"] = model
            values.setdefault("name", _suggest_name(model))
        model_select = self.fields["model"]
        if values.get("model") and values["model"] not in model_select.options:
            model_select.options[values["model"]] = values["model"]  # a folder or a repo not listed yet
            model_select.update()
        for name, element in self.fields.items():
            element.value = values.get(name)
            element.error = None
        self.fields["autostart"].value = bool(values.get("autostart"))
        self.thinking.value = bool((values.get("chat_template_args") or {}).get("enable_thinking", True))
        self._model_changed()
        self.form_error.text = ""
        self.open()

    async def save(self) -> None:
        values = {name: _clean(element.value) for name, element in self.fields.items()}
        values["autostart"] = bool(self.fields["autostart"].value)
        args = dict(self.original.chat_template_args) if self.original else {}
        if self.thinking.visible:
            args["enable_thinking"] = bool(self.thinking.value)
        values["chat_template_args"] = args
        for element in self.fields.values():
            element.error = None
        try:
            if self.original:
                saved = await self.profiles.update(self.original.name, values)
            else:
                saved = await self.profiles.create(values)
        except ProfileError as exc:
            for field, message in exc.errors.items():
                if field in self.fields:
                    self.fields[field].error = message
            self.form_error.text = "; ".join(
                f"{k}: {v}" for k, v in exc.errors.items() if k not in self.fields
            )
            return
        self.close()
        await self.on_saved(saved)

    def _model_changed(self) -> None:
        entry = next(
            (m for m in self.models if (m.repo_id or str(m.path)) == self.fields["model"].value), None
        )
        supports = bool(entry and entry.capabilities.thinking)
        self.thinking.set_visibility(supports)
        self.thinking_hint.text = (
            f"{'Vision model: served by mlx_vlm.server. ' if entry.capabilities.vision else ''}"
            f"{'Its chat template supports thinking.' if supports else ''}"
            if entry
            else ""
        )


def _model_label(entry: LocalEntry) -> str:
    badges = " · ".join(entry.capabilities.badges()[:4])
    return f"{entry.name}  ({badges})" if badges else entry.name


def _suggest_name(model: str) -> str:
    tail = model.rstrip("/").split("/")[-1]
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in tail)[:64] or "server"


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
