"""The Django admin pages for jobs and applications, rendered by Django's test client."""

import pytest
from django.contrib.auth.models import User
from django.test import Client


@pytest.fixture
def admin_client(db):
    User.objects.create_superuser("admin", "admin@example.com", "pw")
    client = Client(HTTP_HOST="localhost")
    assert client.login(username="admin", password="pw")
    return client


def test_job_list_has_columns_filters_and_search(admin_client, make_job):
    job = make_job(name="visible_job", workflow="wf1")
    make_job(name="other_job", workflow="wf2").update_state("READY")
    page = admin_client.get("/admin/balsam/balsamjob/").content.decode()
    for text in ("visible_job", "other_job", job.short_id, "wf1", "CREATED", "READY", "By state", "By workflow"):
        assert text in page
    filtered = admin_client.get("/admin/balsam/balsamjob/?state__exact=READY").content.decode()
    assert "other_job" in filtered and "visible_job" not in filtered
    found = admin_client.get(f"/admin/balsam/balsamjob/?q={job.job_id}").content.decode()
    assert "visible_job" in found and "other_job" not in found


def test_job_page_shows_events(admin_client, make_job):
    job = make_job(name="evented")
    job.update_state("READY", "parents done")
    page = admin_client.get(f"/admin/balsam/balsamjob/{job.pk}/change/").content.decode()
    assert "parents done" in page and "READY" in page


def test_application_list(admin_client, make_app):
    make_app("simulator", "echo", description="does physics")
    page = admin_client.get("/admin/balsam/applicationdefinition/").content.decode()
    assert "simulator" in page and "does physics" in page
