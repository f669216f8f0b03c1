"""Helpers shared by the CLI commands."""

import math

import click

from balsam import api, logs


def attach(ctx, admin=False):
    """Attach to the selected DB (one line naming the path if it is not one)."""
    root = ctx.find_root()
    selection = api.attach(root.obj.get("db_path") if root.obj else None, admin=admin)
    logs.configure(selection.path, "cli")
    return selection


def check_range(option, value, low, high):
    """A numeric option within ``[low, high]`` and finite, else one usage line."""
    if value is not None and not (math.isfinite(value) and low <= value <= high):
        raise click.UsageError(f"{option} must be a number from {low:g} to {high:g}, not {value:g}")


def confirm(question, assume_yes):
    if assume_yes:
        return True
    return click.confirm(question, default=False)


def table(rows, headers):
    """Rows as aligned text columns (a header, a rule, then one line per row)."""
    rows = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    def fmt(values):
        return "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()
    lines = [fmt(headers), fmt(["-" * w for w in widths])]
    lines.extend(fmt(row) for row in rows)
    return "\n".join(lines)


def bar(count, largest, width=40):
    if not largest:
        return ""
    n = round(width * count / largest)
    return "█" * n if n or not count else "▏"
