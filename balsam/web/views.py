"""The dashboard (``/``): job counts, progress per workflow, throughput and
utilization plots, recent failures, launchers and batch launches.

Every figure comes from ``balsam.analytics`` (the same numbers as ``balsam
report``); this module only chooses what to ask for and renders it. The page
renders once in full; then a small script fetches ``dashboard.json`` every few
seconds, swaps the sections' HTML and reloads the plots with a new query.
"""

import dataclasses
import datetime
import hashlib
import threading
from collections import OrderedDict
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from balsam import analytics, plots
from balsam.core import states
from balsam.exceptions import BalsamError

REFRESH_SEC = 5
WINDOWS = (("1h", "last hour"), ("1d", "last day"), ("all", "all time"))
DEFAULT_WINDOW = "1h"
PLOTS = {"throughput": analytics.throughput, "utilization": analytics.utilization}
PLOT_TYPES = {"png": "image/png", "svg": "image/svg+xml"}
WORKFLOWS_SHOWN = 50
FAILURES_SHOWN = 20
LAUNCHERS_SHOWN = 10
LAUNCHES_SHOWN = 10
SECTIONS = ("states", "workflows", "failures", "launchers", "launches")


class Filters:
    """The workflow and time window asked for (``?wf=NAME&since=1h``), checked."""

    def __init__(self, query):
        self.workflow = query.get("wf") or None
        self.since_text = (query.get("since") or DEFAULT_WINDOW).strip()
        self.message = None
        self.valid = True
        self.bad_window = False
        try:
            self.since = analytics.parse_since(self.since_text)
        except BalsamError as exc:
            self.since, self.valid, self.bad_window = None, False, True
            self.message = f"{' '.join(str(exc).split())}: showing nothing"
        if self.valid and self.workflow is not None and not analytics.workflow_exists(self.workflow):
            self.valid = False
            shown = self.workflow if len(self.workflow) <= 60 else self.workflow[:60] + "..."
            self.message = f"no workflow named {shown!r}: showing nothing"

    def query(self, **extra):
        params = {"since": self.since_text}
        if self.workflow is not None:
            params["wf"] = self.workflow
        return urlencode({**params, **extra})


def _stamp(value):
    return value.isoformat() if isinstance(value, datetime.datetime) else value


def _plain(item):
    return {name: _stamp(value) for name, value in dataclasses.asdict(item).items()}


def _failure(failure):
    values = _plain(failure)
    values["output_tail"] = "\n".join(failure.output_tail)
    values["url"] = reverse("admin:balsam_balsamjob_change", args=[failure.job_id])
    return values


def dashboard_data(filters):
    """Everything the page shows, as JSON-able values."""
    empty = not filters.valid
    counts = {} if empty else analytics.state_counts(filters.workflow)
    ordered = {s: counts[s] for s in states.ALL_STATES if counts.get(s)}
    progress = [] if empty else analytics.workflow_progress(filters.workflow)[:WORKFLOWS_SHOWN]
    failures = [] if empty else analytics.failures(filters.workflow, filters.since, limit=FAILURES_SHOWN)
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "generated_at": now.isoformat(),
        "workflow": filters.workflow,
        "since": filters.since_text,
        "message": filters.message,
        "total": sum(counts.values()),
        "states": ordered,
        "workflows": [{**_plain(p), "percent_finished": round(p.percent_finished, 1)} for p in progress],
        "failures": [_failure(f) for f in failures],
        "launchers": [_plain(x) for x in analytics.launchers(limit=LAUNCHERS_SHOWN)],
        "launches": [_plain(x) for x in analytics.launches(limit=LAUNCHES_SHOWN)],
        "plots": {name: _plot_url(name, filters) for name in PLOTS},
    }


def _sections(data, request):
    return {name: render_to_string(f"balsam_web/{name}.html", {"data": data}, request) for name in SECTIONS}


@require_safe
@login_required
@never_cache
def dashboard(request):
    filters = Filters(request.GET)
    data = dashboard_data(filters)
    context = {
        **_page_context(request),
        "data": data,
        "sections": _sections(data, request),
        "workflows": analytics.workflows(),
        "windows": WINDOWS,
        "filters": filters,
        "refresh_ms": REFRESH_SEC * 1000,
    }
    return render(request, "balsam_web/dashboard.html", context)


@require_safe
@login_required
@never_cache
def dashboard_json(request):
    data = dashboard_data(Filters(request.GET))
    data["html"] = _sections(data, request)
    return JsonResponse(data)


# Rendering a plot costs far more than computing its series (matplotlib
# draws it: 0.1-0.3 s). A plot's address carries a digest of its series, so
# the page reloads an image only when its data changed (times are bucket
# starts: a quiet DB keeps its plots), the browser may keep it, and the
# server draws each version once. The series the page or dashboard.json just
# computed for an address is kept for the image request that follows.
class _Kept:
    """The last ``size`` values by key, shared by the server's threads."""

    def __init__(self, size):
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def put(self, key, value):
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value

    def clear(self):
        with self.lock:
            self.items.clear()


_series = _Kept(32)  # (plot, workflow, window, version) -> Series
_images = _Kept(16)  # (plot, format, version) -> bytes


def series_version(series):
    text = repr((series.title, series.unit, series.bucket_seconds, series.times, series.values, series.capacity))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plot_series(name, filters):
    return PLOTS[name](filters.workflow, filters.since)  # an unknown workflow: an empty series


def _plot_url(name, filters, fmt="png"):
    """The plot's address, or None for a malformed window (no plot)."""
    if filters.bad_window:
        return None
    series = _plot_series(name, filters)
    version = series_version(series)
    _series.put((name, filters.workflow, filters.since_text, version), series)
    return f"{reverse('balsam_web:plot', args=[name, fmt])}?{filters.query(v=version)}"


def _render(name, fmt, series, version):
    return _images.get((name, fmt, version)) or _images.put((name, fmt, version), plots.render(series, fmt))


@require_safe
@login_required
def plot(request, name, fmt):
    if name not in PLOTS or fmt not in PLOT_TYPES:
        return HttpResponseBadRequest(f"unknown plot {name}.{fmt}; plots: "
                                      + ", ".join(f"{n}.png, {n}.svg" for n in PLOTS), content_type="text/plain")
    filters = Filters(request.GET)
    if filters.bad_window:
        return HttpResponseBadRequest(filters.message, content_type="text/plain")
    asked = request.GET.get("v")
    series = _series.get((name, filters.workflow, filters.since_text, asked)) if asked else None
    if series is None:  # an address from an earlier page, or none: the current data
        series = _plot_series(name, filters)
    version = series_version(series)
    response = HttpResponse(_render(name, fmt, series, version), content_type=PLOT_TYPES[fmt])
    if asked == version:
        patch_cache_control(response, private=True, max_age=3600)  # this address always shows these data
    else:
        add_never_cache_headers(response)
    return response


@require_safe
@login_required
def password_change(request):
    """Passwords are changed with the CLI, which writes under the write lock."""
    return render(request, "balsam_web/password_change.html", _page_context(request))


def _page_context(request):
    """What the admin's base template needs (header, user links), without its app sidebar."""
    from django.conf import settings
    from django.contrib import admin

    return {**admin.site.each_context(request), "is_nav_sidebar_enabled": False,
            "db_path": settings.BALSAM_DB_PATH}
