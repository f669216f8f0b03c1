"""The admin pages of `balsam web`, rendered by Django's test client on a real
DB directory: login, the job list and page, edits, deletes and the job
actions -- every write through the write path, once directly and once
through a live dbserver (the `writer` fixture)."""

import html
import json
import re
from pathlib import Path

import pytest
from django.contrib.admin.utils import flatten_fieldsets
from django.test import Client

from tests.conftest import WEB_PASSWORD
from tests.helpers import db_rows

from balsam import api
from balsam.core import write_client
from balsam.core.models import BalsamJob
from balsam.web import accounts
from balsam.web.admin import BalsamJobAdmin

JOBS = "/admin/balsam/balsamjob/"
PASSWORD = WEB_PASSWORD


@pytest.fixture
def admin_client(web_client):
    return web_client


def page(response):
    return response.content.decode()


def stored(db, job, column="state"):
    return db_rows(db, f"SELECT {column} FROM balsam_job WHERE job_id = '{job.pk.hex}'")[0][0]


def events(db, job):
    return db_rows(db, f"SELECT from_state, to_state, message FROM balsam_job_event "
                       f"WHERE job_seq = (SELECT seq FROM balsam_job WHERE job_id = '{job.pk.hex}') ORDER BY id")


def messages_in(response):
    return [html.unescape(" ".join(m.split())) for m in re.findall(r'<li class="(?:success|warning|error|info)">(.*?)</li>',
                                                    page(response), re.S)]


EDITABLE = [f for f in flatten_fieldsets(BalsamJobAdmin.fieldsets) if f not in BalsamJobAdmin.readonly_fields]


def form_data(job, **changes):
    """What the change form posts for ``job`` with ``changes``."""
    job = BalsamJob.objects.get(pk=job.pk)
    data = {}
    for name in EDITABLE:
        value = changes.get(name, getattr(job, name))
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif isinstance(value, (dict, list)):
            data[name] = json.dumps(value)
        else:
            data[name] = "" if value is None else str(value)
    return data


def advance(job, *path):
    for state in path:
        job.update_state(state)


def run_action(client, action, *jobs, follow=True):
    return client.post(JOBS, {"action": action, "_selected_action": [str(j.pk) for j in jobs]}, follow=follow)


# --------------------------------------------------------------------------- login and pages
def test_every_page_needs_a_login(db, make_job):
    job = make_job()
    anonymous = Client(HTTP_HOST="localhost")
    for url in ("/", "/dashboard.json", "/plots/throughput.png", JOBS, f"{JOBS}{job.pk}/change/",
                "/admin/balsam/applicationdefinition/", "/admin/balsam/queuedlaunch/", "/admin/"):
        response = anonymous.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/"), url


def test_a_wrong_password_is_refused(db):
    accounts.add_user("alice", PASSWORD)
    client = Client(HTTP_HOST="localhost")
    assert not client.login(username="alice", password="not-the-password")
    response = client.post("/admin/login/", {"username": "alice", "password": "nope", "next": "/"})
    assert response.status_code == 200 and "Please enter the correct username and password" in page(response)


def test_login_and_page_views_write_nothing(db, admin_client, make_job):
    job = make_job()
    for url in ("/", JOBS, f"{JOBS}{job.pk}/change/"):
        assert admin_client.get(url).status_code == 200
    assert db_rows(db, "SELECT last_login FROM auth_user") == [(None,)]  # not stamped
    assert db_rows(db, "SELECT COUNT(*) FROM django_session") == [(0,)]  # signed-cookie sessions


def test_forms_need_a_csrf_token(db, make_job):
    accounts.add_user("alice", PASSWORD)
    job = make_job()
    strict = Client(HTTP_HOST="localhost", enforce_csrf_checks=True)
    assert strict.login(username="alice", password=PASSWORD)
    response = strict.post(f"{JOBS}{job.pk}/change/", form_data(job, args="--forged"))
    assert response.status_code == 403
    assert stored(db, job, "args") == ""


def test_static_files_are_served(admin_client):
    for path in ("/static/admin/css/base.css", "/static/balsam_web/dashboard.js", "/static/balsam_web/dashboard.css"):
        response = admin_client.get(path)
        assert response.status_code == 200, path
        assert b"".join(response.streaming_content)


def test_logins_and_passwords_are_not_managed_in_the_browser(admin_client):
    assert admin_client.get("/admin/auth/user/").status_code == 404
    text = page(admin_client.get("/admin/password_change/"))
    assert "balsam web passwd alice" in text
    assert admin_client.post("/admin/password_change/", {"new_password1": "x"}).status_code == 405


def test_job_list_has_columns_filters_and_search(admin_client, make_job, make_app):
    make_app("other_app")
    job = make_job(name="visible_job", workflow="wf1")
    make_job(name="other_job", workflow="wf2", application="other_app").update_state("READY")
    text = page(admin_client.get(JOBS))
    for shown in ("visible_job", "other_job", job.short_id, "wf1", "CREATED", "READY", "By state", "By workflow",
                  "By application"):
        assert shown in text
    for query, present, absent in (("state__exact=READY", "other_job", "visible_job"),
                                   ("workflow=wf1", "visible_job", "other_job"),
                                   ("application=other_app", "other_job", "visible_job"),
                                   (f"q={job.job_id}", "visible_job", "other_job")):
        text = page(admin_client.get(f"{JOBS}?{query}"))
        assert present in text and absent not in text, query
    response = admin_client.get(f"{JOBS}?workflow=no-such-wf")
    text = page(response)
    assert "visible_job" not in text and "other_job" not in text and "0 jobs" in text
    assert messages_in(response) == ["No workflow named 'no-such-wf': no jobs shown"]


def test_job_page_shows_history_relatives_and_output_tail(db, admin_client, make_job):
    parent = make_job(name="the_parent")
    job = make_job(name="the_job", parents=[str(parent.pk)])
    child = make_job(name="the_child", parents=[str(job.pk)])
    job.update_state("AWAITING_PARENTS", "waiting for 1 parent(s)")
    out = Path(BalsamJob.objects.get(pk=job.pk).working_directory)
    out.mkdir(parents=True)
    (out / "the_job.out").write_text("".join(f"line {i}\n" for i in range(1000)))
    text = page(admin_client.get(f"{JOBS}{job.pk}/change/"))
    assert "waiting for 1 parent(s)" in text and "AWAITING_PARENTS" in text
    from balsam.core.actor import process_user

    assert f"<td>{process_user()}</td><td>CREATED</td><td>AWAITING_PARENTS</td>" in text  # who made the change
    assert f'href="{JOBS}{parent.pk}/change/"' in text and "the_parent" in text
    assert f'href="{JOBS}{child.pk}/change/"' in text and "the_child" in text
    assert "line 960\n" in text and "line 999" in text and "line 959\n" not in text  # the last 40 lines


def test_a_job_that_is_not_there_is_a_404_page(admin_client, make_job):
    job = make_job()
    job_id = job.pk
    api.remove_jobs([job_id])
    for url in (f"{JOBS}{job_id}/change/", f"{JOBS}{job_id}/delete/", f"{JOBS}not-a-uuid/change/"):
        response = admin_client.get(url)
        assert response.status_code == 404, url
        assert "Not found" in page(response) and "Traceback" not in page(response)


# --------------------------------------------------------------------------- edits
def test_an_edit_goes_through_the_write_path(db, writer, admin_client, make_job):
    job = make_job(name="editable")
    response = admin_client.post(f"{JOBS}{job.pk}/change/", form_data(job, args="--steps 10", num_nodes=2,
                                                                     state="READY"))
    assert response.status_code == 302, page(response)
    assert stored(db, job, "args") == "--steps 10" and stored(db, job, "num_nodes") == 2
    assert stored(db, job) == "READY" and events(db, job)[-1][:2] == ("CREATED", "READY")
    assert write_client.get().mode == writer
    assert db_rows(db, "SELECT COUNT(*) FROM django_admin_log") == [(0,)]


def test_the_state_field_offers_only_legal_moves(db, admin_client, make_job):
    job = make_job()
    text = page(admin_client.get(f"{JOBS}{job.pk}/change/"))
    offered = re.findall(r'<option value="([A-Z_]+)"', text.split('name="state"')[1].split("</select>")[0])
    assert sorted(offered) == sorted(["CREATED", "AWAITING_PARENTS", "READY", "FAILED", "USER_KILLED",
                                      "PARENT_KILLED"])
    response = admin_client.post(f"{JOBS}{job.pk}/change/", form_data(job, state="JOB_FINISHED"))
    assert response.status_code == 200 and "Select a valid choice" in page(response)
    assert stored(db, job) == "CREATED"


def test_bad_values_are_refused_on_the_page(db, writer, admin_client, make_job):
    job = make_job()
    response = admin_client.post(f"{JOBS}{job.pk}/change/", form_data(job, num_nodes=0, args="changed"))
    assert response.status_code == 200 and "num_nodes" in page(response)
    response = admin_client.post(f"{JOBS}{job.pk}/change/", form_data(job, application="no_such_app", args="x"),
                                 follow=True)
    assert response.status_code == 200
    assert any(m.startswith("Not saved:") and "no_such_app" in m for m in messages_in(response)), messages_in(response)
    assert stored(db, job, "args") == "" and stored(db, job, "application") == "hello"


def test_a_final_job_cannot_be_moved(db, admin_client, make_job):
    job = make_job()
    job.update_state("USER_KILLED")
    text = page(admin_client.get(f"{JOBS}{job.pk}/change/"))
    assert re.findall(r'<option value="([A-Z_]+)"', text.split('name="state"')[1].split("</select>")[0]) == [
        "USER_KILLED"]
    response = admin_client.post(f"{JOBS}{job.pk}/change/", form_data(job, state="CREATED"))
    assert "Select a valid choice" in page(response) and stored(db, job) == "USER_KILLED"


def test_system_fields_cannot_be_posted(db, admin_client, make_job):
    job = make_job()
    data = form_data(job, args="ok")
    data.update(workdir="/etc", lease_owner="me", state_changed_at="2000-01-01 00:00:00", job_id="0" * 32)
    assert admin_client.post(f"{JOBS}{job.pk}/change/", data).status_code == 302
    assert stored(db, job, "args") == "ok"
    assert stored(db, job, "workdir") != "/etc" and stored(db, job, "lease_owner") == ""


def test_no_job_is_added_from_the_browser(admin_client):
    assert admin_client.get(f"{JOBS}add/").status_code == 403


# --------------------------------------------------------------------------- deletes
def test_delete_from_the_job_page(db, writer, admin_client, make_job):
    job = make_job()
    confirm = admin_client.get(f"{JOBS}{job.pk}/delete/")
    assert confirm.status_code == 200 and "Are you sure" in page(confirm)
    response = admin_client.post(f"{JOBS}{job.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert db_rows(db, f"SELECT COUNT(*) FROM balsam_job WHERE job_id = '{job.pk.hex}'") == [(0,)]


def test_a_job_a_launcher_holds_is_not_deleted(db, admin_client, make_job):
    job = make_job()
    job.update_state("READY")
    assert write_client.get().claim("launcher-x", ["READY"], 1, 600) == [str(job.pk)]
    response = admin_client.post(f"{JOBS}{job.pk}/delete/", {"post": "yes"}, follow=True)
    assert any("launcher launcher-x holds it" in m for m in messages_in(response))
    assert stored(db, job) == "READY"
    free = make_job(name="free")
    response = admin_client.post(JOBS, {"action": "delete_selected", "post": "yes",
                                        "_selected_action": [str(job.pk), str(free.pk)]}, follow=True)
    assert any(m.startswith("Deleted 1; skipped 1:") and job.short_id in m for m in messages_in(response))
    assert db_rows(db, "SELECT name FROM balsam_job") == [("job",)]


# --------------------------------------------------------------------------- actions
def test_kill_action_kills_descendants_and_skips_final_jobs(db, writer, admin_client, make_job):
    parent = make_job(name="p")
    child = make_job(name="c", parents=[str(parent.pk)])
    done = make_job(name="done")
    advance(done, "READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "POSTPROCESSED", "JOB_FINISHED")
    response = run_action(admin_client, "kill_selected", parent, done)
    assert messages_in(response) == [f"Killed 1 (and 1 descendant(s)); skipped 1: {done.short_id} (JOB_FINISHED: final)"]
    assert [stored(db, j) for j in (parent, child, done)] == ["USER_KILLED", "USER_KILLED", "JOB_FINISHED"]
    assert events(db, parent)[-1] == ("CREATED", "USER_KILLED", "killed in the web admin by alice")


def test_retry_action(db, writer, admin_client, make_job):
    failed, run_error, held, finished = (make_job(name=n) for n in ("failed", "run_error", "held", "finished"))
    failed.update_state("FAILED")
    BalsamJob.objects.filter(pk=failed.pk).update(timeout_retries=5)
    for job in (run_error, held):
        advance(job, "READY", "STAGED_IN", "PREPROCESSED")
    assert write_client.get().claim("launcher-y", ["PREPROCESSED"], 1, 600, scope={"job_ids": [str(held.pk)]})
    for job in (run_error, held):
        advance(job, "RUNNING", "RUN_ERROR")
    advance(finished, "READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "POSTPROCESSED", "JOB_FINISHED")
    response = run_action(admin_client, "retry_selected", failed, run_error, held, finished)
    [message] = messages_in(response)
    assert message.startswith("Retried 2; skipped 2:")
    assert f"{held.short_id} (RUN_ERROR: launcher launcher-y holds it and handles it)" in message
    assert f"{finished.short_id} (JOB_FINISHED: only FAILED, RUN_ERROR and RUN_TIMEOUT jobs are retried)" in message
    assert [stored(db, j) for j in (failed, run_error, held, finished)] == [
        "CREATED", "RESTART_READY", "RUN_ERROR", "JOB_FINISHED"]
    assert stored(db, failed, "timeout_retries") == 0
    assert events(db, failed)[-1] == ("FAILED", "CREATED", "retried in the web admin by alice")


def test_reset_to_ready_action(db, writer, admin_client, make_job):
    parent = make_job(name="parent")
    free = make_job(name="free")
    waiting = make_job(name="waiting", parents=[str(parent.pk)])
    waiting.update_state("AWAITING_PARENTS")
    running = make_job(name="running")
    advance(running, "READY", "STAGED_IN", "PREPROCESSED", "RUNNING")
    response = run_action(admin_client, "reset_ready_selected", free, waiting, running)
    [message] = messages_in(response)
    assert message.startswith("Made READY 1; skipped 2:")
    assert f"{waiting.short_id} (AWAITING_PARENTS: 1 of 1 parent(s) not finished)" in message
    assert f"{running.short_id} (RUNNING: not waiting for parents)" in message
    assert [stored(db, j) for j in (free, waiting, running)] == ["READY", "AWAITING_PARENTS", "RUNNING"]
    advance(parent, "READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "POSTPROCESSED", "JOB_FINISHED")
    assert messages_in(run_action(admin_client, "reset_ready_selected", waiting)) == ["Made READY 1"]
    assert stored(db, waiting) == "READY"


def test_the_skipped_list_is_bounded(db, admin_client, make_job):
    jobs = [make_job(name=f"j{i}") for i in range(14)]
    for job in jobs:
        job.update_state("USER_KILLED")
    [message] = messages_in(run_action(admin_client, "kill_selected", *jobs))
    assert message.startswith("Killed 0; skipped 14:") and message.endswith("and 4 more")
    assert message.count("(USER_KILLED: final)") == 10


# --------------------------------------------------------------------------- applications and launches
def test_applications_are_edited_through_the_write_path(db, writer, admin_client, make_app):
    app = make_app("simulator", "echo", description="does physics")
    assert "does physics" in page(admin_client.get("/admin/balsam/applicationdefinition/"))
    data = {"name": "simulator", "executable": "echo hi", "description": "changed", "preprocess": "",
            "postprocess": "", "environ_vars": "{}"}
    response = admin_client.post(f"/admin/balsam/applicationdefinition/{app.pk}/change/", data)
    assert response.status_code == 302
    assert db_rows(db, f"SELECT executable, description FROM balsam_app WHERE id = {app.pk}") == [("echo hi", "changed")]


def test_launches_are_shown_but_not_changed(admin_client):
    assert admin_client.get("/admin/balsam/queuedlaunch/").status_code == 200
    assert admin_client.get("/admin/balsam/queuedlaunch/add/").status_code == 403
