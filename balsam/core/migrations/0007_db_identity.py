"""Every DB gets an identity: a random id, made here for existing DBs and at
`balsam init` for new ones (this migration runs there too)."""

import uuid

from django.db import migrations, models


def make_identity(apps, schema_editor):
    apps.get_model("balsam", "DBIdentity").objects.create(db_id=uuid.uuid4().hex)


class Migration(migrations.Migration):

    dependencies = [
        ("balsam", "0006_lease_expires_at"),
    ]

    operations = [
        migrations.CreateModel(
            name="DBIdentity",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("db_id", models.CharField(max_length=32)),
            ],
            options={"db_table": "balsam_db_identity"},
        ),
        migrations.RunPython(make_identity, migrations.RunPython.noop),
    ]
