from orjson import loads
from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name="Download",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("repo_id", fields.CharField(unique=True, max_length=200)),
                ("revision", fields.CharField(default="main", max_length=200)),
                ("commit", fields.CharField(null=True, max_length=40)),
                ("state", fields.CharField(default="queued", max_length=16)),
                ("bytes_done", fields.BigIntField(default=0)),
                ("bytes_total", fields.BigIntField(default=0)),
                ("error", fields.TextField(null=True, unique=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "downloads",
                "app": "models",
                "pk_attr": "id",
                "table_description": "A model download, kept across restarts so the manager can resume it.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ModelInfo",
            fields=[
                ("repo_id", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=200)),
                ("sha", fields.CharField(null=True, max_length=40)),
                ("data", fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ("fetched_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "model_info",
                "app": "models",
                "pk_attr": "repo_id",
                "table_description": "Capabilities parsed from a repo's small files, cached so the Hub is asked once.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ServerProfile",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("name", fields.CharField(unique=True, max_length=64)),
                ("model", fields.CharField(max_length=1024)),
                ("kind", fields.CharField(default="lm", max_length=8)),
                ("port", fields.IntField(null=True)),
                ("temperature", fields.FloatField(null=True)),
                ("top_p", fields.FloatField(null=True)),
                ("max_tokens", fields.IntField(null=True)),
                ("prompt_cache_size", fields.IntField(null=True)),
                ("chat_template_args", fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ("draft_model", fields.CharField(null=True, max_length=1024)),
                ("autostart", fields.BooleanField(default=False)),
                ("idle_ttl", fields.IntField(null=True)),
                ("run_pid", fields.IntField(null=True)),
                ("run_started_at", fields.FloatField(null=True)),
                ("run_cmdline", fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ("run_port", fields.IntField(null=True)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "server_profiles",
                "app": "models",
                "pk_attr": "id",
                "table_description": "How to run one model as a server. The `run_*` fields let a restarted mlxui re-adopt it.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Chat",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "profile",
                    fields.ForeignKeyField(
                        "models.ServerProfile",
                        source_field="profile_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="chats",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                ("title", fields.CharField(default="New chat", max_length=200)),
                ("system_prompt", fields.TextField(default="", unique=False)),
                ("temperature", fields.FloatField(null=True)),
                ("max_tokens", fields.IntField(null=True)),
                ("thinking", fields.BooleanField(null=True)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={"table": "chats", "app": "models", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Message",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "chat",
                    fields.ForeignKeyField(
                        "models.Chat",
                        source_field="chat_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="messages",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("role", fields.CharField(max_length=16)),
                ("content", fields.TextField(default="", unique=False)),
                ("reasoning", fields.TextField(null=True, unique=False)),
                ("attachments", fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ("metrics", fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ("status", fields.CharField(default="complete", max_length=16)),
                ("error", fields.TextField(null=True, unique=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={"table": "messages", "app": "models", "pk_attr": "id"},
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Setting",
            fields=[
                ("key", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=100)),
                ("value", fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "settings",
                "app": "models",
                "pk_attr": "key",
                "table_description": "One user preference (dark mode, HF author filter, quit behaviour, ...).",
            },
            bases=["Model"],
        ),
    ]
