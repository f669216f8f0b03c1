"""Each lease carries the time it lapses (set by its holder with its own
expiry) instead of every launcher judging others' heartbeats by its own
expiry. Leases held during the upgrade lapse 180 s (the default expiry)
after their last heartbeat."""

import datetime

from django.db import migrations, models

DEFAULT_LEASE_EXPIRY_SEC = 180


def expiry_from_heartbeats(apps, schema_editor):
    BalsamJob = apps.get_model("balsam", "BalsamJob")
    leased = BalsamJob.objects.exclude(lease_owner="").exclude(lease_heartbeat__isnull=True)
    for pk, heartbeat in leased.values_list("pk", "lease_heartbeat"):
        BalsamJob.objects.filter(pk=pk).update(
            lease_expires_at=heartbeat + datetime.timedelta(seconds=DEFAULT_LEASE_EXPIRY_SEC))


class Migration(migrations.Migration):

    dependencies = [
        ("balsam", "0005_timeout_retries"),
    ]

    operations = [
        migrations.AddField(
            model_name="balsamjob",
            name="lease_expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(expiry_from_heartbeats, migrations.RunPython.noop),
    ]
