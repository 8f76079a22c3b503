from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0003_chat_model")]

    initial = False

    operations = [
        ops.AddField(
            model_name="ServerProfile",
            name="pinned",
            field=fields.BooleanField(default=False, db_default=False),
        ),
    ]
