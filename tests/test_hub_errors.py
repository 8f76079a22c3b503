"""One Hub error family and one repo-id rule: what huggingface_hub, httpx and the OS raise becomes
the same type and sentence wherever it happens (search, model details, download, CLI), and every
part of the app refuses the same malformed model ids with the same sentence."""

from __future__ import annotations

import errno
from pathlib import Path

import filelock
import httpx
import httpx2
import pytest
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from huggingface_hub.utils import hf_raise_for_status

from mlxui.hub.errors import (
    TOKEN_REFUSED,
    BadRepoId,
    DownloadError,
    GatedRepo,
    HubError,
    HubUnavailable,
    RepoNotFound,
    gated_message,
    hub_error,
)
from mlxui.hub.repo_id import check_repo_id, is_repo_id
from mlxui.servers.profile_rules import model_missing
from mlxui.servers.profiles import resolve_model

ENDPOINT = "http://127.0.0.1:9"
REPO = "org/name"
CONTEXTS = {"asking": None, "downloading": 30.0}  # stall_timeout: None outside a download


def hf_error(status: int, **headers: str) -> HfHubHTTPError:
    """What huggingface_hub itself raises for this answer to a model-info request."""
    request = httpx2.Request("GET", f"{ENDPOINT}/api/models/{REPO}")
    with pytest.raises(HfHubHTTPError) as caught:
        hf_raise_for_status(httpx2.Response(status, request=request, headers=headers))
    return caught.value


def one_sentence(message: str) -> bool:
    return "\n" not in message and message.endswith(".") and len(message) < 300


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize(
    ("raised", "kind", "message"),
    [
        (lambda: hf_error(401, **{"X-Error-Code": "GatedRepo"}), GatedRepo, gated_message(REPO)),
        (lambda: hf_error(403, **{"X-Error-Code": "GatedRepo"}), GatedRepo, gated_message(REPO)),
        (lambda: hf_error(404, **{"X-Error-Code": "RepoNotFound"}), RepoNotFound, f"No model named {REPO} on the Hub."),
        (lambda: hf_error(401, **{"X-Error-Message": "Invalid credentials in Authorization header"}), HubError, TOKEN_REFUSED),
        (lambda: hf_error(404, **{"X-Error-Code": "RevisionNotFound"}), RepoNotFound, f"{REPO} has no such revision on the Hub."),
        (lambda: hf_error(503), HubUnavailable, "The Hub answered 503 (a server error); try again later."),
    ],
    ids=["gated-401", "gated-403", "missing", "token-refused", "no-revision", "server-error"],
)  # fmt: skip
def test_hub_answers_become_the_same_type_and_sentence_everywhere(
    context: str, raised, kind: type[HubError], message: str
) -> None:
    err = hub_error(raised(), endpoint=ENDPOINT, repo_id=REPO, stall_timeout=CONTEXTS[context])
    assert type(err) is kind and err.message == message
    assert err.transient == (kind is HubUnavailable)  # only an overloaded Hub is worth a retry here


@pytest.mark.parametrize("context", CONTEXTS)
def test_a_private_or_missing_repo_without_a_token_says_how_to_add_one(context: str) -> None:
    err = hub_error(
        hf_error(401, **{"X-Error-Code": "RepoNotFound"}),
        endpoint=ENDPOINT,
        repo_id=REPO,
        stall_timeout=CONTEXTS[context],
    )
    assert isinstance(err, RepoNotFound) and not err.transient
    assert err.message.startswith(f"No public model named {REPO} on the Hub") and "HF_TOKEN" in err.message


@pytest.mark.parametrize(
    ("exc", "asking", "downloading"),
    [
        (httpx2.ConnectError("refused"), (HubUnavailable, True), (HubUnavailable, True)),
        (httpx.ConnectError("refused"), (HubUnavailable, True), (HubUnavailable, True)),
        (httpx.ReadTimeout("slow"), (HubUnavailable, True), (DownloadError, True)),
        (httpx.RemoteProtocolError("cut"), (HubUnavailable, True), (DownloadError, True)),
        (OfflineModeIsEnabled("offline"), (HubUnavailable, False), (HubUnavailable, False)),
        (filelock.Timeout("x.lock"), (DownloadError, True), (DownloadError, True)),
        (OSError(errno.ENOSPC, "No space left on device"), (DownloadError, False), (DownloadError, False)),
    ],
    ids=["connect-hf", "connect", "read-timeout", "dropped", "offline-mode", "cache-locked", "disk-full"],
)
def test_transport_and_disk_problems_say_whether_a_retry_helps(
    exc: BaseException, asking: tuple[type, bool], downloading: tuple[type, bool]
) -> None:
    for stall_timeout, (kind, transient) in ((None, asking), (30.0, downloading)):
        err = hub_error(exc, endpoint=ENDPOINT, repo_id=REPO, stall_timeout=stall_timeout)
        assert (type(err), err.transient) == (kind, transient), (exc, stall_timeout, err.message)
        assert one_sentence(err.message), err.message


def test_a_stall_is_worded_for_downloads_and_a_timeout_for_questions() -> None:
    asked = hub_error(httpx2.ReadTimeout("slow"), endpoint=ENDPOINT)
    stalled = hub_error(httpx.ReadTimeout("slow"), endpoint=ENDPOINT, repo_id=REPO, stall_timeout=0.4)
    assert asked.message == f"The Hub at {ENDPOINT} did not answer in time."
    assert stalled.message == "The download stalled: no data for 0.4 s."


def test_a_hub_error_is_kept_as_it_is() -> None:
    err = GatedRepo(gated_message(REPO))
    assert hub_error(err, endpoint=ENDPOINT, stall_timeout=1.0) is err


# ----- the repo-id rule ---------------------------------------------------------------------------
LONG_ID = "a" * 128 + "/" + "b" * 127  # 256 characters


@pytest.mark.parametrize(
    "good", ["mlx-community/Qwen3-0.6B-4bit", "a/b", "org_/name_", "o/" + "n" * 96, "org/x.gi"]
)
def test_model_ids_the_hub_allows(good: str) -> None:
    assert is_repo_id(good) and check_repo_id(f" {good} ") == good


@pytest.mark.parametrize(
    "bad",
    ["../../etc/passwd", "org/..", "org/na..me", "org--x/y", "org/a--b", "org/x.git", "org/name-",
     "org/name.", "_org/name", "org/name/extra", "justaname", "org/na me", "org/\nname", "",
     "o/" + "n" * 97, LONG_ID],
)  # fmt: skip
def test_malformed_model_ids_are_refused_with_one_sentence(bad: str) -> None:
    assert not is_repo_id(bad)
    with pytest.raises(BadRepoId) as caught:
        check_repo_id(bad)
    assert one_sentence(caught.value.message) and "is not a model id" in caught.value.message


def test_a_256_character_id_is_cut_in_its_sentence() -> None:
    with pytest.raises(BadRepoId) as caught:
        check_repo_id(LONG_ID)
    assert caught.value.message.startswith(f"'{'a' * 80}...' is not a model id")
    assert len(model_missing(LONG_ID)) < 200 and one_sentence(model_missing(LONG_ID))


@pytest.mark.parametrize("bad", ["org/a--b", "org/name-", "org/x.git"])
def test_profiles_use_the_same_rule(bad: str, tmp_path: Path) -> None:
    """A profile's model that the Hub would refuse is neither resolved nor passed on (huggingface_hub
    raises for it), and the form says it is not a model id."""
    assert resolve_model(bad, tmp_path) is None
    assert "neither a model id" in model_missing(bad)
    assert (
        model_missing("org/not-here")
        == "org/not-here is not downloaded: download it on the Models page first."
    )
