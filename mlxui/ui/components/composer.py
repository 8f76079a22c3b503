"""The message box: text, images (button, drag-and-drop, paste) with removable thumbnails, and a
Send button that turns into Stop while a reply streams."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import events, ui

from mlxui.chat.images import MAX_IMAGE_BYTES, ImageError
from mlxui.ui.testid import testid

# Dropped or pasted image files go through the (hidden) uploader, so big images travel over HTTP
# rather than the websocket.
FORWARD_FILES_JS = """
(() => {
  const box = getHtmlElement(%(box)s);
  const uploader = () => getElement(%(upload)s).$refs.qRef;
  const send = (files) => { const images = [...files].filter(f => f.type.startsWith('image/'));
                            if (images.length) uploader().addFiles(images); return images.length; };
  box.addEventListener('dragover', (e) => { e.preventDefault(); box.classList.add('ring-2'); });
  box.addEventListener('dragleave', () => box.classList.remove('ring-2'));
  box.addEventListener('drop', (e) => { e.preventDefault(); box.classList.remove('ring-2');
                                        send(e.dataTransfer.files); });
  box.addEventListener('paste', (e) => { if (send(e.clipboardData.files)) e.preventDefault(); });
  box.dataset.dropReady = '1';
})();
"""


class Composer(ui.card):
    def __init__(
        self,
        *,
        on_send: Callable[[str, list[dict[str, Any]]], Awaitable[None]],
        on_stop: Callable[[], Awaitable[None] | None],
        attach: Callable[[bytes, str | None], Awaitable[dict[str, Any]]],
        thumbnail_url: Callable[[dict[str, Any]], str],
    ) -> None:
        super().__init__()
        self.on_send, self.on_stop, self.attach, self.thumbnail_url = on_send, on_stop, attach, thumbnail_url
        self.attachments: list[dict[str, Any]] = []
        self.vision = False
        self.busy = False
        self.classes("w-full gap-1 p-2").props("bordered")
        testid(self, "composer")
        with self:
            self.thumbs = testid(ui.row().classes("gap-2"), "thumbnails")
            with ui.row().classes("w-full items-end gap-2 no-wrap"):
                self.attach_button = testid(
                    ui.button(icon="image", on_click=self._pick).props(
                        'flat round aria-label="Attach images"'
                    ),
                    "attach-image",
                )
                self.text = testid(
                    ui.textarea(placeholder="Message… (Enter to send, Shift+Enter for a new line)")
                    .props("autogrow outlined dense input-style='max-height: 30vh'")
                    .classes("grow"),
                    "message-input",
                )  # fmt: skip
                self.text.on("keydown.enter", self._enter, js_handler="(e) => { if (!e.shiftKey) "
                             "{ e.preventDefault(); emit(e); } }")  # fmt: skip
                self.send_button = testid(
                    ui.button(icon="send", on_click=self._send_or_stop).props('round aria-label="Send"'),
                    "send",
                )
            self.hint = testid(ui.label().classes("text-xs text-slate-500"), "composer-hint")
            # The size is checked in the browser first; the server refuses a larger body before
            # reading it (security.BodyLimit), so a huge file never lands in memory.
            self.upload = ui.upload(multiple=True, auto_upload=True, on_upload=self._uploaded, max_files=8,
                                    max_file_size=MAX_IMAGE_BYTES, on_rejected=self._rejected)  # fmt: skip
            self.upload.props('accept="image/png,image/jpeg,image/webp,image/gif"').classes("hidden")
        ui.run_javascript(FORWARD_FILES_JS % {"box": self.id, "upload": self.upload.id})

    def set_vision(self, vision: bool, reason: str = "") -> None:
        """Images are offered only when the server's model can see them."""
        self.vision = vision
        self.attach_button.set_enabled(vision)
        self.attach_button.tooltip("Attach images (or drop / paste them here)" if vision else reason)
        self.hint.text = "" if vision else reason

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.send_button.props(
            f"icon={'stop' if busy else 'send'} color={'negative' if busy else 'primary'} "
            f'aria-label="{"Stop the reply" if busy else "Send"}"'
        )

    async def _enter(self) -> None:
        if not self.busy:
            await self._send_or_stop()

    async def _send_or_stop(self) -> None:
        if self.busy:
            result = self.on_stop()
            if result is not None:
                await result
            return
        text = (self.text.value or "").strip()
        if not text and not self.attachments:
            return
        attachments, self.attachments = self.attachments, []
        self.text.value = ""
        self._draw_thumbs()
        await self.on_send(text, attachments)

    def _pick(self) -> None:
        self.upload.run_method("pickFiles")

    async def _uploaded(self, event: events.UploadEventArguments) -> None:
        self.upload.reset()
        if not self.vision:
            ui.notify(self.hint.text or "This model cannot see images.", type="warning")
            return
        try:
            attachment = await self.attach(await event.file.read(), event.file.name)
        except ImageError as exc:
            ui.notify(exc.message, type="negative")
            return
        self.attachments.append(attachment)
        self._draw_thumbs()

    def _rejected(self) -> None:
        ui.notify(f"Image too large: the limit is {MAX_IMAGE_BYTES // 1_000_000} MB.", type="negative")

    def _draw_thumbs(self) -> None:
        self.thumbs.clear()
        with self.thumbs:
            for attachment in self.attachments:
                with ui.element("div").classes("relative"):
                    testid(ui.image(self.thumbnail_url(attachment)).classes("w-16 h-16 rounded"), "thumbnail")
                    ui.button(icon="close", on_click=lambda a=attachment: self._remove(a)).props(
                        'round dense size=xs color=negative aria-label="Remove the image"'
                    ).classes("absolute -top-2 -right-2")

    def _remove(self, attachment: dict[str, Any]) -> None:
        self.attachments = [a for a in self.attachments if a is not attachment]
        self._draw_thumbs()
