"""Hugging Face token: shown masked, checked against the Hub, stored in huggingface_hub's store."""

from __future__ import annotations

from nicegui import ui

from mlxui.hub.errors import HubError
from mlxui.hub.token import check_token, forget_token, masked_token, save_token, token_from_environment
from mlxui.ui.testid import testid


class HfTokenCard(ui.card):
    def __init__(self, endpoint: str) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.classes("w-full gap-2").props("bordered")
        with self:
            ui.label("Hugging Face token").classes("text-lg font-semibold")
            ui.label(
                "Needed for gated or private models. Stored where every Hugging Face tool finds it."
            ).classes("text-sm text-slate-500")
            self.current = testid(ui.label().classes("text-sm"), "token-current")
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                self.field = testid(
                    ui.input("New token", password=True, password_toggle_button=True)
                    .props("dense outlined autocomplete=off")
                    .classes("grow"),
                    "token-input",
                )
                testid(ui.button("Check", on_click=self.check).props("outline no-caps"), "token-check")
                testid(ui.button("Save", on_click=self.save).props("no-caps"), "token-save")
                self.remove = testid(
                    ui.button("Remove", on_click=self.forget).props("flat no-caps color=negative"),
                    "token-remove",
                )
            self.result = testid(ui.label().classes("text-sm"), "token-result")
        self.show_current()

    def show_current(self) -> None:
        masked = masked_token()
        source = " (from the HF_TOKEN environment variable)" if token_from_environment() else ""
        self.current.text = f"Token in use: {masked}{source}" if masked else "No token saved."
        self.remove.set_visibility(bool(masked) and not source)

    async def check(self) -> None:
        await self._run(check_token, "is valid")

    async def save(self) -> None:
        if await self._run(save_token, "is saved"):
            self.field.value = ""
            self.show_current()

    async def forget(self) -> None:
        await forget_token()
        self.show_current()
        self._say("Token removed.", ok=True)

    async def _run(self, action, verb: str) -> bool:
        try:
            name = await action(self.field.value or "", self.endpoint)
        except HubError as exc:
            self._say(exc.message, ok=False)
            return False
        self._say(f"The token {verb}: it belongs to {name}.", ok=True)
        return True

    def _say(self, text: str, *, ok: bool) -> None:
        self.result.text = text
        self.result.classes(replace="text-sm " + ("text-positive" if ok else "text-negative"))
