"""Create or edit a server profile, with a message under each field the server-side rules reject."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from nicegui import ui

from mlxui.hub.local import LocalEntry
from mlxui.servers.profile_rules import NAME_PATTERN
from mlxui.servers.profiles import Profile, ProfileBook, ProfileError
from mlxui.ui.components.distributed_fields import DistributedFields
from mlxui.ui.testid import testid

# What an empty field means (mlx_lm.server's own defaults, mlx-lm 0.32).
PLACEHOLDERS = {
    "port": "auto",
    "idle_ttl": "never",
    "temperature": "server default (0)",
    "top_p": "server default (1)",
    "max_tokens": "server default (512)",
    "prompt_cache_size": "server default (10)",
    "draft_model": "none",
}
# A default shown in a field must not read as a value that was typed.
PLACEHOLDER_CSS = ".profile-editor .q-field__native::placeholder { font-style: italic; opacity: 0.5 }"
HINTS = {
    "prompt_cache_size": "Conversations kept ready, so a follow-up is not read again from the start.",
    "draft_model": "A small model of the same family that drafts tokens for this one: faster replies.",
    "chat_template_args": "Sent to the chat template as chat_template_args: the model reasons before it answers.",
}


class ProfileEditor(ui.dialog):
    """`await ProfileEditor(...).edit(profile_or_None, model=...)` -> the saved Profile or None."""

    def __init__(
        self,
        profiles: ProfileBook,
        models: list[LocalEntry],
        on_saved: Callable[[Profile], Awaitable[None]],
        *,
        taken_names: Callable[[], Iterable[str]] = tuple,
    ):
        super().__init__()
        self.profiles, self.models, self.on_saved = profiles, models, on_saved
        self.taken_names = taken_names  # names of the existing profiles: a suggested name avoids them
        self.original: Profile | None = None
        self.fields: dict[str, ui.element] = {}
        self._auto_name = False  # the name follows the model until the user types one
        self._filling = False  # True while the editor itself sets the name
        ui.add_css(PLACEHOLDER_CSS)
        with self, ui.card().classes("w-[560px] max-w-full gap-3 profile-editor"):
            self.title = ui.label().classes("text-lg font-semibold")
            self.fields["name"] = testid(
                ui.input("Name").props("outlined dense").classes("w-full"), "profile-name"
            )
            self.fields["name"].on_value_change(self._name_typed)
            options = {m.repo_id or str(m.path): _model_label(m) for m in models}
            self.fields["model"] = testid(
                ui.select(options, label="Model (downloaded repo or local folder)", with_input=True,
                          new_value_mode="add-unique").props("outlined dense").classes("w-full"),
                "profile-model",
            )  # fmt: skip
            self.fields["model"].on_value_change(self._model_changed)
            self.thinking_hint = ui.label().classes("text-xs text-slate-500")
            with ui.row().classes("w-full gap-2 no-wrap"):
                self.fields["port"] = _field(ui.number("Port", format="%d"), "profile-port")
                self.fields["idle_ttl"] = _field(
                    ui.number("Stop when idle for (s)", format="%d"), "profile-ttl"
                )
            with ui.row().classes("w-full gap-2 no-wrap"):
                self.fields["temperature"] = _field(ui.number("Temperature", step=0.1), "profile-temperature")
                self.fields["top_p"] = _field(ui.number("Top p", step=0.05), "profile-top-p")
                self.fields["max_tokens"] = _field(ui.number("Max tokens", format="%d"), "profile-max-tokens")
            with ui.row().classes("w-full gap-2 no-wrap items-start"):
                self.fields["prompt_cache_size"] = _field(
                    ui.number("Prompt cache size", format="%d"), "profile-prompt-cache"
                )
                self.fields["draft_model"] = _field(ui.input("Draft model"), "profile-draft-model")
            with ui.column().classes("gap-0"):
                self.thinking = testid(
                    ui.switch("Thinking on by default (enable_thinking)"), "profile-thinking"
                )
                self.thinking_args_hint = testid(
                    ui.label(HINTS["chat_template_args"]).classes("text-xs text-slate-500 pl-11"),
                    "hint-chat_template_args",
                )
                self.thinking_args_hint.bind_visibility_from(self.thinking, "visible")
            with ui.row().classes("gap-4"):
                self.fields["autostart"] = testid(ui.switch("Start with mlxui"), "profile-autostart")
                self.fields["pinned"] = testid(ui.switch("Keep loaded"), "profile-pinned")
                self.fields["pinned"].tooltip("Never stopped to make room for another model")
            self.distributed = DistributedFields()
            self.form_error = testid(ui.label().classes("text-sm text-negative"), "profile-error")
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=self.close).props("flat")
                testid(ui.button("Save", on_click=self.save), "profile-save")

    def edit(
        self, profile: Profile | None, *, model: str | None = None, copy_of: Profile | None = None
    ) -> None:
        self.original = profile
        self._auto_name = profile is None and copy_of is None
        source = profile or copy_of
        self.title.text = f"Edit {profile.name}" if profile else "New server profile"
        values: dict[str, Any] = source.editable() if source else {}
        if copy_of and not profile:
            values["name"] = f"{copy_of.name}-copy"
        if source is None:
            values["idle_ttl"] = self.default_ttl
        if model:
            values["model"] = model
        model_select = self.fields["model"]
        if values.get("model") and values["model"] not in model_select.options:
            model_select.options[values["model"]] = values["model"]  # a folder or a repo not listed yet
            model_select.update()
        self._filling = True
        for name, element in self.fields.items():
            element.value = values.get(name)
            element.error = None
        self._filling = False
        self.distributed.fill(values)
        self.fields["autostart"].value = bool(values.get("autostart"))
        self.fields["pinned"].value = bool(values.get("pinned"))
        self.thinking.value = bool((values.get("chat_template_args") or {}).get("enable_thinking", True))
        self._model_changed()
        self.form_error.text = ""
        self.open()

    async def save(self) -> None:
        values = {name: _clean(element.value) for name, element in self.fields.items()}
        values.update(self.distributed.values())
        values["autostart"] = bool(self.fields["autostart"].value)
        values["pinned"] = bool(self.fields["pinned"].value)
        args = dict(self.original.chat_template_args) if self.original else {}
        if self.thinking.visible:
            args["enable_thinking"] = bool(self.thinking.value)
        values["chat_template_args"] = args
        for element in self.fields.values():
            element.error = None
        self.distributed.show_errors({})
        try:
            if self.original:
                saved = await self.profiles.update(self.original.name, values)
            else:
                saved = await self.profiles.create(values)
        except ProfileError as exc:
            for field, message in exc.errors.items():
                if field in self.fields:
                    self.fields[field].error = message
            self.distributed.show_errors(exc.errors)
            self.form_error.text = "; ".join(
                f"{k}: {v}" for k, v in exc.errors.items() if k not in self.fields | self.distributed.fields
            )
            return
        self.close()
        await self.on_saved(saved)

    def _name_typed(self) -> None:
        """The user's own name stays; clearing it lets the model's name fill in again."""
        if not self._filling and self.original is None:
            self._auto_name = not self.fields["name"].value

    def _fill_name(self) -> None:
        model = self.fields["model"].value
        if not (self._auto_name and model):
            return
        self._filling = True
        self.fields["name"].value = suggest_name(str(model), set(self.taken_names()))
        self._filling = False

    def _model_changed(self) -> None:
        self._fill_name()
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
        self.thinking_hint.set_visibility(bool(self.thinking_hint.text))


def _model_label(entry: LocalEntry) -> str:
    badges = " · ".join(entry.capabilities.badges()[:4])
    return f"{entry.name}  ({badges})" if badges else entry.name


def _field(element: ui.number | ui.input, marker: str) -> ui.number | ui.input:
    """An outlined field whose placeholder shows what an empty value means (the label stays
    above it, so the placeholder is visible before the field is focused) and, for the fields
    named in jargon, a one-line hint under it."""
    name = marker.removeprefix("profile-").replace("-", "_")
    key = {"ttl": "idle_ttl", "prompt_cache": "prompt_cache_size"}.get(name, name)
    element.props("outlined dense stack-label").classes("grow basis-0")
    element.props["placeholder"] = PLACEHOLDERS[key]
    if key in HINTS:
        element.props["hint"] = HINTS[key]
    return testid(element, marker)


def suggest_name(model: str, taken: set[str]) -> str:
    """A valid profile name from a model's short name ("org/Name-4bit" -> "Name-4bit"), with
    "-2", "-3", ... added when a profile already has it."""
    tail = model.rstrip("/").split("/")[-1]
    base = "".join(c if c.isalnum() or c in "._-" else "-" for c in tail).lstrip("-")[:60]
    if not NAME_PATTERN.fullmatch(base):
        base = "server"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
