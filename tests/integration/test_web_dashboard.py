"""The dashboard at `/`, its JSON and its plots, rendered by Django's test
client on a real DB directory: the figures are balsam.analytics's, the filters
are checked, and bad filters show nothing with a message."""

import re
from pathlib import Path

import pytest

from balsam import analytics
from balsam.core import write_client
from balsam.core.models import BalsamJob
from balsam.web import views

FINISH = ("READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "POSTPROCESSED", "JOB_FINISHED")


@pytest.fixture
def client(web_client):
    return web_client


def advance(job, *path):
    for state in path:
        job.update_state(state)


@pytest.fixture
def jobs(make_job):
    """wf_a: 3 jobs, 2 finished; wf_b: 2 jobs, 1 failed after a run error with output."""
    a = [make_job(name=f"a{i}", workflow="wf_a") for i in range(3)]
    b = [make_job(name=f"b{i}", workflow="wf_b") for i in range(2)]
    for job in a[:2]:
        advance(job, *FINISH)
    advance(b[0], "READY", "STAGED_IN", "PREPROCESSED", "RUNNING")
    out = Path(BalsamJob.objects.get(pk=b[0].pk).working_directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / "b0.out").write_text("".join(f"step {i}\n" for i in range(50)) + "Segmentation fault\n")
    b[0].update_state("RUN_ERROR", "exit code 139: Segmentation fault")
    b[0].update_state("FAILED", "run error and no error handler")
    return a, b


def data(client, query=""):
    response = client.get(f"/dashboard.json{query}")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    return response.json()


def test_the_page_shows_counts_progress_failures_and_plots(client, jobs):
    a, b = jobs
    response = client.get("/")
    assert response.status_code == 200
    text = response.content.decode()
    state_rows = dict(re.findall(r'<tr data-state="([A-Z_]+)">.*?<td class="num">(\d+)</td>', text, re.S))
    assert state_rows == {"CREATED": "2", "JOB_FINISHED": "2", "FAILED": "1"}
    assert '<th class="num" id="balsam-total">5</th>' in text
    assert re.search(r'data-workflow="wf_a">.*?<progress max="100" value="66.7"', text, re.S)
    assert re.search(r'data-workflow="wf_b">.*?<progress max="100" value="0.0"', text, re.S)
    assert f'href="/admin/balsam/balsamjob/{b[0].pk.hex}/change/"' in text
    assert "run error and no error handler" in text and "Segmentation fault" in text
    assert 'id="balsam-plot-throughput" src="/plots/throughput.png?since=1h&amp;v=' in text
    assert '<script src="/static/balsam_web/dashboard.js" defer></script>' in text
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing loaded from elsewhere


def test_the_json_carries_the_figures_and_the_sections(client, jobs):
    figures = data(client)
    assert figures["total"] == 5
    assert figures["states"] == {"CREATED": 2, "JOB_FINISHED": 2, "FAILED": 1}
    assert figures["states"] == {s: n for s, n in analytics.state_counts().items() if n}
    by_wf = {w["workflow"]: w for w in figures["workflows"]}
    assert (by_wf["wf_a"]["finished"], by_wf["wf_a"]["total"], by_wf["wf_a"]["percent_finished"]) == (2, 3, 66.7)
    assert (by_wf["wf_b"]["failed"], by_wf["wf_b"]["total"]) == (1, 2)
    [failure] = figures["failures"]
    assert failure["name"] == "b0" and failure["output_tail"].endswith("step 49\nSegmentation fault")
    assert failure["url"].startswith("/admin/balsam/balsamjob/")
    assert client.get(failure["url"]).status_code == 200
    assert set(figures["html"]) == {"states", "workflows", "failures", "launchers", "launches"}
    assert "b0" in figures["html"]["failures"] and "wf_a" in figures["html"]["workflows"]
    assert figures["message"] is None


def test_the_workflow_and_window_filters(client, jobs):
    only_a = data(client, "?wf=wf_a&since=1h")
    assert only_a["states"] == {"CREATED": 1, "JOB_FINISHED": 2} and only_a["total"] == 3
    assert [w["workflow"] for w in only_a["workflows"]] == ["wf_a"] and only_a["failures"] == []
    assert "wf=wf_a" in only_a["plots"]["throughput"] and "since=1h" in only_a["plots"]["utilization"]
    assert data(client, "?since=all")["total"] == 5
    page = client.get("/?wf=wf_b").content.decode()
    assert '<option value="wf_b" selected>' in page and '<option value="wf_a">' in page


@pytest.mark.parametrize("query, message", [
    ("?wf=no_such_wf", "no workflow named 'no_such_wf': showing nothing"),
    ("?since=yesterday", "expected a time window like 30m, 2h, 1d or all, not 'yesterday'"),
    ("?since=-1h", "not '-1h'"),
    ("?wf=" + "x" * 5000, "no workflow named '" + "x" * 60 + "...': showing nothing"),
])
def test_bad_filters_show_nothing_with_a_message(client, jobs, query, message):
    figures = data(client, query)
    assert message in figures["message"]
    assert figures["total"] == 0 and figures["states"] == {} and figures["workflows"] == [] and \
        figures["failures"] == []
    page = client.get(f"/{query}")
    assert page.status_code == 200 and message.replace("'", "&#x27;") in page.content.decode()
    if "since" in query:
        assert figures["plots"] == {"throughput": None, "utilization": None}


def test_plots_are_images(client, jobs):
    png = client.get("/plots/throughput.png?since=1h")
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    svg = client.get("/plots/utilization.svg?wf=wf_a")
    assert svg.status_code == 200 and svg["Content-Type"] == "image/svg+xml" and b"<svg" in svg.content
    assert "no-cache" in png["Cache-Control"] or "max-age=0" in png["Cache-Control"]
    empty = client.get("/plots/throughput.png?wf=no_such_wf")
    assert empty.status_code == 200 and empty.content.startswith(b"\x89PNG")
    for url, status in (("/plots/speed.png", 400), ("/plots/throughput.gif", 400),
                        ("/plots/throughput.png?since=soon", 400)):
        response = client.get(url)
        assert response.status_code == status, url
        assert b"Traceback" not in response.content


def test_a_plot_is_fetched_again_only_when_its_data_changed(client, make_job):
    waiting = [make_job(name=f"w{i}", workflow="quiet") for i in range(2)]  # no job has run yet
    first = data(client, "?since=1d")["plots"]
    assert data(client, "?since=1d")["plots"] == first  # nothing happened: the same addresses
    image = client.get(first["throughput"])
    assert image.status_code == 200 and "max-age=3600" in image["Cache-Control"]
    assert client.get(first["throughput"]).content == image.content
    advance(waiting[0], *FINISH)
    second = data(client, "?since=1d")["plots"]
    assert second["throughput"] != first["throughput"]  # (its run lasted milliseconds: utilization may not move)
    # An address names its data: while the server keeps them, an old one shows them still.
    assert client.get(first["throughput"]).content == image.content
    views._series.clear()  # once they are gone, it shows the current data, not to be kept
    stale = client.get(first["throughput"])
    assert stale.status_code == 200 and "max-age=0" in stale["Cache-Control"]
    assert stale.content != image.content


def test_launchers_and_launches_are_listed(client, jobs):
    client_writes = write_client.get()
    client_writes.register_launcher("launcher-vm-1", "vm", 4242, "serial", 1, 8, 180)
    client_writes.create("launches", [{"scheduler": "slurm", "scheduler_id": "777", "queue": "debug", "nodes": 2,
                                       "wall_minutes": 30, "state": "queued"}])
    figures = data(client)
    [launcher] = figures["launchers"]
    assert (launcher["owner"], launcher["host"], launcher["capacity"], launcher["alive"]) == (
        "launcher-vm-1", "vm", 8, True)
    [launch] = figures["launches"]
    assert (launch["scheduler_id"], launch["queue"], launch["state"]) == ("777", "debug", "queued")
    assert "launcher-vm-1" in figures["html"]["launchers"] and "777" in figures["html"]["launches"]


def test_only_get_is_served(client):
    for url in ("/", "/dashboard.json", "/plots/throughput.png"):
        assert client.post(url).status_code in (403, 405), url


def test_numbers_and_times_are_shown_for_people():
    from balsam.web.templatetags.balsam_web import count, when

    assert count(1000000) == "1,000,000" and count(7) == "7" and count(None) is None
    assert when("2026-11-29T23:32:00.123456+00:00") == "2026-11-29 23:32:00" and when(None) == "—"
