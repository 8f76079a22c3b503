"""The thinking parser gives the same reasoning/content split however the stream is chunked."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlxui.chat.thinking import ReplyText, Segment, ThinkingParser, split_thinking

R, C = "reasoning", "content"
HARMONY = (
    "<|channel|>analysis<|message|>User says hi. Reply briefly.<|end|>"
    "<|start|>assistant<|channel|>final<|message|>Hi! How can I help?<|return|>"
)

# "<|start|>" written as text: no header follows, so nothing may be swallowed.
LITERAL_START = "Begin each message with <|start|>. " + "Then explain. " * 10 + "<think>hm</think>ok"
# A header just within the limit: its <|message|> starts at character 125 of 128.
LONG_HEADER = "<|channel|>analysis" + " " * 117 + "<|message|>deep<|end|>done"

# (reply text, starts_in_thinking, expected blocks)
CASES = [
    pytest.param("Hello there! How can I help?", None, [(C, "Hello there! How can I help?")], id="no-tags"),
    pytest.param("<think>Let me see.</think>Four.", None, [(R, "Let me see."), (C, "Four.")], id="think"),
    pytest.param(
        "<thinking>Hmm, 2+2.</thinking>\n\n4", None, [(R, "Hmm, 2+2."), (C, "\n\n4")], id="thinking"
    ),
    pytest.param("<reasoning>a < b</reasoning>So b.", None, [(R, "a < b"), (C, "So b.")], id="reasoning"),
    pytest.param("[THINK]Short.[/THINK]Done.", None, [(R, "Short."), (C, "Done.")], id="mistral"),
    pytest.param(
        HARMONY, None, [(R, "User says hi. Reply briefly."), (C, "Hi! How can I help?")], id="harmony"
    ),
    pytest.param(
        "<|channel|>analysis<|message|>plan<|end|><|channel|>final<|message|>answer",
        None,
        [(R, "plan"), (C, "answer")],
        id="harmony-no-start",
    ),  # fmt: skip
    pytest.param(
        "I should greet them.</think>Hello!",
        None,
        [(R, "I should greet them."), (C, "Hello!")],
        id="lone-close-auto",
    ),
    pytest.param(
        "I should greet them.</think>Hello!",
        True,
        [(R, "I should greet them."), (C, "Hello!")],
        id="open-tag-prompt",
    ),
    pytest.param("x</think>y", False, [(C, "x</think>y")], id="lone-close-off"),
    pytest.param(
        "<think>still going when the stream ended",
        None,
        [(R, "still going when the stream ended")],
        id="unterminated",
    ),
    pytest.param("thinking without end", True, [(R, "thinking without end")], id="unterminated-open-prompt"),
    pytest.param(
        "Intro <think>aside</think> outro", None, [(C, "Intro "), (R, "aside"), (C, " outro")], id="mid-reply"
    ),
    pytest.param("<think></think>Answer", None, [(C, "Answer")], id="empty-thought"),
    pytest.param("<think>a<thinking>b</think>c", None, [(R, "a<thinking>b"), (C, "c")], id="only-own-close"),
    pytest.param("a <b> c <thi [TH <| x", None, [(C, "a <b> c <thi [TH <| x")], id="near-misses"),
    pytest.param("<think>x</think>y</think>z", None, [(R, "x"), (C, "y</think>z")], id="later-close-is-text"),
    pytest.param(LONG_HEADER, None, [(R, "deep"), (C, "done")], id="long-harmony-header"),
    pytest.param(
        LITERAL_START, None, [(C, LITERAL_START[:-19]), (R, "hm"), (C, "ok")], id="literal-harmony-marker"
    ),
]


def feed_chunks(chunks: list[str], starts_in_thinking: bool | None = None) -> list[tuple[str, str]]:
    parser = ThinkingParser(starts_in_thinking=starts_in_thinking)
    reply = ReplyText()
    for chunk in chunks:
        reply.extend(parser.feed(chunk))
    reply.extend(parser.finish())
    return [tuple(block) for block in reply.blocks]


@pytest.mark.parametrize(("text", "starts", "expected"), CASES)
def test_whole_reply_splits_as_expected(text: str, starts: bool | None, expected: list) -> None:
    assert feed_chunks([text], starts) == expected
    assert [tuple(b) for b in split_thinking(text, starts_in_thinking=starts).blocks] == expected


@pytest.mark.parametrize(("text", "starts", "expected"), CASES)
def test_every_split_point_gives_the_same_result(text: str, starts: bool | None, expected: list) -> None:
    for cut in range(len(text) + 1):
        assert feed_chunks([text[:cut], text[cut:]], starts) == expected, f"split at {cut}: {text[:cut]!r}|"
    assert feed_chunks(list(text), starts) == expected  # one character at a time


@pytest.mark.parametrize(("text", "starts", "expected"), CASES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_random_multi_splits_give_the_same_result(
    text: str, starts: bool | None, expected: list, data
) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    assert feed_chunks(chunks, starts) == expected


FRAGMENTS = [
    "<think>", "</think>", "<thinking>", "</thinking>", "<reasoning>", "</reasoning>", "[THINK]",
    "[/THINK]", "<|channel|>", "<|message|>", "<|start|>", "<|end|>", "<|return|>", "analysis", "final",
    "assistant", "<", "</", "[", "[/", "<|", "|>", "think", ">", "a", " ", "\n", "é", "long text " * 7,
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(FRAGMENTS), max_size=14),
    cuts=st.lists(st.integers(0, 400), max_size=10),
    starts=st.sampled_from([None, True, False]),
)
def test_any_text_any_chunking_matches_the_whole_feed(pieces: list[str], cuts: list[int], starts) -> None:
    text = "".join(pieces)
    points = sorted(c for c in cuts if c <= len(text))
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    assert feed_chunks(chunks, starts) == feed_chunks([text], starts)


def test_text_is_released_at_once_unless_it_may_start_a_tag() -> None:
    parser = ThinkingParser()
    assert parser.feed("Hello") == [Segment(C, "Hello")]  # nothing held back
    assert parser.feed(" <") == [Segment(C, " ")]  # "<" could open a tag
    assert parser.feed("thi") == []  # "<thi" still could
    assert parser.feed("s is fine") == [Segment(C, "<this is fine")]  # no tag after all
    assert parser.feed("<think>pond") == [Segment(R, "pond")]  # inside a thought: same rule
    assert parser.feed("ering</thi") == [Segment(R, "ering")]
    assert parser.feed("nk>") == []
    assert parser.finish() == []


def test_reasoning_from_a_delta_field_passes_straight_through() -> None:
    parser = ThinkingParser()
    reply = ReplyText()
    reply.extend(parser.feed_reasoning("Let me think."))
    reply.extend(parser.feed("The answer is 42!"))
    reply.extend(parser.finish())
    assert (reply.reasoning, reply.content) == ("Let me think.", "The answer is 42!")


def test_a_late_closing_tag_moves_the_shown_text_into_reasoning() -> None:
    parser = ThinkingParser()  # auto: the prompt may have ended with <think>
    first = parser.feed("I think ")
    assert first == [Segment(C, "I think ")]  # shown while we cannot know better
    second = parser.feed("so.</think>Yes.")
    assert second == [Segment("reclassify", "I think "), Segment(R, "so."), Segment(C, "Yes.")]
    reply = ReplyText()
    reply.extend(first + second)
    assert (reply.reasoning, reply.content) == ("I think so.", "Yes.")


def test_harmony_markers_never_reach_the_user() -> None:
    for cut in range(len(HARMONY) + 1):
        parser = ThinkingParser()
        segments = parser.feed(HARMONY[:cut]) + parser.feed(HARMONY[cut:]) + parser.finish()
        assert not any("<|" in s.text or "|>" in s.text for s in segments), cut
