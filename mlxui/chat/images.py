"""Image attachments: checked by their bytes (never by name or claimed type), stored by content hash.

An attachment is a plain dict kept in `Message.attachments`:
`{"path": "<sha256>.<ext>", "mime": "image/png", "bytes": 1234, "width": 64, "height": 48,
"name": "photo.png"}`. `path` is relative to `Config.images_dir` and always one of our own names
(64 hex digits and a known extension), so a crafted database row or import cannot make mlxui read
or delete a file elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from mlxui.format import human_bytes

MAX_IMAGE_BYTES = 10_000_000  # 10 MB, as human_bytes prints it
MAX_IMAGE_PIXELS = 50_000_000  # larger images are decompression bombs on a laptop, not photos
MIME_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
PIL_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
NOT_AN_IMAGE = "That file is not an image mlxui can send (png, jpeg, webp or gif)"
_STORED_NAME = re.compile(r"[0-9a-f]{64}\.(png|jpg|webp|gif)")


class ImageError(ValueError):
    """An attachment that cannot be used; the message is for the user."""

    @property
    def message(self) -> str:
        return str(self.args[0])


def sniff_mime(data: bytes) -> str | None:
    """The image type by its leading bytes (png, jpeg, webp, gif), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def check_image(data: bytes, *, max_bytes: int = MAX_IMAGE_BYTES) -> tuple[str, int, int]:
    """(mime, width, height) of an image we can send, or ImageError saying why not."""
    if len(data) > max_bytes:
        raise ImageError(f"Image too large: {_size(len(data))}, the limit is {_size(max_bytes)}")
    mime = sniff_mime(data)
    if mime is None:
        raise ImageError(NOT_AN_IMAGE)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                detected = PIL_FORMATS.get(image.format or "")
                if width * height > MAX_IMAGE_PIXELS:
                    raise ImageError(
                        f"Image too large: {width}×{height} pixels, the limit is {MAX_IMAGE_PIXELS // 1_000_000} megapixels"
                    )
                image.verify()  # reads the whole file: a truncated or corrupt one fails here
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"Image too large to open safely: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{NOT_AN_IMAGE}: the file is damaged ({exc})") from exc
    if detected != mime:
        raise ImageError(NOT_AN_IMAGE)
    if width < 1 or height < 1:
        raise ImageError(f"{NOT_AN_IMAGE}: it has no pixels")
    return mime, width, height


def store_image(
    data: bytes, images_dir: Path, *, name: str | None = None, max_bytes: int = MAX_IMAGE_BYTES
) -> dict[str, Any]:
    """Check `data` and keep it under `images_dir`; returns the attachment dict.

    The same bytes are stored once (the name is their sha256), so storing twice is harmless.
    Blocking (hashing, Pillow, disk): call it through `asyncio.to_thread` from async code.
    """
    mime, width, height = check_image(data, max_bytes=max_bytes)
    filename = f"{hashlib.sha256(data).hexdigest()}.{MIME_EXTENSIONS[mime]}"
    images_dir = Path(images_dir)
    images_dir.mkdir(parents=True, exist_ok=True)
    target = images_dir / filename
    if not target.exists():
        # Write then rename, so a crash never leaves a half image under the final name.
        fd, tmp = tempfile.mkstemp(dir=images_dir, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    attachment: dict[str, Any] = {
        "path": filename, "mime": mime, "bytes": len(data), "width": width, "height": height,
    }  # fmt: skip
    if name:
        attachment["name"] = display_name(name)
    return attachment


def attachment_file(attachment: dict[str, Any], images_dir: Path) -> Path:
    """The file of a stored attachment; ImageError for anything that is not one of our names."""
    path = attachment.get("path") if isinstance(attachment, dict) else None
    if not isinstance(path, str) or not _STORED_NAME.fullmatch(path):
        raise ImageError(f"Not a stored image: {str(path)[:80]!r}")
    return Path(images_dir) / path


def read_image(attachment: dict[str, Any], images_dir: Path) -> bytes:
    """The stored bytes; ImageError when the file is gone."""
    try:
        return attachment_file(attachment, images_dir).read_bytes()
    except FileNotFoundError as exc:
        raise ImageError(
            f"The image {attachment.get('name') or attachment['path']} is no longer on disk"
        ) from exc


def data_url(attachment: dict[str, Any], images_dir: Path) -> str:
    """`data:<mime>;base64,...` for an OpenAI `image_url` part. Blocking (reads the file)."""
    data = read_image(attachment, images_dir)
    mime = sniff_mime(data)  # the bytes decide, not the stored claim
    if mime is None:
        raise ImageError(f"The stored image {attachment['path']} is damaged")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def delete_image(attachment: dict[str, Any], images_dir: Path) -> bool:
    """Remove a stored image file; False when it was already gone."""
    try:
        attachment_file(attachment, images_dir).unlink()
    except FileNotFoundError:
        return False
    return True


def _size(n: int) -> str:
    return human_bytes(n).replace(".0 ", " ")  # "10 MB", not "10.0 MB"


def display_name(name: str) -> str:
    """A user's file name, fit for display only: no folders, no control characters, bounded."""
    base = re.split(r"[\\/]", name)[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable()).strip()
    return cleaned[:120] or "image"
