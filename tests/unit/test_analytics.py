"""The analytics on a DB with known event times: exact counts per minute,
time-weighted utilization, launcher capacity, failures with their output,
launchers and launches, and that the kept aggregates stay equal to
what the job and event tables say.

Jobs are made through the write path; their histories are written at chosen
times by the operation that writes every state change (``record``)."""

import datetime
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import connection

from balsam import analytics, api
from balsam.core import sql, write_client
from balsam.core.models import BalsamJob, JobCount, LauncherRecord, StateMinute
from balsam.core.operations.transitions import record
from balsam.core.outputs import run_output_name
from balsam.exceptions import BalsamError, ValidationError

pytestmark = pytest.mark.both_backends  # the aggregates: SQLite's triggers and PostgreSQL's

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # on a minute


def at(seconds):
    return T0 + datetime.timedelta(seconds=seconds)


def _stamp(when):
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")  # as SQLite stores it


def history(job, *moves):
    """Give ``job`` the moves ``(seconds after T0, from, to[, message])`` at
    those times, through the operation that writes every state change and
    its event (``record``, as the write path does, with a chosen clock)."""
    state = BalsamJob.objects.get(pk=job.pk).state
    with sql.write_transaction():
        for seconds, from_state, to_state, *message in moves:
            assert from_state == state, f"a history must start where the job is ({state}), not at {from_state}"
            record({job.pk: from_state}, to_state, message[0] if message else "", at(seconds))
            state = to_state


# The moves of a job from CREATED to PREPROCESSED, ``before`` seconds before ``t``.
def prepared(t, before=3):
    return [(t - before, "CREATED", "READY"), (t - before + 1, "READY", "STAGED_IN"),
            (t - before + 2, "STAGED_IN", "PREPROCESSED")]


def launcher(owner, capacity, started, last_seen, stopped=None, wf_filter="", lease_expiry_sec=180):
    """A launcher record registered through the write path, then given
    chosen times (seconds after T0) as test setup."""
    write_client.get().register_launcher(owner, "node1", 1234, "serial", 1, capacity, lease_expiry_sec,
                                         wf_filter=wf_filter)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE balsam_launcher SET started_at = %s, last_seen_at = %s, stopped_at = %s "
                       "WHERE owner = %s", [_stamp(at(started)), _stamp(at(last_seen)),
                                            None if stopped is None else _stamp(at(stopped)), owner])


@pytest.fixture
def story(make_job):
    """Four jobs around T0 (seconds):
    a (w1): RUNNING 10..70, JOB_FINISHED at 75
    b (w1): RUNNING 30..150, JOB_FINISHED at 155
    c (w1): RUNNING from 120 on
    d (w2): RUNNING 0..45, RUN_ERROR at 45, FAILED at 46
    """
    jobs = {name: make_job(name=name, workflow="w2" if name == "d" else "w1") for name in "abcd"}
    run = [(1, "CREATED", "READY"), (2, "READY", "STAGED_IN"), (3, "STAGED_IN", "PREPROCESSED")]
    history(jobs["a"], *run, (10, "PREPROCESSED", "RUNNING"), (70, "RUNNING", "RUN_DONE"),
            (71, "RUN_DONE", "POSTPROCESSED"), (75, "POSTPROCESSED", "JOB_FINISHED"))
    history(jobs["b"], *run, (30, "PREPROCESSED", "RUNNING"), (150, "RUNNING", "RUN_DONE"),
            (151, "RUN_DONE", "POSTPROCESSED"), (155, "POSTPROCESSED", "JOB_FINISHED"))
    history(jobs["c"], *run, (120, "PREPROCESSED", "RUNNING"))
    history(jobs["d"], (-3, "CREATED", "READY"), (-2, "READY", "STAGED_IN"), (-1, "STAGED_IN", "PREPROCESSED"),
            (0, "PREPROCESSED", "RUNNING"), (45, "RUNNING", "RUN_ERROR", "exit code 1: boom"),
            (46, "RUN_ERROR", "FAILED", "no error handler"))
    return jobs


def approx(values):
    return pytest.approx(values, abs=1e-9)


# --------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400),
                                           ("1w", 604800), (" 2H ", 7200), ("1.5h", 5400)])
def test_since_parses_a_number_and_a_unit(text, seconds):
    assert analytics.parse_since(text) == datetime.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["all", "ALL", "", None])
def test_since_all_means_no_window(text):
    assert analytics.parse_since(text) is None


@pytest.mark.parametrize("text", ["xyz", "2", "h", "-1h", "0m", "1e3h", "nan", "2 hours", "1h30m", "9" * 12 + "w",
                                  "x" * 5000])
def test_a_malformed_since_is_one_clear_line(text):
    with pytest.raises(ValidationError) as caught:
        analytics.parse_since(text)
    message = str(caught.value)
    assert message.startswith("--since: expected a time window like 30m, 2h, 1d or all, not ")
    assert "\n" not in message and len(message) < 200


@pytest.mark.parametrize("span, bucket", [(60, 60), (3600, 60), (30000, 60), (30001, 120), (86400, 300),
                                          (7 * 86400, 1800), (365 * 86400, 86400), (20 * 365 * 86400, 3 * 604800)])
def test_buckets_keep_a_series_within_500_points(span, bucket):
    assert analytics.bucket_seconds(span) == bucket
    assert span / bucket <= analytics.MAX_POINTS


# --------------------------------------------------------------------------- counts
def test_state_counts_and_progress(story, make_job):
    make_job(name="e", workflow="w2")
    counts = analytics.state_counts()
    assert set(counts) == set(api_states()) and sum(counts.values()) == 5
    assert (counts["JOB_FINISHED"], counts["RUNNING"], counts["FAILED"], counts["CREATED"]) == (2, 1, 1, 1)
    assert analytics.state_counts("w2") == {**dict.fromkeys(api_states(), 0), "FAILED": 1, "CREATED": 1}
    assert analytics.workflows() == ["w1", "w2"]
    assert analytics.workflow_exists("w1") and not analytics.workflow_exists("nope")
    progress = analytics.workflow_progress()
    assert [(p.workflow, p.total, p.finished, p.failed) for p in progress] == [("w1", 3, 2, 0), ("w2", 2, 0, 1)]
    assert progress[0].percent_finished == pytest.approx(200 / 3)
    assert progress[0].by_state["RUNNING"] == 1
    assert analytics.workflow_progress("nope") == [] and sum(analytics.state_counts("nope").values()) == 0


def api_states():
    from balsam.core.states import ALL_STATES

    return ALL_STATES


# --------------------------------------------------------------------------- throughput
def test_throughput_counts_finished_jobs_per_minute(story):
    series = analytics.throughput(since=datetime.timedelta(minutes=3), now=at(180))
    assert series.unit == "jobs/min" and series.bucket_seconds == 60
    assert series.times == [at(0), at(60), at(120)]
    assert series.values == approx([0, 1, 1])
    # All history starts at the first finished job's minute.
    assert analytics.throughput(now=at(180)).times == [at(60), at(120)]
    assert analytics.throughput("w2", now=at(180)).values == []
    assert analytics.throughput("nope", since=datetime.timedelta(hours=1), now=at(180)).values == [0] * 60


def test_throughput_buckets_are_rates_per_minute(story, make_job):
    # 30 more jobs finish in minute 10; a 1 h window has 1-minute buckets, a 1 d one 5-minute buckets.
    for i in range(30):
        history(make_job(name=f"x{i}", workflow="w1"), *prepared(560), (570, "PREPROCESSED", "RUNNING"),
                (590, "RUNNING", "RUN_DONE"), (591, "RUN_DONE", "POSTPROCESSED"),
                (600 + i, "POSTPROCESSED", "JOB_FINISHED"))
    day = analytics.throughput(since=datetime.timedelta(days=1), now=at(900))
    assert day.bucket_seconds == 300
    by_time = dict(zip(day.times, day.values))
    assert by_time[at(0)] == pytest.approx(2 / 5)  # a and b in the 5 minutes from T0
    assert by_time[at(600)] == pytest.approx(30 / 5)
    assert sum(day.values) * 5 == pytest.approx(32)
    # A window ending on a minute's start leaves that minute out.
    assert analytics.throughput(since=datetime.timedelta(minutes=10), now=at(600)).values == [0, 1, 1] + [0] * 7
    # The bucket holding now is a rate over its elapsed part (at least a minute).
    partial = analytics.throughput(since=datetime.timedelta(minutes=20), now=at(630))
    assert partial.values[-1] == pytest.approx(30.0)


# --------------------------------------------------------------------------- utilization
def test_utilization_is_the_time_weighted_mean_of_running_jobs(story):
    series = analytics.utilization(since=datetime.timedelta(minutes=3), now=at(180))
    assert series.unit == "jobs" and series.times == [at(0), at(60), at(120)]
    # minute 0: d 45 s + a 50 s + b 30 s; minute 1: a 10 s + b 60 s; minute 2: b 30 s + c 60 s
    assert series.values == approx([125 / 60, 70 / 60, 90 / 60])
    w1 = analytics.utilization("w1", since=datetime.timedelta(minutes=3), now=at(180))
    assert w1.values == approx([80 / 60, 70 / 60, 90 / 60])
    # The minute holding now is cut at now: b and c each run its first 30 s.
    cut = analytics.utilization(since=datetime.timedelta(seconds=150), now=at(150))
    assert cut.times == [at(0), at(60), at(120)] and cut.values[-1] == pytest.approx(60 / 30)
    # Before anything ran, nothing ran; with no launcher seen, capacity is unknown.
    early = analytics.utilization(since=datetime.timedelta(minutes=5), now=at(180))
    assert early.values == approx([0, 0, 125 / 60, 70 / 60, 90 / 60]) and early.capacity == [None] * 5


def test_utilization_capacity_is_the_launchers_slots_time_weighted(story):
    launcher("l1", 4, started=30, last_seen=150, stopped=150)  # stopped cleanly
    launcher("l2", 2, started=-600, last_seen=20, wf_filter="w2")  # alive at 180: seen 160 s ago, expiry 180 s
    launcher("l3", 8, started=-600, last_seen=20, lease_expiry_sec=10)  # died: last seen at 20
    series = analytics.utilization(since=datetime.timedelta(minutes=3), now=at(180))
    assert series.capacity == approx([4 * 30 / 60 + 2 + 8 * 20 / 60, 4 + 2, 4 * 30 / 60 + 2])
    # A workflow's capacity: the launchers for all workflows or for it.
    w1 = analytics.utilization("w1", since=datetime.timedelta(minutes=5), now=at(180))
    assert w1.capacity == approx([8, 8, 2 + 8 * 20 / 60, 4, 2])
    w2 = analytics.utilization("w2", since=datetime.timedelta(minutes=3), now=at(180))
    assert w2.capacity == approx([2 + 2 + 8 * 20 / 60, 4 + 2, 2 + 2])


def test_history_stays_when_jobs_are_removed_or_change_workflow(story):
    before = (analytics.throughput(since=datetime.timedelta(minutes=3), now=at(180)),
              analytics.utilization(since=datetime.timedelta(minutes=3), now=at(180)),
              analytics.utilization("w1", since=datetime.timedelta(minutes=3), now=at(180)))
    api.remove_jobs([story["a"].pk])  # finished: its throughput stays
    api.modify_job(story["c"].short_id, "workflow", "w2")  # running: leaves w1, joins w2 now
    assert analytics.state_counts("w1")["RUNNING"] == 0 and analytics.state_counts("w2")["RUNNING"] == 1
    after = (analytics.throughput(since=datetime.timedelta(minutes=3), now=at(180)),
             analytics.utilization(since=datetime.timedelta(minutes=3), now=at(180)),
             analytics.utilization("w1", since=datetime.timedelta(minutes=3), now=at(180)))
    assert [s.values for s in after] == [s.values for s in before]
    api.remove_jobs([story["c"].pk])  # removed while running: counted out of RUNNING now
    assert analytics.utilization(since=datetime.timedelta(minutes=3), now=at(180)).values == before[1].values
    w2 = analytics.utilization("w2", since=datetime.timedelta(minutes=3), now=at(180))
    assert w2.values == approx([45 / 60, 0, 0])


# --------------------------------------------------------------------------- the aggregates themselves
def test_the_aggregates_match_the_tables_after_writes_of_every_kind(db, make_job):
    jobs = [make_job(name=f"j{i}", workflow=f"w{i % 3}") for i in range(12)]
    for job in jobs[:8]:
        job.update_state("READY")
    api.kill(jobs[0])
    api.kill(jobs[8])
    api.modify_job(jobs[1].short_id, "workflow", "w9")
    api.modify_job(jobs[2].short_id, "state", "STAGED_IN")
    api.remove_jobs([jobs[3].pk, jobs[9].pk])
    BalsamJob.objects.filter(pk=jobs[4].pk).update(workflow="w5")  # a queryset write

    with connection.cursor() as cursor:
        cursor.execute("SELECT workflow, state, count(*) FROM balsam_job GROUP BY workflow, state")
        table = {(w, s): n for w, s, n in cursor.fetchall()}
        cursor.execute("SELECT to_state, count(*) FROM balsam_job_event GROUP BY to_state")
        events = dict(cursor.fetchall())
    kept = {(w, s): n for w, s, n in JobCount.objects.totals()}
    assert kept == table
    assert events == {"READY": 7, "USER_KILLED": 2, "STAGED_IN": 1}
    moves = {}
    for state, entered, exited in StateMinute.objects.values_list("state", "entered", "exited"):
        moves[state] = (moves.get(state, (0, 0))[0] + entered, moves.get(state, (0, 0))[1] + exited)
    # The removed jobs' moves stay counted, their removal is an exit, and the
    # two READY jobs that changed workflow left one and entered another.
    assert moves == {"CREATED": (0, 10), "READY": (10, 5), "USER_KILLED": (2, 0), "STAGED_IN": (1, 0)}
    # So every workflow's count in every state is what entered less what left
    # (plus, for CREATED, the jobs created: creation makes no event).
    per_workflow = {}
    for wf, state, entered, exited in StateMinute.objects.values_list("workflow", "state", "entered", "exited"):
        per_workflow[wf, state] = per_workflow.get((wf, state), 0) + entered - exited
    for wf in ("w0", "w1", "w2"):
        per_workflow[wf, "CREATED"] = per_workflow.get((wf, "CREATED"), 0) + 4
    assert {key: n for key, n in per_workflow.items() if n} == table


def test_counts_of_jobs_added_from_several_connections_add_up(db, make_app):
    # On PostgreSQL each connection's inserts count in a shard of its own
    # (migration 0010) and state changes in shard 0, which goes negative here;
    # readers see the sums, and only the positive ones.
    make_app()

    def add(prefix):
        try:
            return [api.add_job(name=f"{prefix}{i}", workflow="w", application="hello").pk for i in range(3)]
        finally:
            connection.close()  # the thread's own connection

    with ThreadPoolExecutor(2) as pool:
        ids = [pk for made in pool.map(add, ("a", "b")) for pk in made]
    ids.append(api.add_job(name="c", workflow="w", application="hello").pk)
    write_client.get().transition([str(pk) for pk in ids[:4]], "READY")
    assert JobCount.objects.totals() == [("w", "CREATED", 3), ("w", "READY", 4)]
    assert analytics.state_counts("w")["CREATED"] == 3 and analytics.workflows() == ["w"]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT shard, count FROM balsam_job_count WHERE state = 'CREATED' AND shard = 0")
            assert cursor.fetchall() == [(0, -4)]
            cursor.execute("SELECT count(DISTINCT shard) FROM balsam_job_count WHERE state = 'CREATED' AND shard > 0")
            assert cursor.fetchone()[0] >= 1


def test_aggregate_tables_refuse_orm_writes(db, story):
    for model in (StateMinute, JobCount, LauncherRecord):
        with pytest.raises(BalsamError):
            model.objects.all().update(workflow="x")
        with pytest.raises(BalsamError):
            model.objects.all().delete()
        row = model.objects.first() or model()  # (the story has no launcher: an unsaved record)
        for write in (row.save, row.delete):  # one row's own save() and delete() too
            with pytest.raises(BalsamError, match="written|kept"):
                write()


# --------------------------------------------------------------------------- failures
def test_failures_latest_first_with_message_and_output_tail(db, make_job):
    now = datetime.datetime.now(UTC).replace(microsecond=0)
    T = lambda s: (now + datetime.timedelta(seconds=s) - T0).total_seconds()  # noqa: E731  seconds after T0
    failed, errored, timed_out = (make_job(name=n, workflow="w") for n in ("sim one", "two", "three"))
    history(failed, *prepared(T(-600)), (T(-600), "PREPROCESSED", "RUNNING"), (T(-590), "RUNNING", "RUN_ERROR", "exit code 3: x"),
            (T(-589), "RUN_ERROR", "FAILED", "RUN_ERROR, no error handler"))
    history(errored, *prepared(T(-30)), (T(-30), "PREPROCESSED", "RUNNING"), (T(-20), "RUNNING", "RUN_ERROR", "exit code 1: y"))
    history(timed_out, *prepared(T(-12)), (T(-11), "PREPROCESSED", "RUNNING"),
            (T(-10), "RUNNING", "RUN_TIMEOUT", "launcher stopped"))
    output = Path(failed.working_directory) / run_output_name(failed.name)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("".join(f"line {i}\n" for i in range(100)))

    found = analytics.failures()
    assert [(f.name, f.state) for f in found] == [("two", "RUN_ERROR"), ("sim one", "FAILED")]
    two, one = found
    assert one.job_id == failed.pk.hex and one.short_id == failed.pk.hex[:8] and one.workflow == "w"
    assert one.at == now - datetime.timedelta(seconds=589) and one.at.tzinfo is not None
    assert one.message == "RUN_ERROR, no error handler" and two.message == "exit code 1: y"
    assert one.output_tail == [f"line {i}" for i in range(95, 100)]
    assert two.output_tail == []  # no output file
    assert [f.name for f in analytics.failures(limit=1)] == ["two"]
    assert [f.name for f in analytics.failures(since=datetime.timedelta(minutes=5))] == ["two"]
    assert analytics.failures(tail_lines=0)[1].output_tail == []
    assert analytics.failures(tail_lines=2)[1].output_tail == ["line 98", "line 99"]
    assert analytics.failures("nope") == [] and len(analytics.failures("w")) == 2


# --------------------------------------------------------------------------- launchers, launches
def test_launchers_newest_first_with_jobs_held_and_liveness(db, make_job):
    now = datetime.datetime.now(UTC)
    T = lambda s: (now + datetime.timedelta(seconds=s) - T0).total_seconds()  # noqa: E731
    launcher("old:1:aaaaaa", 4, started=T(-7200), last_seen=T(-3600), stopped=T(-3600))
    launcher("dead:2:bbbbbb", 8, started=T(-600), last_seen=T(-200))  # expiry 180 s: past it
    launcher("live:3:cccccc", 16, started=T(-60), last_seen=T(-5))
    jobs = [make_job(name=f"j{i}") for i in range(3)]
    write_client.get().claim("live:3:cccccc", ["CREATED"], 2, 180)
    seen = analytics.launchers()
    assert [(s.owner, s.capacity, s.jobs_held, s.alive) for s in seen] == [
        ("live:3:cccccc", 16, 2, True), ("dead:2:bbbbbb", 8, 0, False), ("old:1:aaaaaa", 4, 0, False)]
    assert seen[2].stopped_at is not None and seen[0].stopped_at is None and seen[0].host == "node1"
    assert [s.owner for s in analytics.launchers(limit=1)] == ["live:3:cccccc"]
    assert len(jobs) == 3


def test_a_heartbeat_is_a_launchers_sign_of_life(db):
    launcher("l:1:aaaaaa", 4, started=-600, last_seen=-500)
    before = LauncherRecord.objects.get(owner="l:1:aaaaaa").last_seen_at
    write_client.get().heartbeat("l:1:aaaaaa", lease_expiry_sec=30)
    record = LauncherRecord.objects.get(owner="l:1:aaaaaa")
    assert record.last_seen_at > before and analytics.launchers()[0].alive
    write_client.get().stop_launcher("l:1:aaaaaa")
    assert not analytics.launchers()[0].alive


def test_launches_newest_first_with_their_jobs(db, make_job):
    from balsam.core.models import QueuedLaunch

    first = QueuedLaunch(scheduler="local", queue="local", nodes=1, wall_minutes=10)
    first.save()
    second = QueuedLaunch(scheduler="slurm", queue="debug", nodes=2, wall_minutes=30.5, scheduler_id="77",
                          state="queued")
    second.save()
    for i in range(3):
        make_job(name=f"j{i}")
    write_client.get().tie_jobs(second.pk, 2)
    found = analytics.launches()
    assert [(l.id, l.scheduler, l.queue, l.nodes, l.wall_minutes, l.state, l.jobs) for l in found] == [
        (second.pk, "slurm", "debug", 2, 30.5, "queued", 2), (first.pk, "local", "local", 1, 10, "pending-submission", 0)]
    assert found[0].scheduler_id == "77" and found[0].submitted_at is None
    assert [l.id for l in analytics.launches(limit=1)] == [second.pk]


def test_register_launcher_checks_its_values(db):
    client = write_client.get()
    good = dict(owner="h:1:aaaaaa", host="h", pid=1, job_mode="serial", num_nodes=1, capacity=4, lease_expiry_sec=60)
    for name, bad in (("job_mode", "both"), ("capacity", -1), ("capacity", 1.5), ("pid", 0), ("host", ""),
                      ("lease_expiry_sec", float("nan")), ("owner", ""), ("num_nodes", True)):
        with pytest.raises(ValidationError):
            client.register_launcher(**{**good, name: bad})
    assert not LauncherRecord.objects.exists()
    first = client.register_launcher(**good)
    assert client.register_launcher(**good) == first  # a retry finds its own row
    with pytest.raises(BalsamError):
        client.stop_launcher("unknown:1:x")


def test_an_output_tail_reads_only_the_end_of_the_file(tmp_path):
    from balsam.core.outputs import tail_lines

    big = tmp_path / "big.out"
    big.write_text("".join(f"line {i}\n" for i in range(200_000)) + "no newline at the end")
    assert tail_lines(big, 3) == ["line 199998", "line 199999", "no newline at the end"]
    # Only max_bytes are read: the line the bounded read cut in two is left out.
    assert tail_lines(big, 1000, max_bytes=40) == ["line 199999", "no newline at the end"]
    assert tail_lines(big, 1000, max_bytes=33) == ["line 199999", "no newline at the end"]  # whole lines
    assert tail_lines(big, 1000, max_bytes=34) == ["line 199999", "no newline at the end"]
    (tmp_path / "bin.out").write_bytes(b"ok\n\xff\xfe bad utf-8\n")
    assert tail_lines(tmp_path / "bin.out", 5) == ["ok", "\ufffd\ufffd bad utf-8"]
    assert tail_lines(tmp_path / "missing.out", 5) == [] and tail_lines(tmp_path, 5) == []
    assert tail_lines(big, 0) == []
