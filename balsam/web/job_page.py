"""The read-only parts of a job's admin page: its history, its parents and
children as links, and the tail of its output file (``core.outputs``: the
last lines within the file's last 64 KiB). Every read is bounded, so
a job with a long history or a huge output renders as fast as any other."""

from pathlib import Path

from django.urls import reverse
from django.utils.html import format_html, format_html_join

from balsam.core import outputs, queries
from balsam.core.models import BalsamJob

EVENTS_SHOWN = 200
RELATIVES_SHOWN = 50
TAIL_LINES = 40


def job_url(pk):
    return reverse("admin:balsam_balsamjob_change", args=[pk])


def _links(ids):
    if not ids:
        return "none"
    shown = list(ids)[:RELATIVES_SHOWN]
    found = {pk: (name, state) for pk, name, state in
             BalsamJob.objects.filter(pk__in=shown).values_list("pk", "name", "state")}
    links = format_html_join(
        ", ", '<a href="{}">{} | {}</a> ({})',
        ((job_url(pk), found[pk][0] or "(no name)", pk.hex[:8], found[pk][1]) for pk in shown if pk in found))
    more = len(ids) - len(shown)
    return format_html("{}{}", links, f" and {more} more" if more > 0 else "")


def relatives(job):
    """(parents, children) of ``job`` as HTML links with their states."""
    parents, children = queries.relatives([job.pk])
    return _links(parents.get(job.pk, [])), _links(children.get(job.pk, []))


def history(job):
    """The job's state changes as an HTML table, the latest ``EVENTS_SHOWN``."""
    events = list(job.events.order_by("-id")
                  .values_list("timestamp", "user", "from_state", "to_state", "message")[:EVENTS_SHOWN])
    events.reverse()
    rows = format_html_join(
        "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        ((f"{t:%Y-%m-%d %H:%M:%S} UTC", u or "—", a, b, m or "—") for t, u, a, b, m in events))
    note = "" if len(events) < EVENTS_SHOWN else f"(the latest {EVENTS_SHOWN} changes)"
    return format_html(
        '<table class="balsam-history"><thead><tr><th>time</th><th>user</th><th>from</th><th>to</th><th>message</th>'
        "</tr></thead><tbody><tr><td>{}</td><td>—</td><td></td><td>CREATED</td><td>created</td></tr>{}</tbody></table>{}",
        f"{job.created_at:%Y-%m-%d %H:%M:%S} UTC", rows, note)


def output_path(job):
    """Where the launcher writes the job's run output (stdout and stderr)."""
    directory = job.working_directory
    return Path(directory) / outputs.run_output_name(job.name) if directory else None


def output_tail(job):
    path = output_path(job)
    if path is None:
        return "no working directory"
    if not path.is_file():
        return format_html("no output yet (<code>{}</code>)", str(path))
    text = "\n".join(outputs.tail_lines(path, TAIL_LINES))
    return format_html('<div><code>{}</code></div><pre class="balsam-output">{}</pre>', str(path), text or "(empty)")
