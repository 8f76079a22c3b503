"""`mlxui models search|info|pull|list|rm`: the Models page from a terminal, with or without the app
running (`pull` hands the download to a running app, see app_pull.py).

They read MLXUI_HOME's database (capability cache, added folders, running servers) when there is
one, and HF_ENDPOINT / HF_TOKEN / HF_HUB_CACHE like every Hugging Face tool. Heavy modules are
imported inside the commands so `mlxui --help` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlxui.cli import folder_commands
from mlxui.cli.app_pull import app_is_running, pull_through_app
from mlxui.cli.common import CliError, human_bytes, print_json
from mlxui.config import Config, load_config

if TYPE_CHECKING:
    from mlxui.cli.progress_bar import ProgressBar
    from mlxui.hub.errors import HubError

OFFLINE_LINE = "Hub unreachable — working offline; local models: mlxui models list"
FIT_WORDS = {"fits": "fits", "tight": "tight", "wont_fit": "WON'T FIT in this machine's memory"}


def add_commands(commands: Any) -> None:
    models = commands.add_parser("models", help="search, inspect, download and delete models")
    sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    search = sub.add_parser("search", help="search the Hub (mlx-community unless --author/--any-author)")
    search.add_argument("query", nargs="?", default="", help="text in the model name (empty: browse)")
    search.add_argument("--limit", type=int, default=20, help="how many results (default 20)")
    search.add_argument(
        "--author", default="mlx-community", help="Hub user or organisation (default mlx-community)"
    )
    search.add_argument("--any-author", action="store_true", help="search every author")
    search.add_argument("--sort", default="downloads", choices=["downloads", "likes", "updated", "trending"])
    search.add_argument("--mlx-only", action="store_true", help="only models tagged for MLX")
    search.add_argument("--json", action="store_true", help="print JSON for scripts")
    search.set_defaults(handler=search_command)

    info = sub.add_parser("info", help="capabilities and memory fit of a Hub model or a local folder")
    info.add_argument("model", metavar="REPO_OR_PATH", help="org/name, or a model folder")
    info.add_argument("--remote", action="store_true", help="ask the Hub even when the model is downloaded")
    info.add_argument("--json", action="store_true", help="print JSON for scripts")
    info.set_defaults(handler=info_command)

    pull = sub.add_parser("pull", help="download a model into the Hugging Face cache (resumable)")
    pull.add_argument("repo", metavar="REPO", help="org/name")
    pull.add_argument("--revision", default="main", help="branch, tag or commit (default main)")
    pull.add_argument(
        "--direct",
        action="store_true",
        help="download in this process even when the app runs (by default a running app does it, "
        "so it shows in its Downloads tile)",
    )
    pull.add_argument(
        "--limit",
        metavar="RATE",
        help="bandwidth limit for this download, e.g. 50MB/s (default: the setting)",
    )
    pull.add_argument(
        "--connections",
        type=int,
        metavar="N",
        help="most connections at once, 1-32 (default: the setting, 16)",
    )
    pull.set_defaults(handler=pull_command)

    list_ = sub.add_parser("list", help="models on this machine (HF cache and added folders)")
    list_.add_argument("--json", action="store_true", help="print JSON for scripts")
    list_.set_defaults(handler=list_command)

    rm = sub.add_parser("rm", help="delete a downloaded model from the Hugging Face cache")
    rm.add_argument("repo", metavar="REPO", help="org/name")
    rm.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    rm.set_defaults(handler=rm_command)
    folder_commands.add_commands(sub)


# ----- search -------------------------------------------------------------------------------------
def search_command(args: argparse.Namespace) -> int:
    from mlxui.hub.search import search_models

    config = load_config()
    if args.limit < 1:
        raise CliError("--limit must be at least 1")

    async def run() -> list[Any]:
        results = await search_models(
            args.query, author=None if args.any_author else args.author, sort=args.sort,
            mlx_only=args.mlx_only, limit=min(args.limit, 100), endpoint=config.hf_endpoint,
        )  # fmt: skip
        while len(results.models) < args.limit and results.has_more:
            if not await results.more():
                break
        return results.models[: args.limit]

    models = _hub_call(lambda: asyncio.run(run()))
    if args.json:
        print_json([m.to_dict() for m in models])
        return 0
    if not models:
        print("No models found.")
        return 0
    print(f"{'MODEL':<56} {'DOWNLOADS':>10} {'LIKES':>6}  {'UPDATED':<10}  NOTES")
    for m in models:
        notes = ", ".join(
            n for n, on in (("MLX", m.is_mlx), ("gated", m.gated), ("private", m.private)) if on
        )
        updated = m.last_modified.date().isoformat() if m.last_modified else "?"
        print(f"{m.repo_id:<56} {m.downloads:>10} {m.likes:>6}  {updated:<10}  {notes}")
    return 0


# ----- info ---------------------------------------------------------------------------------------
def info_command(args: argparse.Namespace) -> int:
    from mlxui.hub import cache
    from mlxui.hub.model_info import read_local_details
    from mlxui.hub.repo_id import check_repo_id

    config = load_config()
    target = args.model.strip()
    path = Path(target).expanduser()
    if path.is_dir():
        details = _hub_call(lambda: read_local_details(path))
    elif target.startswith(("/", ".", "~")):
        raise CliError(f"{target} is not a folder", 1)
    else:
        repo_id = _hub_call(lambda: check_repo_id(target))
        local = [m for m in cache.cached_revisions(config.hf_cache) if m.repo_id == repo_id and m.complete]
        local.sort(key=lambda m: "main" not in m.refs)  # the snapshot main points at, if several
        if local and not args.remote:
            details = _hub_call(lambda: read_local_details(local[0].path, repo_id))
        else:
            details = _hub_call(lambda: asyncio.run(_ask_hub(config, repo_id)))
    data = details.to_dict()
    if args.json:
        print_json(data)
    else:
        _print_details(data)
    return 0


async def _ask_hub(config: Config, repo_id: str) -> Any:
    from mlxui.hub.model_info import get_model_details

    async with database(config) as db_ok:
        return await get_model_details(repo_id, endpoint=config.hf_endpoint, use_db=db_ok)


def _print_details(d: dict[str, Any]) -> None:
    from mlxui.hub.capabilities import format_context, format_parameters, format_quant

    where = f"local folder {d['path']}" if d["source"] == "local" else "the Hub"
    sha = f", commit {d['sha'][:10]}" if d.get("sha") else ""
    print(f"{d['repo_id'] or Path(d['path']).name}  ({where}{sha})")
    rows = [
        ("Architecture", f"{d['architecture'] or '?'} ({d['model_type'] or '?'})"),
        ("Parameters", ("~" if d["parameters_estimated"] else "") + format_parameters(d["parameters"]) if d["parameters"] else "?"),
        ("Quantization", format_quant(d["quant_bits"], d["quant_mode"]) + (f", group {d['quant_group_size']}" if d["quant_group_size"] else "") if d["quant_bits"] or d["quant_mode"] else ("none" + (f" ({d['dtype']})" if d["dtype"] else ""))),
        ("Context", f"{format_context(d['context_length'])} tokens" if d["context_length"] else "?"),
        ("Capabilities", ", ".join(n for n in ("vision", "tools", "thinking", "embeddings", "audio") if d[n]) or "text only"),
        ("Size", f"{human_bytes(d['size_bytes'])} (weights {human_bytes(d['weight_bytes'])})"),
        ("Memory", f"~{human_bytes(d['memory']['total_bytes'])} with {d['memory']['context_tokens']} tokens of context: {FIT_WORDS.get(d['fit'] or '', 'unknown')}"),
        ("Files", str(len(d["files"]))),
    ]  # fmt: skip
    if d["gated"]:
        rows.append(("Access", "gated: needs a Hugging Face token (HF_TOKEN or Settings)"))
    for label, value in rows:
        print(f"  {label:<13} {value}")
    for problem in d["problems"]:
        print(f"  note: {problem}")


# ----- pull ---------------------------------------------------------------------------------------
def pull_command(args: argparse.Namespace) -> int:
    from mlxui.cli.progress_bar import ProgressBar  # tqdm: imported only when pulling
    from mlxui.hub.repo_id import check_repo_id

    config = load_config()
    repo_id = _hub_call(lambda: check_repo_id(args.repo))
    limit, connections = _transfer_flags(args)
    bar = ProgressBar(repo_id, sys.stdout)
    if not args.direct and app_is_running(config):
        if connections is not None:
            raise CliError(
                "--connections applies to --direct pulls; the app uses its setting max-connections.", 2
            )
        asyncio.run(_check_repo(config, repo_id))  # gated, missing, too big: said before anything starts
        pull_through_app(config, repo_id, args.revision, bar, limit=limit)
        print(f"Downloaded {repo_id} (through mlxui at {config.base_url})")
        return 0
    try:
        snapshot = asyncio.run(_pull(config, repo_id, args.revision, bar, limit, connections))
    except KeyboardInterrupt:
        bar.interrupted()
        done = (
            f"{human_bytes(bar.bytes_done)} of {human_bytes(bar.bytes_total)}"
            if bar.bytes_total
            else "what arrived"
        )
        raise CliError(
            f"Interrupted: {done} kept on disk. Run `mlxui models pull {repo_id}` again to resume.", 130
        ) from None
    bar.finish()
    print(f"Downloaded {repo_id} to {snapshot}")
    return 0


def _transfer_flags(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """--limit as bytes/s and --connections, checked; None where not given."""
    from mlxui.hub.bandwidth import parse_rate

    limit = None
    if args.limit is not None:
        try:
            limit = parse_rate(args.limit)
        except ValueError as exc:
            raise CliError(str(exc), 2) from None
    if args.connections is not None and not 1 <= args.connections <= 32:
        raise CliError("--connections must be between 1 and 32.", 2)
    return limit, args.connections


async def _pull(
    config: Config, repo_id: str, revision: str, bar: ProgressBar, limit: int | None, connections: int | None
) -> Path:
    from mlxui.hub.bandwidth import RateLimiter
    from mlxui.hub.download_settings import DownloadSettings
    from mlxui.hub.errors import HubError
    from mlxui.hub.pull import Transfer, pull

    await _check_repo(config, repo_id)
    saved = DownloadSettings()
    async with database(config, create=False) as db_ok:
        if db_ok:
            await saved.load()  # the app's settings, unless the flags say otherwise
    transfer = Transfer(
        max_connections=connections or saved.max_connections,
        limiter=RateLimiter(saved.bandwidth_limit if limit is None else limit),
    )
    try:
        return await pull(
            repo_id,
            revision=revision,
            cache_dir=config.hf_cache,
            endpoint=config.hf_endpoint,
            on_progress=bar.update,
            transfer=transfer,
        )
    except HubError as exc:
        bar.interrupted()
        raise _cli_error(exc) from exc


async def _check_repo(config: Config, repo_id: str) -> None:
    """The small files first: a missing or gated repo fails in a second, before any weight; a model
    too big for this machine gets a warning."""
    from mlxui.hub.errors import HubError
    from mlxui.hub.model_info import get_model_details

    async with database(config) as db_ok:
        try:  # the small files first: a missing or gated repo fails in a second, before any weight
            details = await get_model_details(repo_id, endpoint=config.hf_endpoint, use_db=db_ok)
        except HubError as exc:
            raise _cli_error(exc) from exc
    estimate, verdict = details.memory()
    if verdict == "wont_fit":
        print(
            f"mlxui: warning: {repo_id} needs ~{human_bytes(estimate.total_bytes)} of memory to run; "
            "it will not fit in this machine's memory.",
            file=sys.stderr,
        )


# ----- list and rm --------------------------------------------------------------------------------
def list_command(args: argparse.Namespace) -> int:
    from mlxui.hub.capabilities import format_context, format_quant
    from mlxui.hub.local import list_local_models

    config = load_config()

    async def run() -> list[Any]:
        async with database(config, create=False) as db_ok:
            folders = None if db_ok else []
            return await list_local_models(config.hf_cache, folders=folders, include_incomplete=True)

    entries = asyncio.run(run())
    if args.json:
        print_json([e.to_dict() for e in entries])
        return 0
    if not entries:
        print(f"No models in {config.hf_cache}. Find some with `mlxui models search`.")
        return 0
    print(f"{'MODEL':<48} {'SIZE':>9} {'PARAMS':>7} {'QUANT':>7} {'CONTEXT':>7}  {'FIT':<9}  CAPABILITIES")
    for e in entries:
        c = e.capabilities
        params = c.parameters_label or "?"
        quant = format_quant(c.quant_bits, c.quant_mode) if c.quant_bits or c.quant_mode else "-"
        context = format_context(c.context_length) if c.context_length else "?"
        flags = ", ".join(n for n in ("vision", "tools", "thinking", "embeddings", "audio") if getattr(c, n))
        fit = {"wont_fit": "won't fit"}.get(e.fit or "", e.fit or "?")
        state = e.problem or ("" if e.complete else f"(incomplete: `mlxui models pull {e.name}` resumes it)")
        line = f"{e.name:<48} {human_bytes(e.size_on_disk):>9} {params:>7} {quant:>7} {context:>7}  {fit:<9}  {flags} {state}"
        print(line.rstrip())
    return 0


def rm_command(args: argparse.Namespace) -> int:
    from mlxui.hub import cache
    from mlxui.hub.local import LocalModelError, delete_cached_model, recorded_server_using
    from mlxui.hub.repo_id import check_repo_id

    config = load_config()
    repo_id = _hub_call(lambda: check_repo_id(args.repo))
    folder = cache.repo_dir(config.hf_cache, repo_id)
    if not folder.exists():
        raise CliError(f"{repo_id} is not downloaded (see `mlxui models list`)", 1)
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError(f"Refusing to delete {repo_id} without confirmation: add --yes", 2)
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
        try:
            answer = input(f"Delete {repo_id} ({human_bytes(size)}) from {config.hf_cache}? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing deleted.")
            return 1

    async def run() -> int:
        async with database(config, create=False) as db_ok:
            return await delete_cached_model(
                config.hf_cache, repo_id, in_use=recorded_server_using if db_ok else None
            )

    try:
        freed = asyncio.run(run())
    except LocalModelError as exc:
        raise CliError(exc.message, 1) from exc
    except OSError as exc:
        raise CliError(f"Could not delete {repo_id}: {exc.strerror or exc}", 1) from exc
    print(f"Deleted {repo_id} ({human_bytes(freed)} freed).")
    return 0


# ----- shared -------------------------------------------------------------------------------------
@asynccontextmanager
async def database(config: Config, *, create: bool = True) -> AsyncIterator[bool]:
    """MLXUI_HOME's database for the duration; yields False (and works without it) when absent
    (and not to be created) or unusable."""
    from mlxui.db import DatabaseError, close_db, init_db

    usable = create or config.db_path.exists()
    if usable:
        try:
            await init_db(config.db_path)
        except DatabaseError as exc:
            print(f"mlxui: working without the database: {exc}", file=sys.stderr)
            usable = False
    if not usable:
        yield False
        return
    try:
        yield True
    finally:
        await close_db()


def _hub_call(call: Any) -> Any:
    """Run `call`, turning a HubError into a one-line CliError."""
    from mlxui.hub.errors import HubError

    try:
        return call()
    except HubError as exc:
        raise _cli_error(exc) from exc


def _cli_error(exc: HubError) -> CliError:
    """A HubError as the CLI says it: its sentence; exit 2 for a bad argument, else 1."""
    from mlxui.hub.errors import BadQuery, BadRepoId, HubUnavailable

    if isinstance(exc, HubUnavailable):
        return CliError(f"{OFFLINE_LINE} ({exc.message})", 1)
    return CliError(exc.message, 2 if isinstance(exc, (BadRepoId, BadQuery)) else 1)
