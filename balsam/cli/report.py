"""``balsam report``: job counts, throughput, utilization and recent failures
(from ``balsam.analytics``), as tables, JSON or plots (``balsam.plots``)."""

import json

import click

from balsam.cli.common import attach, bar, check_range, echo_lines, table
from balsam.exceptions import ValidationError

REPORTS = ("states", "throughput", "utilization", "failures")
PLOTTED = ("states", "throughput", "utilization")


def _iso(when):
    return when.isoformat() if when is not None else None


def _utc(when):
    return f"{when:%Y-%m-%d %H:%M:%S}"


@click.command()
@click.argument("what", type=click.Choice(REPORTS))
@click.option("--wf", metavar="NAME", help="Only the jobs of this workflow.")
@click.option("--since", default="all", show_default=True, metavar="WINDOW",
              help="Only the last WINDOW: a number and s, m, h, d or w (90s, 30m, 2h, 1d, 1w), or all.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@click.option("--plot", metavar="FILE", help="Also draw the report into FILE (.png or .svg).")
@click.option("--limit", type=int, default=20, show_default=True, help="failures: show at most this many.")
@click.option("--lines", type=int, default=5, show_default=True,
              help="failures: the last lines of each job's output to show (0: none).")
@click.pass_context
def report(ctx, what, wf, since, as_json, plot, limit, lines):
    """Report what happened: jobs by state and workflow (states), jobs finished
    per minute (throughput), jobs running against the launchers' capacity
    (utilization), or the jobs that failed last (failures)."""
    from balsam import plots

    check_range("--limit", limit, 1, 10_000)
    check_range("--lines", lines, 0, 1_000)
    if plot is not None:
        if what not in PLOTTED:
            raise click.UsageError(f"--plot draws {', '.join(PLOTTED)}; the failures report has no plot")
        try:
            plots.format_for(plot)
        except ValidationError as exc:
            raise click.UsageError(str(exc)) from None
    attach(ctx)

    from balsam import analytics

    try:
        window = analytics.parse_since(since)
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from None
    if wf is not None and not analytics.workflow_exists(wf):
        known = ", ".join(name or "(none)" for name in analytics.workflows()[:10]) or "none"
        click.echo(f"Note: no jobs in workflow {wf!r} (workflows: {known})", err=True)

    if what == "states":
        drawing = _states(analytics, plots, wf, as_json)
    elif what == "failures":
        _failures(analytics.failures(wf, window, limit=limit, tail_lines=lines), as_json)
        drawing = None
    else:
        series = (analytics.throughput if what == "throughput" else analytics.utilization)(wf, window)
        _series(series, since, as_json)
        drawing = series
    if plot is not None:
        path = plots.save(drawing, plot)
        click.echo(f"Plot written to {path}", err=True)


def _states(analytics, plots, wf, as_json):
    """Prints the counts by state and the progress of each workflow; returns their bar chart."""
    counts = analytics.state_counts(wf)
    progress = analytics.workflow_progress(wf)
    if as_json:
        click.echo(json.dumps({
            "states": counts,
            "workflows": [{**{f: getattr(p, f) for f in ("workflow", "total", "finished", "failed")},
                           "percent_finished": round(p.percent_finished, 2), "by_state": p.by_state}
                          for p in progress],
        }, indent=2))
    else:
        shown = [s for s, n in counts.items() if n]
        largest = max(counts.values(), default=0)
        rows = [(s, counts[s], bar(counts[s], largest)) for s in shown] + [("total", sum(counts.values()), "")]
        click.echo(table(rows, ["state", "jobs", ""]))
        if progress:
            click.echo()
            click.echo(table([(p.workflow or "(none)", p.total, p.finished, p.failed, f"{p.percent_finished:.1f}%",
                               bar(p.finished, p.total, 20)) for p in progress],
                             ["workflow", "jobs", "finished", "failed", "done", ""]))
    labels = [s for s, n in counts.items() if n] or list(counts)
    title = "Jobs by state" + (f" (workflow {wf})" if wf is not None else "")
    return plots.Bars(title, "jobs", labels, [counts[s] for s in labels])


def _series(series, since, as_json):
    has_capacity = series.capacity is not None
    if as_json:
        points = []
        for i, when in enumerate(series.times):
            point = {"time": _iso(when), "value": round(series.values[i], 4)}
            if has_capacity:
                capacity = series.capacity[i]
                point["capacity"] = None if capacity is None else round(capacity, 4)
            points.append(point)
        click.echo(json.dumps({"title": series.title, "unit": series.unit, "bucket_seconds": series.bucket_seconds,
                               "since": since, "points": points}, indent=2))
        return
    from balsam.plots import bucket_label

    if not series.times:
        click.echo(f"{series.title}: nothing in this window (--since {since})")
        return
    click.echo(f"{series.title}, {bucket_label(series.bucket_seconds)} buckets, since {_utc(series.times[0])} UTC")
    headers = ["bucket start (UTC)", series.unit]
    if has_capacity:
        headers += ["capacity", "used"]
    rows = []
    for i, when in enumerate(series.times):
        row = [_utc(when), f"{series.values[i]:.2f}"]
        if has_capacity:
            capacity = series.capacity[i]
            row += (["-", "-"] if capacity is None else
                    [f"{capacity:.2f}", f"{100 * series.values[i] / capacity:.0f}%" if capacity else "-"])
        rows.append(row)
    echo_lines(table(rows, headers).splitlines())
    click.echo(f"mean {sum(series.values) / len(series.values):.2f} {series.unit}, peak {max(series.values):.2f}")


def _failures(found, as_json):
    if as_json:
        click.echo(json.dumps([{
            "job_id": f.job_id, "name": f.name, "workflow": f.workflow, "state": f.state, "at": _iso(f.at),
            "message": f.message, "output_tail": f.output_tail} for f in found], indent=2))
        return
    if not found:
        click.echo("No failed jobs")
        return
    blocks = []
    for f in found:
        lines = [f"{_utc(f.at)} UTC  {f.state}  [{f.name} | {f.short_id}]  workflow {f.workflow or '(none)'}"]
        if f.message:
            lines.append("  " + f.message.strip().replace("\n", "\n  "))
        lines += [f"  | {line}" for line in f.output_tail]
        blocks.append("\n".join(lines))
    click.echo("\n\n".join(blocks))


COMMANDS = [report]
