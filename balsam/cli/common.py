"""Helpers shared by the CLI commands."""

import itertools
import math

import click

from balsam import api, config, logs, used_dbs


def attach(ctx, admin=False, current_schema=True):
    """Attach to the selected DB (one line naming the path if it is not one,
    or, unless ``current_schema`` is False, if its tables are older than this Balsam)."""
    root = ctx.find_root()
    selection = api.attach(root.obj.get("db_path") if root.obj else None, admin=admin, current_schema=current_schema)
    logs.configure(selection.path, "cli")
    used_dbs.record(selection.path)
    return selection


def db_dir(ctx):
    """The selected DB directory, checked to be one (one line if it is not),
    for commands that work on its files: no Django, no DB connection, no
    writes (it neither initialises the repository default nor opens cli.log)."""
    root = ctx.find_root()
    return config.require_db(config.select_db(root.obj.get("db_path") if root.obj else None))


def check_range(option, value, low, high):
    """A numeric option within ``[low, high]`` and finite, else one usage line."""
    if value is not None and not (math.isfinite(value) and low <= value <= high):
        raise click.UsageError(f"{option} must be a number from {low:g} to {high:g}, not {value:g}")


def confirm(question, assume_yes):
    if assume_yes:
        return True
    return click.confirm(question, default=False)


TABLE_SAMPLE_ROWS = 10_000


def table_lines(rows, headers, sample=None):
    """Rows as aligned text columns, line by line: a header, a rule, then one
    line per row. Column widths come from the first ``sample`` rows (a later,
    longer value widens only its own line), so a listing of any length
    streams in bounded memory."""
    def cells(row):
        return [("" if v is None else str(v)) for v in row]

    rows = iter(rows)
    first = [cells(row) for row in itertools.islice(rows, sample or TABLE_SAMPLE_ROWS)]
    widths = [len(h) for h in headers]
    for row in first:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))

    def fmt(values):
        return "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()

    yield fmt(headers)
    yield fmt(["-" * w for w in widths])
    for row in first:
        yield fmt(row)
    for row in rows:
        yield fmt(cells(row))


def table(rows, headers):
    return "\n".join(table_lines(rows, headers))


def echo_lines(lines, batch=2000):
    """Print ``lines`` (an iterator) in batches: one write per line costs more than the listing."""
    chunk = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= batch:
            click.echo("\n".join(chunk))
            chunk = []
    if chunk:
        click.echo("\n".join(chunk))


def bar(count, largest, width=40):
    if not largest:
        return ""
    n = round(width * count / largest)
    return "█" * n if n or not count else "▏"
