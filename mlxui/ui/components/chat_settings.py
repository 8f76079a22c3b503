"""Per-chat settings: system prompt, temperature, max tokens and thinking (when the model has it)."""

from __future__ import annotations

from nicegui import ui

from mlxui.chat.store import ChatInfo, ChatStore, ChatStoreError
from mlxui.ui.testid import testid


async def edit_chat_settings(
    store: ChatStore, chat: ChatInfo, *, thinking_supported: bool
) -> ChatInfo | None:
    with ui.dialog() as dialog, ui.card().classes("w-[560px] max-w-full gap-2"):
        ui.label("Chat settings").classes("text-lg font-semibold")
        prompt = testid(
            ui.textarea("System prompt", value=chat.system_prompt)
            .props("outlined autogrow")
            .classes("w-full"),
            "system-prompt",
        )
        with ui.row().classes("w-full gap-2 no-wrap"):
            temperature = ui.number("Temperature (blank: server default)", value=chat.temperature, step=0.1,
                                    min=0, max=2).props("outlined dense").classes("grow")  # fmt: skip
            max_tokens = ui.number("Max tokens (blank: default)", value=chat.max_tokens, format="%d", min=1).props(
                "outlined dense").classes("grow")  # fmt: skip
        thinking = testid(ui.switch("Thinking", value=chat.thinking is not False), "chat-thinking")
        thinking.set_visibility(thinking_supported)
        error = ui.label().classes("text-negative text-sm")
        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=lambda: dialog.submit(None)).props("flat")

            async def save() -> None:
                try:
                    saved = await store.update_settings(
                        chat.id,
                        system_prompt=prompt.value or "",
                        temperature=temperature.value,
                        max_tokens=int(max_tokens.value) if max_tokens.value else None,
                        thinking=bool(thinking.value) if thinking_supported else None,
                    )
                except ChatStoreError as exc:
                    error.text = exc.message
                    return
                dialog.submit(saved)

            testid(ui.button("Save", on_click=save), "chat-settings-save")
    return await dialog
