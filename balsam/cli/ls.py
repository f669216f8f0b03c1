"""``balsam ls``: list jobs, applications or workflows (reads the DB file directly)."""

import itertools
import json

import click

from balsam.cli.common import attach, bar, echo_lines, table
from balsam.cli import show

JOB_COLUMNS = ("job_id", "name", "workflow", "application", "state")


def _job_query(name, ref, state, wf):
    from balsam import api

    prefix = None
    if ref:
        prefix = api.parse_id_prefix(ref)
        if prefix is None:
            raise click.UsageError(f"--id expects a job id or its first characters, not {ref!r}")
    return api.find_jobs(name_contains=name, id_prefix=prefix, state=state, workflow=wf)


@click.command()
@click.argument("objects", type=click.Choice(["jobs", "apps", "wf", "queues"]), default="jobs")
@click.option("--name", help="Only jobs whose name contains this (apps: exact name).")
@click.option("--id", "ref", metavar="ID", help="Only jobs whose id starts with this (apps: id).")
@click.option("--state", help="Only jobs in this state (e.g. RUN_ERROR).")
@click.option("--wf", help="Only jobs of this workflow.")
@click.option("--history", is_flag=True, help="Show each job's state changes.")
@click.option("--verbose", "-v", is_flag=True, help="Show every field.")
@click.option("--tree", is_flag=True, help="Show jobs as a dependency tree.")
@click.option("--by-states", is_flag=True, help="Count jobs in each state (with a bar chart).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@click.pass_context
def ls(ctx, objects, name, ref, state, wf, history, verbose, tree, by_states, as_json):
    """List jobs (default), applications (apps), workflows (wf) or batch launches (queues)."""
    attach(ctx)
    if objects == "queues":
        _list_launches(as_json)
    elif objects == "apps":
        _list_apps(name, ref, verbose, as_json)
    elif objects == "wf":
        _list_workflows(wf or name, as_json)
    else:
        qs = _job_query(name, ref, state, wf)
        if by_states:
            _by_states(qs, as_json)
        elif as_json:
            for piece in show.json_array_lines(show.job_json(j) for j in qs.iterator(chunk_size=2000)):
                click.echo(piece, nl=False)
            click.echo()
        elif history:
            _each(qs, show.history_lines)
        elif verbose:
            _each(qs, show.job_block)
        elif tree:
            _tree(qs)
        else:
            # Streamed: a listing of a million jobs never sits in memory at once.
            lines = show.job_table_lines(qs.values_list(*JOB_COLUMNS).iterator(chunk_size=5000))
            head = [next(lines), next(lines), next(lines, None)]
            if head[2] is None:
                click.echo("No jobs found matching query")
            else:
                echo_lines(itertools.chain(head, lines))


def _each(qs, render):
    found = False
    for job in qs.iterator():
        found = True
        click.echo(render(job) + "\n")
    if not found:
        click.echo("No jobs found matching query")


def _by_states(qs, as_json):
    from balsam import api
    from balsam.core import states

    counts = api.state_counts(qs)
    if as_json:
        click.echo(json.dumps(counts, indent=2))
        return
    largest = max(counts.values(), default=0)
    rows = [(s, counts[s], bar(counts[s], largest)) for s in states.ALL_STATES if counts.get(s)]
    rows.append(("total", sum(counts.values()), ""))
    click.echo(table(rows, ["state", "jobs", ""]))


def _tree(qs):
    """The jobs as a dependency tree, each job once: a job with several parents
    is drawn under the first, and under the others as one reference line, so
    the output grows with the jobs and edges, not with the paths through them."""
    from balsam import api

    jobs = {pk: (name, state) for pk, name, state in qs.values_list("pk", "name", "state")}
    if not jobs:
        click.echo("No jobs found matching query")
        return
    children, has_parent = {}, set()
    for child, parent in api.dependency_edges(jobs):
        children.setdefault(parent, []).append(child)
        has_parent.add(child)
    order = {pk: i for i, pk in enumerate(jobs)}  # the listing's order: oldest first
    for kids in children.values():
        kids.sort(key=order.__getitem__)
    shown = set()
    # Depth first without recursion (chains can be thousands deep): (job, line prefix, its branch).
    stack = [(root, "", "") for root in reversed([pk for pk in jobs if pk not in has_parent])]
    while stack:
        pk, prefix, branch = stack.pop()
        name, state = jobs[pk]
        if pk in shown:
            click.echo(f"{prefix}{branch}{name} [{pk.hex[:8]}] (shown above)")
            continue
        shown.add(pk)
        click.echo(f"{prefix}{branch}{name} [{pk.hex[:8]}] {state}")
        kids = children.get(pk, [])
        inner = prefix + ("" if not branch else "    " if branch == "└── " else "│   ")
        for i, kid in reversed(list(enumerate(kids))):
            stack.append((kid, inner, "└── " if i == len(kids) - 1 else "├── "))


def _list_apps(name, ref, verbose, as_json):
    from balsam import api

    apps = [api.get_app(ref)] if ref else api.find_apps(name)
    if as_json:
        click.echo(json.dumps([show.app_json(a) for a in apps], indent=2))
    elif not apps:
        click.echo("No applications found")
    elif verbose:
        click.echo("\n\n".join(show.app_block(a) for a in apps))
    else:
        click.echo(show.app_table(apps))


def _list_workflows(wf, as_json):
    from balsam import api

    per_state = api.workflow_counts(wf)
    if as_json:
        click.echo(json.dumps(per_state, indent=2, sort_keys=True))
        return
    if not per_state:
        click.echo("No workflows found")
        return
    rows = []
    for workflow in sorted(per_state):
        counts = per_state[workflow]
        detail = ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        rows.append((workflow or "(none)", sum(counts.values()), detail))
    click.echo(table(rows, ["workflow", "jobs", "states"]))


def _list_launches(as_json):
    from balsam import api

    launches = api.launches()
    if as_json:
        click.echo(json.dumps([
            {"id": l.pk, "scheduler": l.scheduler, "scheduler_id": l.scheduler_id, "queue": l.queue,
             "project": l.project, "nodes": l.nodes, "wall_minutes": l.wall_minutes, "job_mode": l.job_mode,
             "wf_filter": l.wf_filter, "state": l.state, "jobs": l.tied, "script": l.script_path,
             "submit_time": l.submit_time.isoformat() if l.submit_time else None} for l in launches], indent=2))
        return
    rows = [(l.pk, l.scheduler, l.scheduler_id or "-", l.queue, l.nodes, f"{l.wall_minutes:g}", l.job_mode,
             l.wf_filter or "-", l.state, l.tied, f"{l.submit_time:%Y-%m-%d %H:%M:%S}" if l.submit_time else "-")
            for l in launches]
    if not rows:
        click.echo("No launches found")
        return
    click.echo(table(rows, ["id", "scheduler", "sched id", "queue", "nodes", "minutes", "mode", "wf", "state",
                            "jobs", "submitted (UTC)"]))


COMMANDS = [ls]
