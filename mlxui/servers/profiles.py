"""Server profiles: how to run one model as a server. Validation, CRUD, duplicate, YAML.

A profile names a model that is already on this machine (a repo in the local HF cache or a
folder with config.json); the server kind follows from the model's capabilities (vision ->
mlx_vlm.server, else mlx_lm.server). Validation reports every bad field at once as a
`ProfileError`, whose `errors` map field -> sentence for the form.

The one `ProfileBook` belongs to the `Supervisor` (`supervisor.profiles`): every face (UI, JSON
API, CLI through the API) writes profiles through it. Each write validates, saves, and then lets the
supervisor catch up (`on_change`): a new profile gets its server tile, a deleted one's running
server is stopped, an edited one applies at its next start. Nobody has to remember a reload.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import try_to_load_from_cache
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from mlxui.config import Config
from mlxui.db.models import ServerProfile
from mlxui.hub.capabilities import read_local_capabilities
from mlxui.servers.distributed import first_host_problem, is_distributed, split_problem
from mlxui.servers.profile_rules import (
    EDITABLE_FIELDS,
    KINDS,
    NAME_PATTERN,
    PORT_RANGE,
    REPO_ID,
    VLM_IGNORED_FIELDS,
    FieldChecker,
    ProfileError,
    model_missing,
)

YAML_VERSION = 1
MAX_IMPORT_CHARS = 1024 * 1024
MAX_IMPORT_EVENTS = 200_000  # ~10,000 profiles' worth of YAML nodes


@dataclass(frozen=True)
class Profile:
    """A detached copy of a `ServerProfile` row: safe to hold while the row changes."""

    name: str
    model: str
    kind: str = "lm"
    port: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    prompt_cache_size: int | None = None
    chat_template_args: dict[str, Any] = field(default_factory=dict)
    draft_model: str | None = None
    autostart: bool = False
    pinned: bool = False  # "keep loaded": never stopped to make room for another model
    idle_ttl: int | None = None
    ranks: int | None = None  # distributed (servers/distributed.py): processes per host
    hosts: list[str] | None = None  # None: this machine only
    backend: str | None = None  # mlx.launch --backend; None: ring
    hostfile: str | None = None
    remote_python: str | None = None  # None: this Python's path, on every host
    parallel: str | None = None  # None: tensor; "pipeline" for the families that support it
    id: int | None = None
    run_pid: int | None = None
    run_started_at: float | None = None
    run_cmdline: list[str] | None = None
    run_port: int | None = None
    implicit: bool = False  # a local model's default profile, not in the database (model_defaults.py)

    @classmethod
    def from_row(cls, row: ServerProfile) -> Profile:
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__ if name != "implicit"})

    def editable(self) -> dict[str, Any]:
        """The user's settings, as the form and the YAML export hold them."""
        return {name: getattr(self, name) for name in EDITABLE_FIELDS}


def resolve_model(model: str, hf_cache: Path) -> Path | None:
    """The folder `model` names (a cached repo's snapshot or a local folder), if it has config.json.

    Repo ids resolve like mlx_lm resolves them offline (the `main` ref of the HF cache).
    """
    text = model.strip()
    if REPO_ID.fullmatch(text) and not text.startswith("."):
        found = try_to_load_from_cache(text, "config.json", cache_dir=hf_cache)
        return Path(found).parent if isinstance(found, str) else None
    folder = Path(text).expanduser()
    return folder if folder.is_absolute() and (folder / "config.json").is_file() else None


class ProfileBook:
    """Create, change, copy, delete, export and import server profiles (rows in the DB).

    Writes take turns (one lock), so two creates cannot both pass the name or port check; after each
    one `on_change()` runs before the call returns.
    """

    def __init__(
        self,
        config: Config,
        *,
        on_change: Callable[[], Awaitable[None]],
        default_idle_ttl: Callable[[], int | None],
    ) -> None:
        self.config = config
        self._on_change = on_change
        self._default_idle_ttl = default_idle_ttl
        self._write_lock = asyncio.Lock()

    async def all(self) -> list[Profile]:
        return [Profile.from_row(row) for row in await ServerProfile.all().order_by("name")]

    async def get(self, name: str) -> Profile | None:
        row = await ServerProfile.get_or_none(name=name)
        return None if row is None else Profile.from_row(row)

    async def create(self, values: Mapping[str, Any]) -> Profile:
        """A new profile; without an `idle_ttl` it gets the "default idle stop" setting."""
        if "idle_ttl" not in values:
            values = {**values, "idle_ttl": self._default_idle_ttl()}
        async with self._writing():
            clean = await self.validate(values, others=await self.all())
            try:
                row = await ServerProfile.create(**clean)
            except IntegrityError as exc:  # a name that differs only in case, say
                raise ProfileError("name", f"A profile named {clean['name']!r} already exists.") from exc
            return Profile.from_row(row)

    async def update(self, name: str, changes: Mapping[str, Any]) -> Profile:
        async with self._writing():
            return await self._update(name, changes)

    async def delete(self, name: str) -> None:
        """Delete the profile; its server, if running, is stopped before this returns."""
        async with self._writing():
            row = await self._row(name)
            await row.delete()

    async def duplicate(self, name: str, new_name: str | None = None) -> Profile:
        """A copy named `new_name` (default "<name>-copy", "-copy-2", ...); a fixed port becomes auto."""
        source = Profile.from_row(await self._row(name))
        taken = {p.name.casefold() for p in await self.all()}
        if new_name is None:
            new_name = _free_copy_name(source.name, taken)
        values = {**source.editable(), "name": new_name, "port": None, "autostart": False}
        return await self.create(values)

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[None]:
        async with self._write_lock:
            yield
            # Inside the lock, so fleet updates land in the order of the writes; skipped when the
            # write was refused (it raised), which changed nothing.
            await self._on_change()

    async def _update(self, name: str, changes: Mapping[str, Any]) -> Profile:
        row = await self._row(name)
        current = Profile.from_row(row)
        merged = {**current.editable(), **changes}
        if "model" in changes and "kind" not in changes:
            merged["kind"] = None  # a new model decides its kind again
        others = [p for p in await self.all() if p.id != row.id]
        clean = await self.validate(merged, others=others)
        row.update_from_dict(clean)
        try:
            # Only the user's fields: the supervisor may be writing run_* concurrently.
            await row.save(update_fields=list(clean))
        except IntegrityError as exc:
            raise ProfileError("name", f"A profile named {clean['name']!r} already exists.") from exc
        return Profile.from_row(row)

    async def export_yaml(self) -> str:
        profiles = [p.editable() for p in await self.all()]
        return yaml.dump(  # never with anchors: the import refuses them
            {"version": YAML_VERSION, "profiles": profiles},
            Dumper=_PlainDumper,
            sort_keys=False,
            allow_unicode=True,
        )

    async def import_yaml(self, text: str, *, replace_existing: bool = False) -> list[Profile]:
        """Add the profiles of an export; all or nothing. An existing name is an error unless
        `replace_existing`, which overwrites that profile's settings."""
        async with self._writing():
            return await self._import(text, replace_existing)

    async def _import(self, text: str, replace_existing: bool) -> list[Profile]:
        entries = await asyncio.to_thread(_parse_export, text)  # never parse on the event loop
        existing = {p.name: p for p in await self.all()}
        imported_names = {str(e.get("name")) for e in entries}
        others = [p for n, p in existing.items() if n not in imported_names or not replace_existing]
        cleaned: list[dict[str, Any]] = []
        for index, entry in enumerate(entries):
            label = f"profiles[{index}] ({entry.get('name', '?')})"
            if entry.get("name") in existing and not replace_existing:
                raise ProfileError(f"{label}.name", f"A profile named {entry['name']!r} already exists.")
            try:
                clean = await self.validate(entry, others=others)
            except ProfileError as exc:
                errors = {f"{label}.{k}": v for k, v in exc.errors.items()}
                first = next(iter(errors))
                raise ProfileError(first, errors[first], errors) from exc
            cleaned.append(clean)
            others.append(Profile(**clean))
        async with in_transaction():
            for clean in cleaned:
                row = await ServerProfile.get_or_none(name=clean["name"])
                if row is None:
                    await ServerProfile.create(**clean)
                else:
                    row.update_from_dict(clean)
                    await row.save(update_fields=list(clean))
        return [p for p in await self.all() if p.name in imported_names]

    async def validate(self, values: Mapping[str, Any], *, others: Iterable[Profile] = ()) -> dict[str, Any]:
        """Checked, normalised editable fields; raises ProfileError naming every bad field.

        `others` are the profiles this one must not clash with (name, fixed port).
        """
        checker = FieldChecker(dict(values))
        clean = checker.run(list(others), own_port=self.config.port)
        model_folder = None
        if "model" not in checker.errors:
            model_folder = await asyncio.to_thread(resolve_model, clean["model"], self.config.hf_cache)
            if model_folder is None:
                checker.fail("model", model_missing(clean["model"]))
        if clean.get("draft_model") and "draft_model" not in checker.errors:
            draft = await asyncio.to_thread(resolve_model, clean["draft_model"], self.config.hf_cache)
            if draft is None:
                checker.fail("draft_model", model_missing(clean["draft_model"]))
        if checker.errors:
            first = next(iter(checker.errors))
            raise ProfileError(first, checker.errors[first], checker.errors)
        if clean["kind"] is None:
            assert model_folder is not None  # no model error above means it resolved
            caps = await asyncio.to_thread(read_local_capabilities, model_folder)
            clean["kind"] = "vlm" if caps.vision else "lm"
        candidate = Profile(**clean)
        if is_distributed(candidate):
            assert model_folder is not None
            problem = await asyncio.to_thread(split_problem, candidate, model_folder)
            problem = problem or first_host_problem(candidate.hosts or [])
            if problem:
                field_name = "parallel" if candidate.parallel else "hosts" if candidate.hosts else "ranks"
                raise ProfileError(field_name, problem)
        return clean

    async def _row(self, name: str) -> ServerProfile:
        row = await ServerProfile.get_or_none(name=name)
        if row is None:
            raise ProfileError("name", f"There is no profile named {name!r}.")
        return row


class _PlainDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _free_copy_name(name: str, taken: set[str]) -> str:
    base = f"{name[:59]}-copy"
    candidate, n = base, 2
    while candidate.casefold() in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def _parse_export(text: str) -> list[dict[str, Any]]:
    """The entries of an export. Anchors and aliases are refused before anything is built: an
    "alias bomb" of a few hundred bytes would otherwise expand to billions of nodes."""
    if len(text) > MAX_IMPORT_CHARS:
        raise ProfileError(
            "file", f"The file is larger than {MAX_IMPORT_CHARS // 1024} KB; an export is far smaller."
        )
    try:
        for count, event in enumerate(yaml.parse(text, Loader=yaml.SafeLoader)):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ProfileError("file", "YAML anchors and aliases (& and *) are not allowed in an export.")
            if count > MAX_IMPORT_EVENTS:
                raise ProfileError("file", "The file holds far more than a profile export does.")
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError("file", f"This is not a YAML file: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("profiles"), list):
        version = data.get("version", YAML_VERSION)
        if version != YAML_VERSION:
            raise ProfileError("file", f"This export has version {version!r}; this mlxui reads version 1.")
        entries = data["profiles"]
    elif isinstance(data, list):  # a bare list of profiles is accepted too
        entries = data
    else:
        raise ProfileError("file", "Expected a mapping with a 'profiles' list (what Export writes).")
    if not all(isinstance(e, dict) for e in entries):
        raise ProfileError("file", "Each entry under 'profiles' must be a mapping of settings.")
    names = [str(e.get("name")) for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ProfileError("file", f"The file names these profiles twice: {', '.join(duplicates)}.")
    return entries


def profile_as_dict(profile: Profile) -> dict[str, Any]:
    """Every field, JSON-safe (for APIs such as the CLI's `servers list --json`)."""
    return asdict(profile)


__all__ = [
    "EDITABLE_FIELDS",
    "KINDS",
    "NAME_PATTERN",
    "PORT_RANGE",
    "VLM_IGNORED_FIELDS",
    "Profile",
    "ProfileBook",
    "ProfileError",
    "profile_as_dict",
    "resolve_model",
]
