"""Tables. Nothing outside `mlxui.db` writes SQL; services use these models."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Setting(Model):
    """One user preference (dark mode, HF author filter, quit behaviour, ...)."""

    key = fields.CharField(max_length=100, primary_key=True)
    value = fields.JSONField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "settings"


class ServerProfile(Model):
    """How to run one model as a server. The `run_*` fields let a restarted mlxui re-adopt it."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64, unique=True)
    model = fields.CharField(max_length=1024)
    kind = fields.CharField(max_length=8, default="lm")  # "lm" -> mlx_lm.server, "vlm" -> mlx_vlm.server
    port = fields.IntField(null=True)  # None: pick a free port at start
    temperature = fields.FloatField(null=True)
    top_p = fields.FloatField(null=True)
    max_tokens = fields.IntField(null=True)
    prompt_cache_size = fields.IntField(null=True)
    chat_template_args = fields.JSONField(default=dict)
    draft_model = fields.CharField(max_length=1024, null=True)
    autostart = fields.BooleanField(default=False)
    # "keep loaded": never stopped to make room (db_default: SQLite adds NOT NULL columns with one)
    pinned = fields.BooleanField(default=False, db_default=False)
    idle_ttl = fields.IntField(null=True)  # seconds; None: never stop for idleness
    # Distributed (servers/distributed.py): processes per host, the hosts (None: this machine),
    # mlx.launch's backend and hostfile, the Python on the remote hosts, tensor or pipeline.
    ranks = fields.IntField(null=True)
    hosts = fields.JSONField(null=True)
    backend = fields.CharField(max_length=8, null=True)
    hostfile = fields.CharField(max_length=1024, null=True)
    remote_python = fields.CharField(max_length=1024, null=True)
    parallel = fields.CharField(max_length=8, null=True)
    run_pid = fields.IntField(null=True)
    run_started_at = fields.FloatField(null=True)  # psutil create_time of run_pid
    run_cmdline = fields.JSONField(null=True)
    run_port = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "server_profiles"


class Chat(Model):
    id = fields.IntField(primary_key=True)
    profile: fields.ForeignKeyNullableRelation[ServerProfile] = fields.ForeignKeyField(
        "models.ServerProfile", related_name="chats", null=True, on_delete=fields.SET_NULL
    )
    # The name the chat sends as `model` when it has no profile: a local model's repo id or folder
    # (a chat of a profile follows the profile, renames included, and keeps its model here too).
    model = fields.CharField(max_length=1024, null=True)
    title = fields.CharField(max_length=200, default="New chat")
    system_prompt = fields.TextField(default="")
    temperature = fields.FloatField(null=True)
    max_tokens = fields.IntField(null=True)
    thinking = fields.BooleanField(null=True)  # None: the model's default
    # db_default too: SQLite cannot add a NOT NULL column to existing rows without a SQL DEFAULT.
    pinned = fields.BooleanField(default=False, db_default=False)  # pinned chats sort first
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "chats"


class Message(Model):
    id = fields.IntField(primary_key=True)
    chat: fields.ForeignKeyRelation[Chat] = fields.ForeignKeyField(
        "models.Chat", related_name="messages", on_delete=fields.CASCADE
    )
    role = fields.CharField(max_length=16)  # system | user | assistant
    content = fields.TextField(default="")
    reasoning = fields.TextField(null=True)
    attachments = fields.JSONField(default=list)  # [{"path": "images/..", "mime": "image/png"}]
    metrics = fields.JSONField(default=dict)  # ttft_s, tokens_per_s, prompt_tokens, ...
    status = fields.CharField(max_length=16, default="complete")  # complete | partial | failed
    error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "messages"
        ordering = ["id"]


class Download(Model):
    """A model download, kept across restarts so the manager can resume it."""

    id = fields.IntField(primary_key=True)
    repo_id = fields.CharField(max_length=200, unique=True)
    revision = fields.CharField(max_length=200, default="main")
    commit = fields.CharField(max_length=40, null=True)
    state = fields.CharField(max_length=16, default="queued")  # queued|downloading|paused|failed|done
    bytes_done = fields.BigIntField(default=0)
    bytes_total = fields.BigIntField(default=0)
    error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "downloads"


class ModelInfo(Model):
    """Capabilities parsed from a repo's small files, cached so the Hub is asked once."""

    repo_id = fields.CharField(max_length=200, primary_key=True)
    sha = fields.CharField(max_length=40, null=True)
    data = fields.JSONField(default=dict)
    fetched_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "model_info"
