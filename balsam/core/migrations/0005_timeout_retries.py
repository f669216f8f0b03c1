"""Count each job's reruns after running past its wall time in a field
(``timeout_retries``) instead of matching event messages; filled from the
events earlier launchers wrote ("timed out; retry N of M")."""

from django.db import migrations, models
from django.db.models import Count

# The message prefix launchers wrote on those reruns before the field existed
# ("timed out; retry 2 of 5"). The space matters: a rerun after a launcher
# stopped reads "timed out; retrying" and was never the job's fault (the
# message match the launcher used before this field counted it anyway).
OVERRUN_RETRY_MESSAGE = "timed out; retry "


def count_from_events(apps, schema_editor):
    JobEvent = apps.get_model("balsam", "JobEvent")
    BalsamJob = apps.get_model("balsam", "BalsamJob")
    reruns = (JobEvent.objects.filter(to_state="RESTART_READY", message__startswith=OVERRUN_RETRY_MESSAGE)
              .values("job_id").annotate(n=Count("*")).values_list("job_id", "n"))
    by_count = {}
    for job, n in reruns:
        by_count.setdefault(n, []).append(job)
    for n, jobs in by_count.items():
        for start in range(0, len(jobs), 500):
            BalsamJob.objects.filter(pk__in=jobs[start:start + 500]).update(timeout_retries=n)


class Migration(migrations.Migration):

    dependencies = [
        ("balsam", "0004_queued_launches"),
    ]

    operations = [
        migrations.AddField(
            model_name="balsamjob",
            name="timeout_retries",
            field=models.IntegerField(default=0),
        ),
        migrations.RunPython(count_from_events, migrations.RunPython.noop),
    ]
