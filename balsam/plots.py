"""Plots of the analytics as PNG or SVG images, with matplotlib (Agg, no
display). ``render`` returns the image's bytes (the dashboard serves them as
``<img>`` sources), ``save`` writes a file named by its suffix.

What is drawn: an ``analytics.Series`` (any object with its fields: title,
unit, bucket_seconds, times, values, capacity) as steps over UTC time --
utilization with the launchers' capacity as a second, dashed step line --
or ``Bars`` (counts by label, e.g. jobs by state) as a bar chart.

No Django here (``.importlinter``), and matplotlib is imported only when a
plot is made: ``balsam --help`` and every other command start without it.
"""

import dataclasses
import datetime
import io
import threading
from pathlib import Path

from balsam.exceptions import BalsamError, ValidationError

FORMATS = {"png": "image/png", "svg": "image/svg+xml"}  # format: its media type
WIDTH_IN, HEIGHT_IN, DPI = 9.0, 3.6, 100
# Figures are built one at a time: matplotlib's text and font caches are
# shared by every figure in a process (a web server renders on threads).
_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True)
class Bars:
    """Counts to draw as bars, in the order given (e.g. jobs by state)."""

    title: str
    unit: str
    labels: list
    values: list


def format_for(path):
    """The image format ``path``'s suffix names ('png' or 'svg'); anything
    else is one clear error."""
    suffix = Path(str(path)).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ValidationError(f"--plot: the file name must end in .png or .svg, not {Path(str(path)).name!r}")
    return suffix


def save(series, path):
    """Write the plot of ``series`` (a Series or Bars) to ``path`` in the format
    its suffix names; returns the path."""
    fmt = format_for(path)
    data = render(series, fmt)
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise BalsamError(f"cannot write the plot to {path}: {exc.strerror or exc}") from None
    return Path(path)


def render(series, fmt="png"):
    """The plot of ``series`` (a Series or Bars) as PNG or SVG bytes."""
    if fmt not in FORMATS:
        raise ValidationError(f"plot format must be png or svg, not {fmt!r}")
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A fixed salt for the SVG's element ids: the same data gives the same bytes.
    with _LOCK, matplotlib.rc_context({"svg.hashsalt": "balsam"}):
        figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        if isinstance(series, Bars):
            _draw_bars(axes, series)
        else:
            _draw_series(axes, series)
        buffer = io.BytesIO()
        # No creation date in the file either.
        metadata = {"Date": None} if fmt == "svg" else {"Software": "balsam"}
        figure.savefig(buffer, format=fmt, metadata=metadata)
    return buffer.getvalue()


def bucket_label(seconds):
    """'1 min', '15 min', '1 h', '1 d', '1 w' ..."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _draw_series(axes, series):
    import matplotlib.dates as mdates

    utc = datetime.timezone.utc
    axes.set_title(f"{series.title} ({bucket_label(series.bucket_seconds)} buckets)" if series.times else series.title)
    axes.set_xlabel("time (UTC)")
    axes.set_ylabel(series.unit)
    axes.grid(True, alpha=0.3)
    if not series.times:
        axes.text(0.5, 0.5, "no data in this window", transform=axes.transAxes, ha="center", va="center",
                  color="gray")
        axes.set_xticks([])
        return
    # Steps over each bucket: one more edge closes the last one.
    edges = list(series.times) + [series.times[-1] + datetime.timedelta(seconds=series.bucket_seconds)]
    axes.stairs(series.values, mdates.date2num(edges), baseline=None, linewidth=1.8, label=series.title,
                color="tab:blue")
    tops = [v for v in series.values if v is not None]
    if series.capacity is not None:
        capacity = [float("nan") if c is None else c for c in series.capacity]
        if any(c is not None for c in series.capacity):
            axes.stairs(capacity, mdates.date2num(edges), baseline=None, linewidth=1.4, linestyle="--",
                        color="tab:orange", label="capacity (launchers' run slots)")
            tops += [c for c in series.capacity if c is not None]
            axes.legend(loc="upper left", fontsize="small")
    axes.set_ylim(0, max(tops + [1.0]) * 1.1)
    locator = mdates.AutoDateLocator(tz=utc)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=utc))
    axes.set_xlim(mdates.date2num(edges[0]), mdates.date2num(edges[-1]))


def _draw_bars(axes, bars):
    axes.set_title(bars.title)
    axes.set_ylabel(bars.unit)
    axes.set_xlabel("state")
    positions = range(len(bars.labels))
    drawn = axes.bar(positions, bars.values, color="tab:blue")
    axes.bar_label(drawn, fontsize="small")
    axes.set_xticks(list(positions), bars.labels, rotation=30, ha="right", fontsize="small")
    axes.set_ylim(0, max(list(bars.values) + [1]) * 1.15)
    axes.grid(True, axis="y", alpha=0.3)
