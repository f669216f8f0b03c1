"""`balsam web` in a real browser: Debian's Chromium driven by playwright (no
browser download), against `balsam web` and `balsam launcher` subprocesses
running real jobs on one DB.

Skipped with the reason when Chromium or playwright is missing; under CI=true
their absence fails the test instead.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import WebProcess, balsam_script, db_rows, wait_until

from balsam import api

APPS = Path(__file__).resolve().parents[1] / "fixtures" / "apps"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
PASSWORD = "browser-horse-42"
QUICK_JOBS = 8


def _missing(reason):
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required under CI=true: bash .ci/system-deps; pip install -r requirements-ci.txt)")
    pytest.skip(reason)


@pytest.fixture
def chromium():
    """Starts Chromium when called. Playwright's sync API runs an event loop in
    this thread, and Django refuses ORM calls beside one: the test does its
    Django work first and reads the DB with sqlite3 once the browser runs."""
    executable = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if not executable:
        _missing("Debian's chromium is not installed (apt-get install chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    with contextlib.ExitStack() as stack:
        def launch():
            playwright = stack.enter_context(sync_playwright())
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            stack.callback(browser.close)
            return browser

        yield launch


def finished_on_page(page):
    """The JOB_FINISHED count the dashboard shows now (0 when the row is absent)."""
    return page.evaluate("""() => {
        const row = document.querySelector('#balsam-state-table tr[data-state="JOB_FINISHED"] td.num');
        return row ? parseInt(row.textContent, 10) : 0;
    }""")


def plots_drawn(page):
    return page.evaluate("""() => ['throughput', 'utilization'].every(name => {
        const img = document.getElementById('balsam-plot-' + name);
        return img && img.complete && img.naturalWidth > 0;
    })""")


@pytest.mark.timeout(300)
def test_dashboard_and_admin_in_a_browser(db, chromium, tmp_path):
    api.add_app("sleeper", f"{sys.executable} {APPS / 'sleeper.py'}", check_paths=False)
    # Up to four at a time on this one node: the long job does not hold up the quick ones.
    victim = api.add_job(name="long_sleeper", workflow="browser", application="sleeper", args="120",
                         node_packing_count=4)
    for i in range(QUICK_JOBS):
        api.add_job(name=f"quick{i}", workflow="browser", application="sleeper", args="1.5", node_packing_count=4)
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    env = {**os.environ, "BALSAM_DB_PATH": str(db)}
    added = subprocess.run([balsam_script(), "web", "adduser", "watcher", "--password-file", str(password_file)],
                           capture_output=True, text=True, env=env, timeout=120)
    assert added.returncode == 0, added.stderr
    server = WebProcess(db)
    launcher = subprocess.Popen([balsam_script(), "launcher", "--consume-all", "--max-ranks-per-node", "4"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        page = chromium().new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(60_000)

        # Every page needs a login: the dashboard sends us to the login form.
        page.goto(server.url("/"))
        assert "/admin/login/" in page.url
        page.fill("#id_username", "watcher")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_selector("#balsam-dashboard")

        # The counts change while jobs finish, without reloading the page.
        page.evaluate("() => { window.balsamTestMarker = 'same page'; }")
        first = finished_on_page(page)
        wait_until(lambda: finished_on_page(page) >= min(first + 3, QUICK_JOBS), 120,
                   "the dashboard to show more finished jobs")
        assert page.evaluate("() => window.balsamTestMarker") == "same page"
        wait_until(lambda: plots_drawn(page), 60, "both plots to be drawn")
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        assert (tmp_path / "dashboard.png").stat().st_size > 10_000

        # Kill the long job with the admin action.
        wait_until(lambda: db_rows(db, f"SELECT state FROM balsam_job WHERE job_id = '{victim.pk.hex}'")
                   == [("RUNNING",)], 60, "the long job to run")
        page.goto(server.url("/admin/balsam/balsamjob/?state__exact=RUNNING"))
        page.check(f'input[name="_selected_action"][value="{victim.pk}"]')
        page.select_option('select[name="action"]', "kill_selected")
        page.click('button[name="index"]')
        page.wait_for_selector("ul.messagelist li")
        assert page.inner_text("ul.messagelist li").startswith("Killed 1")
        assert db_rows(db, f"SELECT state FROM balsam_job WHERE job_id = '{victim.pk.hex}'") == [("USER_KILLED",)]
        page.screenshot(path=str(tmp_path / "killed.png"), full_page=True)

        # The job's page shows its history with the kill.
        page.goto(server.url(f"/admin/balsam/balsamjob/{victim.pk}/change/"))
        assert "killed in the web admin by watcher" in page.content()
    finally:
        code, out, err = server.stop(signal.SIGTERM)
        launcher.send_signal(signal.SIGTERM)
        launcher.communicate(timeout=60)
    assert code == 0 and "balsam web stopped (SIGTERM)" in out, err
    assert "Traceback" not in err
