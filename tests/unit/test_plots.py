"""Plots: real PNG and SVG images from matplotlib, titled, with labelled
axes; file formats by suffix; one-line errors."""

import datetime
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from balsam import plots
from balsam.analytics import Series
from balsam.exceptions import BalsamError, ValidationError

T0 = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def series(capacity=None, points=5):
    times = [T0 + datetime.timedelta(minutes=i) for i in range(points)]
    return Series("Jobs running", "jobs", 60, times, [float(i) for i in range(points)], capacity)


def svg_text(data):
    root = ET.fromstring(data)
    return " ".join(t.strip() for t in root.itertext() if t.strip())


def png_size(data):
    assert data.startswith(PNG_MAGIC)
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_a_series_as_png_and_svg():
    width, height = png_size(plots.render(series(), "png"))
    assert (width, height) == (plots.WIDTH_IN * plots.DPI, plots.HEIGHT_IN * plots.DPI)
    svg = plots.render(series([4.0, 4.0, None, 2.0, 2.0]), "svg")
    assert ET.fromstring(svg).tag.endswith("svg")
    # The same data gives the same bytes (no date, fixed element ids).
    assert plots.render(series(), "svg") == plots.render(series(), "svg")
    assert plots.render(series(), "png") == plots.render(series(), "png")


def test_the_svg_names_its_title_axes_and_legend():
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none"}):
        text = svg_text(plots.render(series([4.0] * 5), "svg"))
    for words in ("Jobs running (1 min buckets)", "time (UTC)", "jobs", "capacity (launchers' run slots)"):
        assert words in text


def test_empty_series_and_bars_render(tmp_path):
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none"}):
        assert "no data in this window" in svg_text(plots.render(series(points=0), "svg"))
        bars = plots.Bars("Jobs by state", "jobs", ["CREATED", "JOB_FINISHED"], [3, 7])
        text = svg_text(plots.render(bars, "svg"))
    assert "Jobs by state" in text and "JOB_FINISHED" in text and "state" in text
    assert png_size(plots.render(bars, "png"))[0] > 0


def test_save_picks_the_format_from_the_suffix(tmp_path):
    assert plots.save(series(), tmp_path / "a.PNG").read_bytes().startswith(PNG_MAGIC)
    assert ET.parse(plots.save(series(), tmp_path / "a.svg")).getroot().tag.endswith("svg")
    for name in ("a.jpg", "a", "a.png.txt", ""):
        with pytest.raises(ValidationError, match=r"--plot: the file name must end in \.png or \.svg"):
            plots.save(series(), tmp_path / name if name else name)
    with pytest.raises(BalsamError, match="cannot write the plot to .*: No such file or directory"):
        plots.save(series(), tmp_path / "no" / "such" / "a.png")
    with pytest.raises(ValidationError):
        plots.render(series(), "gif")


def test_the_command_line_starts_without_matplotlib_or_django():
    code = ("import sys\nfrom balsam.cli.main import cli\n"
            "for args in (['--help'], ['report', '--help']):\n"
            "    try:\n        cli.main(args)\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('matplotlib', 'django.db', 'balsam.analytics') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
