"""``balsam db stats`` and ``balsam db check [--repair]`` run as the console
script on purpose-built DBs: healthy ones, ones broken by hand (raw SQL on the
file, a stray directory, garbage bytes in a copy of the file), and the repairs,
directly and through a live dbserver."""

import json
import shutil

import pytest

from balsam.core.models import BalsamJob, JobEvent
from tests.helpers import db_rows, db_write

FINISH = ("READY", "STAGED_IN", "PREPROCESSED", "RUNNING", "RUN_DONE", "POSTPROCESSED", "JOB_FINISHED")


def client():
    from balsam.core import write_client

    return write_client.get()


def advance(pk, *path):
    for state in path:
        client().transition([str(pk)], state)


def finished_job(make_job, name):
    job = make_job(name=name)
    advance(job.pk, *FINISH)
    job.refresh_from_db()
    job.create_working_path()
    return job


def on_postgres(db):
    return (db / "balsamdb").exists()


def lines(text):
    return [line for line in text.splitlines() if line]


@pytest.mark.both_backends
def test_healthy_db_prints_nothing_and_exits_0(db, make_job, balsam_cmd):
    finished_job(make_job, "done")
    parent, child = make_job(name="parent"), make_job(name="child")
    from balsam import api

    api.add_dependency(parent, child)
    advance(child.pk, "AWAITING_PARENTS")
    for full in ([], ["--full"]):
        result = balsam_cmd("db", "check", *full)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    report = json.loads(balsam_cmd("db", "check", "--json").stdout)
    assert report["healthy"] is True and report["problems"] == [] and report["notes"] == []
    if on_postgres(db):  # the index check ran: amcheck is installed in the DB
        assert db_rows(db, "SELECT extname FROM pg_extension WHERE extname = 'amcheck'") == [("amcheck",)]


@pytest.mark.both_backends
def test_stats_counts_jobs_events_and_files(db, make_job, balsam_cmd):
    other = make_job(name="other", workflow="wf2")
    for _ in range(3):  # notes from long ago: not in the last hour
        db_write(db, "INSERT INTO balsam_job_event (job_seq, timestamp, from_state, to_state, message) "
                "VALUES ((SELECT seq FROM balsam_job WHERE job_id = ?), '2000-01-01 00:00:00', 'CREATED', 'CREATED', "
                "'old note')", [other.pk.hex])
    finished_job(make_job, "done")
    found = json.loads(balsam_cmd("db", "stats", "--json", check=True).stdout)
    assert found["jobs"] == 2
    assert found["jobs_by_state"] == {"CREATED": 1, "JOB_FINISHED": 1}
    assert found["jobs_by_workflow"] == {"wf": {"jobs": 1, "by_state": {"JOB_FINISHED": 1}},
                                         "wf2": {"jobs": 1, "by_state": {"CREATED": 1}}}
    events = JobEvent.objects.count()
    assert found["events"] == events and found["state_changes_last_hour"] == events - 3 >= len(FINISH)
    assert found["applications"] == 1 and found["launches"] == 0
    if on_postgres(db):
        assert found["db_bytes"] == db_rows(db, "SELECT pg_database_size(current_database())")[0][0]
        assert found["pages"] is None
    else:
        assert found["db_bytes"] == (db / "db.sqlite3").stat().st_size
        pages = found["pages"]
        assert pages["used_pages"] + pages["free_pages"] == pages["pages"] > 0
    assert found["oldest_job"] <= found["newest_job"]
    text = balsam_cmd("db", "stats", check=True).stdout
    assert "Jobs:          2" in text and "JOB_FINISHED" in text and "wf2" in text


@pytest.mark.both_backends
def test_broken_invariants_are_reported_one_line_each_and_repaired(writer, db, make_job, balsam_cmd):
    # A RUNNING job whose launcher stopped heartbeating long ago.
    running = make_job(name="stuck")
    advance(running.pk, *FINISH[:4])
    running.refresh_from_db()
    running.create_working_path()
    db_write(db, "UPDATE balsam_job SET lease_owner = 'gone-host:123', lease_heartbeat = '2000-01-01 00:00:00', "
            "lease_expires_at = '2000-01-01 00:03:00' WHERE job_id = ?", [running.pk.hex])
    # A child still waiting on a parent that FAILED (written past the rule that settles it).
    parent, child = make_job(name="parent"), make_job(name="child")
    from balsam import api

    api.add_dependency(parent, child)
    advance(child.pk, "AWAITING_PARENTS")
    db_write(db, "UPDATE balsam_job SET state = 'FAILED' WHERE job_id = ?", [parent.pk.hex])
    db_write(db, "INSERT INTO balsam_job_event (job_seq, timestamp, from_state, to_state, message) "
            "VALUES ((SELECT seq FROM balsam_job WHERE job_id = ?), '2026-01-01 00:00:00', 'CREATED', 'FAILED', "
            "'by hand')", [parent.pk.hex])
    # Applied-request ids no dbserver pruned.
    for n in range(3):
        db_write(db, "INSERT INTO balsam_applied_request (request_id, result, applied_at) VALUES (?, 'null', ?)",
            [f"old{n}", "2000-01-01 00:00:00"])

    found = balsam_cmd("db", "check")
    assert found.returncode == 1, found.stderr
    out = lines(found.stdout)
    assert len(out) == 3, out
    assert out[0].startswith("waiting: job [child | ") and "FAILED" in out[0]
    assert out[1].startswith("lease: RUNNING job [stuck | ") and "gone-host:123" in out[1]
    assert out[2] == ("applied-requests: 3 applied-request ids are older than the 3600 s retention "
                      "(--repair: prune them)")

    repaired = balsam_cmd("db", "check", "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "repaired: recovered 1 RUNNING job(s) with lapsed leases: now RESTART_READY" in repaired.stdout
    assert "repaired: settled 1 waiting job(s) of parents that cannot finish: now PARENT_KILLED" in repaired.stdout
    assert "repaired: pruned 3 applied-request id(s) past retention" in repaired.stdout
    assert "left:" not in repaired.stdout

    again = balsam_cmd("db", "check")
    assert (again.returncode, again.stdout) == (0, "")
    assert BalsamJob.objects.get(pk=running.pk).state == "RESTART_READY"
    assert BalsamJob.objects.get(pk=child.pk).state == "PARENT_KILLED"
    last = JobEvent.objects.filter(job__job_id=child.pk).order_by("-id").first()
    assert (last.from_state, last.to_state) == ("AWAITING_PARENTS", "PARENT_KILLED")
    assert db_rows(db, "SELECT COUNT(*) FROM balsam_applied_request WHERE request_id LIKE 'old%'") == [(0,)]


def test_a_job_without_a_number_does_not_shift_the_state_check_onto_others(db, make_job, balsam_cmd):
    """SQLite's check reads each job's number beside its id and state in
    concatenated lists; a number left NULL (by hand: the column allows it)
    must not pair the next job with the wrong state."""
    finished_job(make_job, "done")
    unnumbered, ready = make_job(name="unnumbered"), make_job(name="ready")
    advance(ready.pk, "READY")
    db_write(db, "UPDATE balsam_job SET seq = NULL WHERE job_id = ?", [unnumbered.pk.hex])

    result = balsam_cmd("db", "check")
    assert (result.returncode, result.stdout) == (0, ""), result.stdout + result.stderr


def test_what_cannot_be_repaired_is_reported_and_left_alone(db, make_job, balsam_cmd):
    lied = finished_job(make_job, "lied")
    db_write(db, "UPDATE balsam_job SET state = 'RUN_DONE' WHERE job_id = ?", [lied.pk.hex])
    gone = finished_job(make_job, "gone")
    shutil.rmtree(gone.working_directory)
    lost = [finished_job(make_job, f"lost{n}") for n in range(2)]  # their whole workflow folder is gone
    from balsam.core.models import BalsamJob as Job

    Job.objects.filter(pk__in=[j.pk for j in lost]).update(workflow="lostwf")  # a field update, not a move
    for job in lost:
        db_write(db, "UPDATE balsam_job SET workdir = ? WHERE job_id = ?", [f"lostwf/{job.workdir.split('/')[1]}",
                                                                       job.pk.hex])
    elsewhere = make_job(name="elsewhere", user_workdir=str(db.parent / "nowhere"))
    advance(elsewhere.pk, *FINISH)
    stray = db / "data" / "wf" / "ghost_0123abcd"
    stray.mkdir(parents=True)
    (stray / "result.txt").write_text("keep me")
    stray_top = db / "data" / "leftover"
    stray_top.mkdir()
    a = make_job(name="a")
    db_write(db, "INSERT INTO balsam_job_dependency (child_id, parent_id) VALUES (?, ?)", [a.pk.hex, "f" * 32])
    db_write(db, "INSERT INTO balsam_job_event (job_seq, timestamp, from_state, to_state, message) "  # a number no job has
            "VALUES ((SELECT MAX(seq) + 1000 FROM balsam_job), '2026-01-01 00:00:00', '', 'CREATED', "
            "'of a job long gone')")

    found = balsam_cmd("db", "check", "--repair")
    assert found.returncode == 1
    out = lines(found.stdout)
    assert any(line.startswith(f"state: job [lied | {lied.pk.hex[:8]}] is RUN_DONE but its last event moved it to "
                               "JOB_FINISHED") for line in out), out
    for job in [gone, elsewhere] + lost:
        assert any(line.startswith(f"directory: job [{job.name} | {job.pk.hex[:8]}] ran but its directory")
                   for line in out), (job.name, out)
    assert sum(line.startswith("directory: ") for line in out) == 4
    assert f"orphan-directory: {stray} belongs to no job (left alone: remove it yourself if it is not needed)" in out
    assert any(line.startswith(f"orphan-directory: {stray_top} ") for line in out)
    assert any(line.startswith("dependency: ") and "f" * 32 in line for line in out), out
    assert "foreign-key: events name 1 job id(s) that do not exist" in out
    assert not any(line.startswith("repaired:") for line in out)
    assert (stray / "result.txt").read_text() == "keep me" and stray_top.is_dir()
    report = json.loads(balsam_cmd("db", "check", "--json").stdout)
    assert {p["kind"] for p in report["problems"]} == {"state", "directory", "orphan-directory", "dependency",
                                                       "foreign-key"}
    assert not any(p["repairable"] for p in report["problems"])


def test_a_byte_corrupted_copy_fails_the_integrity_check(db, make_job, balsam_cmd, tmp_path):
    for n in range(300):
        make_job(name=f"job{n}", description="x" * 200)
    copy = tmp_path / "copy"
    shutil.copytree(db, copy)
    data = bytearray((copy / "db.sqlite3").read_bytes())
    assert len(data) > 40 * 4096
    for offset in range(10 * 4096, 30 * 4096, 4096):  # garbage over some pages, header intact
        data[offset + 8: offset + 1000] = bytes(range(256)) * 3 + bytes(224)
    (copy / "db.sqlite3").write_bytes(bytes(data))
    for full in ([], ["--full"]):
        found = balsam_cmd("--db", copy, "db", "check", *full)
        assert found.returncode == 1
        out = lines(found.stdout)
        assert out and all(line.startswith("integrity: ") for line in out), found.stdout + found.stderr
        assert "Traceback" not in found.stderr
    assert balsam_cmd("db", "check").returncode == 0  # the original is untouched


def test_one_job_as_json_has_every_field(db, make_job, balsam_cmd):
    """Inspection (#14 item 7): `balsam ls --id ID --verbose --json` is every field of the job, like a store's `get`."""
    from balsam.core.models import BalsamJob

    job = make_job(name="one", args="--x 1")
    result = balsam_cmd("ls", "--id", job.pk.hex[:8], "--verbose", "--json", check=True)
    (found,) = json.loads(result.stdout)
    fields = {f.name for f in BalsamJob._meta.concrete_fields}
    assert fields <= set(found) and found["job_id"] == str(job.pk) and found["args"] == "--x 1"
    assert found["working_directory"] == job.working_directory and found["parents"] == []
