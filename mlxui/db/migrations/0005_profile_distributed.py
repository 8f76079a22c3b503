from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0004_profile_pinned")]

    initial = False

    operations = [
        ops.AddField(model_name="ServerProfile", name="ranks", field=fields.IntField(null=True)),
        ops.AddField(model_name="ServerProfile", name="hosts", field=fields.JSONField(null=True)),
        ops.AddField(
            model_name="ServerProfile", name="backend", field=fields.CharField(max_length=8, null=True)
        ),
        ops.AddField(
            model_name="ServerProfile", name="hostfile", field=fields.CharField(max_length=1024, null=True)
        ),
        ops.AddField(
            model_name="ServerProfile",
            name="remote_python",
            field=fields.CharField(max_length=1024, null=True),
        ),
        ops.AddField(
            model_name="ServerProfile", name="parallel", field=fields.CharField(max_length=8, null=True)
        ),
    ]
