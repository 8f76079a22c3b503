"""Split a streamed reply into reasoning ("thinking") and content, however the text is chunked.

Models deliver their thoughts in several ways; the parser handles all of them:

- a separate delta field (`reasoning` from mlx_lm.server, `reasoning_content` from mlx_vlm.server):
  the client hands it to `feed_reasoning`, which passes it straight through;
- inline tags in the content: `<think>…</think>`, `<thinking>…</thinking>`,
  `<reasoning>…</reasoning>`, `[THINK]…[/THINK]`;
- a reply that starts mid-thought because the prompt ended with an open tag, so only the closing
  tag arrives (`starts_in_thinking=True`, or auto-detected: see `ThinkingParser`);
- gpt-oss harmony channels: `<|channel|>analysis<|message|>…<|end|>` is reasoning,
  `<|start|>assistant<|channel|>final<|message|>…<|return|>` is content; markers are removed.

The parser emits text as soon as it cannot be part of a marker: it holds back only the longest
suffix that is a proper prefix of a marker it is waiting for ("<thi" while in content).
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Protocol

SegmentKind = Literal["reasoning", "content", "reclassify"]

# Opening tag -> its closing tag.
TAG_PAIRS: dict[str, str] = {
    "<think>": "</think>",
    "<thinking>": "</thinking>",
    "<reasoning>": "</reasoning>",
    "[THINK]": "[/THINK]",
}
CLOSE_TAGS: tuple[str, ...] = tuple(TAG_PAIRS.values())

# Harmony (gpt-oss) markers.
H_START, H_CHANNEL, H_MESSAGE = "<|start|>", "<|channel|>", "<|message|>"
H_ENDS: tuple[str, ...] = ("<|end|>", "<|return|>", "<|call|>")
HARMONY_MARKERS: tuple[str, ...] = (H_START, H_CHANNEL, H_MESSAGE, *H_ENDS)
REASONING_CHANNELS = frozenset({"analysis"})  # every other channel (final, commentary) is shown
# A harmony header ("<|start|>assistant<|channel|>final<|message|>") is short. A "<|start|>" with no
# <|message|> within this many characters was ordinary text: it is shown, never swallowed.
HEADER_LIMIT = 128


class Segment(NamedTuple):
    """A piece of the reply.

    kind "reasoning" / "content": append `text` to that part of the reply.
    kind "reclassify": everything emitted as content so far (exactly `text`) was reasoning after
    all: remove it from the content and append it to the reasoning. It happens at most once per
    reply, only in auto-detect mode, when a closing tag arrives that no opening tag preceded.
    """

    kind: SegmentKind
    text: str


class _Piece(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def text(self) -> str: ...


class ThinkingParser:
    """Streaming parser: `feed(text)` for content deltas, `feed_reasoning(text)` for reasoning
    delta fields, `finish()` once at the end. Each returns the segments that became certain.

    `starts_in_thinking`:
      True  -- the prompt ended with an open tag: text is reasoning until a closing tag.
      False -- a closing tag without an opening tag is ordinary text.
      None  -- auto: text is shown as content, but if a closing tag arrives before any other tag
               or marker, the text before it was reasoning (a "reclassify" segment says so).
    """

    def __init__(self, *, starts_in_thinking: bool | None = None) -> None:
        self._buffer = ""  # text not yet emitted: the held-back partial marker, or a harmony header
        self._mode: Literal["content", "tag", "header", "harmony"] = "content"
        self._closers: tuple[str, ...] = CLOSE_TAGS if starts_in_thinking else ()
        if starts_in_thinking:
            self._mode = "tag"
        self._channel_is_reasoning = False  # inside a harmony message
        self._provisional = ""  # content emitted while undecided (auto mode, no marker seen yet)
        self._undecided = starts_in_thinking is None
        self._header_has_channel = False
        self._header_raw = ""  # the header's text so far, shown if it turns out not to be one

    def feed(self, text: str) -> list[Segment]:
        """Content text from the stream; returns the segments that are certain now."""
        if not text:
            return []
        self._buffer += text
        return self._scan(final=False)

    def feed_reasoning(self, text: str) -> list[Segment]:
        """Reasoning the server already separated (delta `reasoning` / `reasoning_content`)."""
        if not text:
            return []
        # The server splits thinking itself, so a stray closing tag in the content is not ours to read.
        self._undecided = False
        return [Segment("reasoning", text)]

    def finish(self) -> list[Segment]:
        """The stream ended: flush what was held back. An unterminated thought stays reasoning."""
        segments = self._scan(final=True)
        rest, self._buffer = self._buffer, ""
        if self._mode == "header":
            return segments  # a cut-off harmony header (at most HEADER_LIMIT characters) is markup
        self._emit(segments, self._current_kind(), rest)
        return segments

    # ----- scanning -------------------------------------------------------------------------------
    def _scan(self, *, final: bool) -> list[Segment]:
        segments: list[Segment] = []
        while True:
            markers = self._markers()
            found = _earliest(self._buffer, markers)
            if self._mode == "header" and self._header_overflows(found, markers, final=final):
                self._mode = "content"  # not a header after all: show it, then read on as content
                self._emit(segments, "content", self._header_raw)
                continue
            if found is None:
                break
            at, marker = found
            before, self._buffer = self._buffer[:at], self._buffer[at + len(marker) :]
            self._on_marker(segments, before, marker)
        if final or self._mode == "header":
            return segments  # a header is consumed whole when its <|message|> arrives
        keep = _partial_suffix(self._buffer, markers)
        text = self._buffer[: len(self._buffer) - keep]
        self._buffer = self._buffer[len(self._buffer) - keep :]
        self._emit(segments, self._current_kind(), text)
        return segments

    def _markers(self) -> tuple[str, ...]:
        if self._mode == "tag":
            return self._closers
        if self._mode == "header":
            return (H_CHANNEL, H_MESSAGE, *H_ENDS)
        if self._mode == "harmony":
            return (H_START, H_CHANNEL, *H_ENDS)
        opening = (*TAG_PAIRS, *HARMONY_MARKERS)
        return (*opening, *CLOSE_TAGS) if self._undecided else opening

    def _on_marker(self, segments: list[Segment], before: str, marker: str) -> None:
        mode = self._mode
        if mode == "header":
            self._on_header_marker(before, marker)
            return
        if mode == "tag":  # the closing tag of a thought
            self._emit(segments, "reasoning", before)
            self._mode = "content"
            self._undecided = False
            return
        if mode == "content" and marker in CLOSE_TAGS:  # undecided: a lone closing tag
            if self._provisional:
                segments.append(Segment("reclassify", self._provisional))
            self._provisional = ""
            self._emit(segments, "reasoning", before)
            self._undecided = False
            return
        self._emit(segments, self._current_kind(), before)
        self._undecided = False
        if marker in TAG_PAIRS:
            self._mode, self._closers = "tag", (TAG_PAIRS[marker],)
        elif marker in (H_START, H_CHANNEL):
            self._mode = "header"
            self._header_has_channel = marker == H_CHANNEL
            self._header_raw = marker
        elif marker in H_ENDS:
            self._mode = "content"  # between harmony messages
        # a stray <|message|> outside a header is dropped

    def _on_header_marker(self, before: str, marker: str) -> None:
        if marker == H_CHANNEL:  # "<|start|>assistant<|channel|>final": the role does not matter
            self._header_has_channel = True
            self._header_raw += before + marker
        elif marker == H_MESSAGE:
            words = before.split() if self._header_has_channel else []
            self._channel_is_reasoning = bool(words) and words[0] in REASONING_CHANNELS
            self._mode = "harmony"
        else:  # an end marker right after a header: an empty message
            self._mode = "content"

    def _header_overflows(
        self, found: tuple[int, str] | None, markers: tuple[str, ...], *, final: bool
    ) -> bool:
        """True when no header marker can start within HEADER_LIMIT characters. Decided on the
        text alone (the earliest place a marker can still start only moves forward), so
        chunking cannot change the outcome."""
        if found is not None:
            return found[0] > HEADER_LIMIT
        if final:
            return len(self._buffer) > HEADER_LIMIT
        return len(self._buffer) - _partial_suffix(self._buffer, markers) > HEADER_LIMIT

    def _current_kind(self) -> Literal["reasoning", "content"]:
        if self._mode == "tag" or (self._mode == "harmony" and self._channel_is_reasoning):
            return "reasoning"
        return "content"

    def _emit(self, segments: list[Segment], kind: Literal["reasoning", "content"], text: str) -> None:
        if not text:
            return
        if kind == "content" and self._undecided:
            self._provisional += text
        if segments and segments[-1].kind == kind:
            segments[-1] = Segment(kind, segments[-1].text + text)
        else:
            segments.append(Segment(kind, text))


class ReplyText:
    """The reasoning and content of one reply, built by applying segments (or client events with
    the same `kind`/`text`). `blocks` keeps their order, adjacent pieces of one kind merged."""

    def __init__(self) -> None:
        self.blocks: list[Segment] = []

    def add(self, piece: _Piece) -> None:
        kind, text = piece.kind, piece.text
        if not text:
            return
        if kind == "reclassify":
            # Only provisional content precedes a reclassify, so all content blocks move.
            self.blocks = [b for b in self.blocks if b.kind != "content"]
            kind = "reasoning"
        if kind not in ("reasoning", "content"):
            raise ValueError(f"unknown segment kind {kind!r}")
        if self.blocks and self.blocks[-1].kind == kind:
            self.blocks[-1] = Segment(kind, self.blocks[-1].text + text)
        else:
            self.blocks.append(Segment(kind, text))  # type: ignore[arg-type]

    def extend(self, pieces: list[Segment]) -> None:
        for piece in pieces:
            self.add(piece)

    @property
    def reasoning(self) -> str:
        return "".join(b.text for b in self.blocks if b.kind == "reasoning")

    @property
    def content(self) -> str:
        return "".join(b.text for b in self.blocks if b.kind == "content")


def split_thinking(text: str, *, starts_in_thinking: bool | None = None) -> ReplyText:
    """Parse a whole reply at once (for stored text and tests)."""
    parser = ThinkingParser(starts_in_thinking=starts_in_thinking)
    reply = ReplyText()
    reply.extend(parser.feed(text))
    reply.extend(parser.finish())
    return reply


def _earliest(text: str, markers: tuple[str, ...]) -> tuple[int, str] | None:
    best: tuple[int, str] | None = None
    for marker in markers:
        at = text.find(marker)
        if at >= 0 and (best is None or at < best[0]):
            best = (at, marker)
    return best


def _partial_suffix(text: str, markers: tuple[str, ...]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of one of `markers`."""
    longest = max((len(m) for m in markers), default=1) - 1
    for size in range(min(longest, len(text)), 0, -1):
        tail = text[-size:]
        if any(m.startswith(tail) for m in markers):
            return size
    return 0
