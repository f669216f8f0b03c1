"""Server-side timings of `balsam web`'s pages on a given DB (issue #13 item 7).

What is measured
----------------
Each figure is the time Django takes to answer one request, measured with
Django's test client in one process attached to the DB with the admin apps
(``activate(admin=True)``): URL routing, middleware, the login check (a
signed-cookie session), the queries, the templates and the plot rendering --
everything `balsam web` does for a request except the socket. The process first
does what ``balsam web`` does at start (``server.warm_up()``: the URL
configuration, the admin, matplotlib), so "first" is the first request a
freshly started server answers.

- dashboard, first full load: ``GET /`` plus both plot images. Target < 1 s.
- dashboard refresh: ``GET /dashboard.json`` plus both plot images when their
  data changed (what the page's script asks every 5 s on a busy DB; the server
  keeps no drawn plot between the timed runs), and the JSON alone (a quiet DB:
  the plots' addresses did not change, the browser fetches nothing more).
  Target < 1 s.
- admin job list filtered by state, for the commonest and a rare state of the
  DB. Target < 1 s.
- without a target: the job list unfiltered, one job's page, the dashboard for
  one workflow.

Each timed request runs ``--repeat`` times after the first; the median is
reported (and the first for the full load). The script needs a login: it adds
``web-bench`` (random password) to the DB if it is not there.

How to run
----------
    .venv/bin/python benchmarks/web_scale_web.py PATH/TO/DB [--repeat 5] [--json]

or, from another benchmark, ``measure_web(db_path)``: it runs this script in a
subprocess (Django is configured once per process) and returns
``[(name, seconds, target_seconds or None)]``.
"""

import argparse
import html
import json
import re
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET = 1.0
BENCH_LOGIN = "web-bench"


def measure_web(db_path, repeat=3):
    """``[(name, seconds, target or None)]`` for the pages of `balsam web` on ``db_path``."""
    proc = subprocess.run([sys.executable, __file__, str(db_path), "--repeat", str(repeat), "--json"],
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"web_scale_web.py failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return [tuple(row) for row in json.loads(proc.stdout)]


def _timed(client, *urls):
    """Seconds to answer ``urls`` one after the other."""
    start = time.perf_counter()
    for url in urls:
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: HTTP {response.status_code}")
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
    return time.perf_counter() - start


def _median(client, repeat, *urls):
    return statistics.median(_timed(client, *urls) for _ in range(repeat))


def _rows(db_path, repeat):
    from balsam.web import server

    server.attach(str(db_path))
    server.warm_up()
    from django.contrib.auth import get_user_model
    from django.test import Client

    from balsam import analytics
    from balsam.web import accounts

    user = get_user_model().objects.filter(username=BENCH_LOGIN).first()
    if user is None:
        accounts.add_user(BENCH_LOGIN, secrets.token_urlsafe(16))
        user = get_user_model().objects.get(username=BENCH_LOGIN)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)

    from balsam.web import views

    def changed():
        views._images.clear()  # as when the plots' data changed since the last refresh: both are drawn

    def get(url):
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: HTTP {response.status_code}")
        return response.getvalue() if hasattr(response, "streaming_content") else response.content

    def full_load():
        """The page, then the two plots it names (as a browser does)."""
        changed()
        start = time.perf_counter()
        page = get("/").decode()
        for url in re.findall(r'id="balsam-plot-\w+" src="([^"]+)"', page):
            get(html.unescape(url))
        return time.perf_counter() - start

    def refresh(query=""):
        """What the page's script asks when the plots' data changed."""
        changed()
        start = time.perf_counter()
        for url in json.loads(get(f"/dashboard.json{query}"))["plots"].values():
            if url:
                get(url)
        return time.perf_counter() - start

    rows = [("dashboard, first full load (page + 2 plots)", full_load(), TARGET)]
    rows.append(("dashboard, full load again", statistics.median(full_load() for _ in range(repeat)), TARGET))
    rows.append(("dashboard refresh, plots changed (json + 2 plots)",
                 statistics.median(refresh() for _ in range(repeat)), TARGET))
    for window in ("1d", "all"):
        rows.append((f"dashboard refresh, window {window}, plots changed",
                     statistics.median(refresh(f"?since={window}") for _ in range(repeat)), TARGET))
    rows.append(("dashboard refresh, plots unchanged (json only)", _median(client, repeat, "/dashboard.json"),
                 TARGET))
    counts = {s: n for s, n in analytics.state_counts().items() if n}
    if counts:
        common = max(counts, key=counts.get)
        rare = min(counts, key=counts.get)
        for state in dict.fromkeys([common, rare]):
            url = f"/admin/balsam/balsamjob/?state__exact={state}"
            rows.append((f"admin job list, state={state} ({counts[state]:,} jobs)", _median(client, repeat, url),
                         TARGET))
    rows.append(("admin job list, no filter", _median(client, repeat, "/admin/balsam/balsamjob/"), None))
    workflows = analytics.workflows()
    if workflows:
        wf = workflows[0]
        rows.append((f"dashboard refresh, workflow {wf!r}, plots changed",
                     statistics.median(refresh(f"?wf={wf}") for _ in range(repeat)), None))
    from balsam.core.models import BalsamJob

    job = BalsamJob.objects.order_by().values_list("pk", flat=True).first()
    if job:
        rows.append(("one job's page", _median(client, repeat, f"/admin/balsam/balsamjob/{job}/change/"), None))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("db", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print [[name, seconds, target], ...] only")
    args = parser.parse_args()
    rows = _rows(args.db.resolve(), max(1, args.repeat))
    if args.json:
        print(json.dumps(rows))
        return
    width = max(len(name) for name, _, _ in rows)
    for name, seconds, target in rows:
        verdict = "" if target is None else ("ok" if seconds < target else "MISS <<<")
        print(f"{name.ljust(width)}  {seconds:7.3f} s  {'' if target is None else f'< {target:g} s'}  {verdict}")


if __name__ == "__main__":
    main()
