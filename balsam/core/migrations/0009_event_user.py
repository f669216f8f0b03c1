"""Every job event records the user who made the change (multi-user DBs).

A nullable column without a default: SQLite adds it with ``ALTER TABLE ADD
COLUMN`` instead of copying the (possibly large) event table, and the 0008
triggers stay. Earlier events keep NULL: their user is unknown.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("balsam", "0008_launchers_and_aggregates"),
    ]

    operations = [
        migrations.AddField(
            model_name="jobevent",
            name="user",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
    ]
