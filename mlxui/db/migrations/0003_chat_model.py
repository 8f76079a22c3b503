from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0002_chat_pinned")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Chat",
            name="model",
            field=fields.CharField(max_length=1024, null=True),
        ),
    ]
