"""The Hub's problems as one family of exceptions, and the one function that words them.

Searching, reading model details, checking a token, downloading and the CLI all raise and catch
these types (`except GatedRepo`, never a comparison of message strings). Each carries `message`,
one sentence a user understands, and `transient`: whether trying again may help (the download
engine retries those with backoff). `hub_error` turns whatever huggingface_hub, httpx or the OS
raised into one of them.
"""

from __future__ import annotations

import errno

import filelock
import httpx
import httpx2  # huggingface_hub's HTTP client; the byte stream of a download uses httpx
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

_TIMEOUTS = (httpx.TimeoutException, httpx2.TimeoutException)
_CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx2.ConnectError, httpx2.ConnectTimeout)
_TRANSPORT_ERRORS = (httpx.TransportError, httpx2.TransportError, ConnectionError)
_STATUS_ERRORS = (httpx.HTTPStatusError, httpx2.HTTPStatusError)


class HubError(Exception):
    """A Hub problem as one sentence a user understands (`message`); `transient`: a retry may help."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


class HubUnavailable(HubError):
    """The Hub cannot be reached or will not answer now (no network, offline mode, a timeout,
    rate limiting, a server error): work offline, or try again later."""


class BadQuery(HubError):
    """The request itself is unusable (search text too long, unknown sort, refused by the Hub)."""


class BadRepoId(HubError):
    """Not a model id of the form org/name, or not a revision (branch, tag or commit)."""


class RepoNotFound(HubError):
    """No such model or revision (or a private model the token cannot see)."""


class GatedRepo(HubError):
    """The model's files need a token with access (gated or private)."""


class DownloadError(HubError):
    """A problem of a download itself: a stall, a dropped connection, a full disk, a corrupted
    file, a download that does not exist."""


# What a Hub call or a download may raise that `hub_error` words; anything else is a bug and
# propagates. (HfHubHTTPError and filelock.Timeout are OSErrors; a body that is not JSON is a ValueError.)
HUB_ERRORS: tuple[type[BaseException], ...] = (
    HubError,
    OSError,
    ValueError,
    httpx.HTTPError,
    httpx2.HTTPError,
)

TOKEN_REFUSED = "The Hub refused the Hugging Face token (invalid credentials): check HF_TOKEN or Settings."


def gated_message(repo_id: str) -> str:
    return (
        f"{repo_id} is gated or private on the Hub: add a Hugging Face token with access to it "
        "(set HF_TOKEN, or in Settings) and accept the model's terms on its Hub page."
    )


def hub_error(
    exc: BaseException, *, endpoint: str, repo_id: str | None = None, stall_timeout: float | None = None
) -> HubError:
    """The HubError for what a Hub call, a transfer or the cache raised (a HubError stays itself).

    `stall_timeout` is given while downloading (the byte stream's read timeout): a timeout then
    means the download stalled, and a lost connection is one that dropped mid-file.
    """
    downloading = stall_timeout is not None
    if isinstance(exc, HubError):
        return exc
    if isinstance(exc, OfflineModeIsEnabled):
        if downloading:
            return HubUnavailable("Offline mode is on (HF_HUB_OFFLINE=1), so nothing can be downloaded.")
        return HubUnavailable("Offline mode is on (HF_HUB_OFFLINE=1): only local models are available.")
    if isinstance(exc, HfHubHTTPError):
        return _hf_http_error(exc, repo_id, downloading)
    if isinstance(exc, _STATUS_ERRORS):
        return status_error(exc.response.status_code, repo_id, downloading=downloading)
    if isinstance(exc, filelock.Timeout):  # before OSError: it is a TimeoutError
        return DownloadError("Another program is downloading the same file.", transient=True)
    if isinstance(exc, _CONNECT_ERRORS):
        if downloading:
            return HubUnavailable(
                f"Cannot reach the Hub at {endpoint}: check the internet connection.", transient=True
            )
        return HubUnavailable(f"Cannot connect to the Hub at {endpoint}.", transient=True)
    if isinstance(exc, _TIMEOUTS):
        if downloading:
            return DownloadError(f"The download stalled: no data for {stall_timeout:g} s.", transient=True)
        return HubUnavailable(f"The Hub at {endpoint} did not answer in time.", transient=True)
    if isinstance(exc, _TRANSPORT_ERRORS):
        if downloading:
            return DownloadError("The connection to the Hub dropped.", transient=True)
        return HubUnavailable(f"Cannot connect to the Hub at {endpoint}.", transient=True)
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return DownloadError("The disk is full: free some space, then retry (the download resumes).")
        if downloading:
            return DownloadError(f"Cannot write to the model cache: {exc.strerror or exc}.")
        return HubError(f"Talking to the Hub failed: {exc.strerror or exc}.")
    if downloading:
        return DownloadError(f"The download failed: {exc}")
    if isinstance(exc, ValueError):  # a body that is not the JSON we expect
        return HubError(f"The Hub at {endpoint} sent an unreadable answer.")
    return HubError(f"Talking to the Hub failed: {exc}")


def status_error(
    status: int, repo_id: str | None, detail: str = "", *, downloading: bool = False
) -> HubError:
    """The HubError for an HTTP status from the Hub (`detail`: what the Hub said, if anything)."""
    if status in (401, 403):  # without a token the Hub answers 401 for gated and private files alike
        return GatedRepo(gated_message(repo_id or "This model"))
    if status == 404 and repo_id:
        return RepoNotFound(f"No model named {repo_id} on the Hub (or it has no such file).")
    if status == 400:
        return BadQuery(f"The Hub rejected the request: {detail or 'HTTP 400'}")
    if status == 429:
        if downloading:
            return HubUnavailable(
                "The Hub is rate-limiting downloads (429); try again in a few minutes.", transient=True
            )
        return HubUnavailable(
            "The Hub is rate-limiting requests (429); try again in a minute.", transient=True
        )
    if status >= 500:
        return HubUnavailable(f"The Hub answered {status} (a server error); try again later.", transient=True)
    if detail:
        return HubError(f"The Hub answered {status}: {detail}")
    return HubError(f"The Hub answered {status}" + (f" for {repo_id}." if repo_id else "."))


def _hf_http_error(exc: HfHubHTTPError, repo_id: str | None, downloading: bool) -> HubError:
    status = exc.response.status_code if exc.response is not None else 0
    if status == 401 and "Invalid credentials" in str(exc):
        return HubError(TOKEN_REFUSED)
    if isinstance(exc, GatedRepoError):  # before RepositoryNotFoundError: it is a subclass
        return GatedRepo(gated_message(repo_id or "This model"))
    if isinstance(exc, RepositoryNotFoundError):
        if status == 401:  # the Hub answers 401 alike for missing, private and gated repos without a token
            return RepoNotFound(
                f"No public model named {repo_id} on the Hub: check the name, or if it is gated or private, "
                "add a Hugging Face token with access to it (set HF_TOKEN, or in Settings)."
            )
        return RepoNotFound(f"No model named {repo_id} on the Hub.")
    if isinstance(exc, RevisionNotFoundError):
        return RepoNotFound(f"{repo_id} has no such revision on the Hub.")
    if isinstance(exc, RemoteEntryNotFoundError):
        return RepoNotFound(
            f"A file of {repo_id} disappeared from the Hub; retry to download the latest version."
        )
    detail = (getattr(exc, "server_message", None) or str(exc).splitlines()[0]).strip()[:200]
    return status_error(status, repo_id, detail, downloading=downloading)
