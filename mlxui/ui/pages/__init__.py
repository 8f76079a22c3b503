"""Page routes. Each page module only arranges components inside the shared frame."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi.responses import RedirectResponse
from nicegui import app, ui

from mlxui.ui.pages import chat_page, models_page, servers_page, settings_page

if TYPE_CHECKING:
    from mlxui.services import Services


def register_pages(services: Services) -> None:
    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/models")

    @ui.page("/models", title="Models · mlxui")
    async def models(q: str = "", author: str = models_page.DEFAULT_AUTHOR, tab: str = "hub") -> None:
        await services.wait_started()
        await models_page.build(services, query=q, author=author, tab=tab)

    @ui.page("/servers", title="Servers · mlxui")
    async def servers(model: str = "") -> None:
        await services.wait_started()
        await servers_page.build(services, model=model)

    @ui.page("/chat", title="Chat · mlxui")
    async def chat(server: str = "", chat: int | None = None) -> None:
        await services.wait_started()
        await chat_page.build(services, server=server, chat=chat)

    @ui.page("/chat/{chat_id}", title="Chat · mlxui")
    async def one_chat(chat_id: int) -> None:
        await services.wait_started()
        await chat_page.build(services, chat=chat_id)

    @ui.page("/settings", title="Settings · mlxui")
    async def settings() -> None:
        await services.wait_started()
        await settings_page.build(services)
