"""The (workflow, state) index of jobs gains the time each job entered its
state, so that a launcher's claims and dependency passes read a workflow's
jobs in a state in that order and stop after a few, instead of sorting every
one of them (``queries.IN_STATE_ORDER``). On SQLite an index is dropped and
made without rebuilding the table (the 0008 triggers stay)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("balsam", "0011_pg_event_user"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="balsamjob", name="balsam_job_wf_state"),
        migrations.AddIndex(
            model_name="balsamjob",
            index=models.Index(fields=["workflow", "state", "state_changed_at"], name="balsam_job_wf_state_time"),
        ),
    ]
