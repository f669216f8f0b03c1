"""``balsam doctor`` on each situation that stops jobs from running: it must
name the cause and the command that fixes it."""

import json

from tests.helpers import db_rows, db_write

LIVE = "2999-01-01 00:00:00"


def hold(db, job, owner, heartbeat="2999-01-01 00:00:00", expires=LIVE):
    db_write(db, "UPDATE balsam_job SET lease_owner = ?, lease_heartbeat = ?, lease_expires_at = ? WHERE job_id = ?",
        [owner, heartbeat, expires, job.pk.hex])


def findings(balsam_cmd, *args):
    result = balsam_cmd("doctor", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def causes(balsam_cmd, *args):
    return [f["cause"] for f in findings(balsam_cmd, *args)]


def test_no_launcher_active(db, make_job, balsam_cmd):
    make_job(name="a")
    found = findings(balsam_cmd)
    assert found[0] == {"cause": "no launcher, service or batch launch is active on this DB: nothing runs jobs",
                        "fix": "balsam launcher --consume-all   (or: balsam service)"}
    text = balsam_cmd("doctor").stdout
    assert text.startswith("- no launcher, service or batch launch is active")
    assert "    fix: balsam launcher --consume-all" in text


def test_a_live_launcher_and_nothing_wrong(db, make_job, balsam_cmd):
    job = make_job(name="a")
    hold(db, job, "nid1:5")
    assert findings(balsam_cmd) == []
    assert balsam_cmd("doctor").stdout.startswith("Nothing found that stops jobs from running")


def test_a_workflow_filter_that_matches_nothing(db, make_job, balsam_cmd):
    make_job(name="a", workflow="sweep")
    assert findings(balsam_cmd, "--wf", "swep") == [
        {"cause": "no job is in workflow 'swep' (workflows: 'sweep')", "fix": "balsam ls wf"}]


def test_jobs_waiting_on_parents_name_them_and_their_states(db, make_job, balsam_cmd):
    from balsam import api
    from balsam.core import write_client

    parent, child = make_job(name="parent"), make_job(name="child")
    api.add_dependency(parent, child)
    write_client.get().transition([str(child.pk)], "AWAITING_PARENTS")
    hold(db, parent, "nid1:5")
    found = findings(balsam_cmd, "child")
    assert found == [{"cause": f"job [child | {child.pk.hex[:8]}] waits on its parents: "
                               f"[parent | {parent.pk.hex[:8]}] CREATED",
                      "fix": f"balsam ls --id {child.pk.hex[:8]} --tree"}]


def test_two_launchers_without_a_dbserver(db, make_job, balsam_cmd):
    a, b = make_job(name="a"), make_job(name="b")
    hold(db, a, "nid1:5")
    hold(db, b, "nid2:6")
    found = findings(balsam_cmd)
    assert found[0]["cause"] == ("2 launchers write the DB file directly, without a dbserver: they wait on each "
                                 "other's locks")
    assert found[0]["fix"].startswith("balsam dbserver")


def test_jobs_held_by_a_silent_launcher(db, make_job, balsam_cmd):
    job = make_job(name="a")
    hold(db, job, "nid9:99", heartbeat="2000-01-01 00:00:00", expires="2999-01-01 00:00:00")
    found = [f for f in findings(balsam_cmd) if "held by" in f["cause"]]
    assert found == [{"cause": "1 job(s) are held by launcher nid9:99, silent since 2000-01-01 00:00:00 UTC (probably "
                               "dead); its lease expires at 2999-01-01 00:00:00 UTC, then any launcher takes them",
                      "fix": "wait until then, or stop that launcher; afterwards: balsam db check --repair"}]


def test_jobs_larger_than_any_queue(db, make_job, balsam_cmd):
    (db / "service.json").write_text(json.dumps({"scheduler": "local", "queues": {"small": {"max_nodes": 2,
                                                                                           "max_minutes": 30}}}))
    big = make_job(name="big", num_nodes=8, wall_time_minutes=10)
    make_job(name="fits", num_nodes=2, wall_time_minutes=10)
    found = [f for f in findings(balsam_cmd) if "more than any queue" in f["cause"]]
    assert found == [{"cause": f"job [big | {big.pk.hex[:8]}] needs 8 node(s) for 10 min, more than any queue allows "
                               "(2 node(s), 30 min in service.json)",
                      "fix": f"balsam modify jobs {big.pk.hex[:8]} --attr num_nodes --value 2   (or raise "
                             f"max_nodes/max_minutes in {db / 'service.json'})"}]


def test_a_launch_stuck_in_the_schedulers_queue(db, make_job, balsam_cmd):
    from balsam.core.models import QueuedLaunch

    make_job(name="a")
    launch = QueuedLaunch(scheduler="slurm", queue="debug", nodes=1, wall_minutes=10, state="queued",
                          scheduler_id="4242")
    launch.save()
    db_write(db, "UPDATE balsam_launch SET submit_time = '2000-01-01 00:00:00' WHERE id = ?", [launch.pk])
    found = [f for f in findings(balsam_cmd) if "batch launch" in f["cause"]]
    assert found == [{"cause": f"batch launch {launch.pk} (slurm job 4242, queue debug) has waited in the scheduler's "
                               "queue since 2000-01-01 00:00 UTC",
                      "fix": f"ask the scheduler why (squeue/qstat), or: balsam cancel-launch {launch.pk}"}]
    # An active launch counts as activity: no "nothing runs jobs".
    assert not any("no launcher" in c for c in causes(balsam_cmd))


def test_an_application_whose_executable_is_missing(db, make_job, balsam_cmd):
    make_job(name="a", application="ghost")
    db_write(db, "UPDATE balsam_app SET executable = '/no/such/program --flag' WHERE name = 'ghost'")
    found = [f for f in findings(balsam_cmd) if "executable" in f["cause"]]
    assert found == [{"cause": "application 'ghost': its executable /no/such/program is not found on this machine",
                      "fix": "balsam modify apps ghost --attr executable --value /path/to/program"}]


def test_a_job_that_ended_and_a_db_with_nothing_left(db, make_job, balsam_cmd):
    from balsam.core import write_client

    job = make_job(name="a")
    write_client.get().transition([str(job.pk)], "FAILED")
    assert findings(balsam_cmd, job.pk.hex[:8]) == [
        {"cause": f"job [a | {job.pk.hex[:8]}] has ended: FAILED", "fix": f"balsam ls --id {job.pk.hex[:8]} --history"}]
    assert causes(balsam_cmd) == ["every job has ended: nothing to run"]
    assert db_rows(db, "SELECT state FROM balsam_job") == [("FAILED",)]


def launcher(owner, host="nid7", pid=77, nodes=2, job_mode="mpi", wf_filter=""):
    from balsam.core import write_client

    write_client.get().register_launcher(owner, host, pid, job_mode, nodes, nodes * 4, 180, wf_filter=wf_filter)


def test_jobs_larger_than_the_running_launchers_nodes(db, make_job, balsam_cmd):
    launcher("nid7:77", nodes=2)
    small = make_job(name="small", num_nodes=2)
    hold(db, small, "nid7:77")
    big = make_job(name="big", num_nodes=16)
    found = [f for f in findings(balsam_cmd) if "node(s);" in f["cause"]]
    assert found == [{"cause": f"job [big | {big.pk.hex[:8]}] needs 16 node(s); launcher nid7:77 on nid7 has 2",
                      "fix": f"balsam modify jobs {big.pk.hex[:8]} --attr num_nodes --value 2   "
                             "(or run a launcher on 16 or more nodes)"}]
    # A launcher that stopped does not count: then nothing runs jobs at all.
    from balsam.core import write_client

    write_client.get().stop_launcher("nid7:77")
    db_write(db, "UPDATE balsam_job SET lease_owner = '', lease_expires_at = NULL")
    assert not any("node(s);" in c for c in causes(balsam_cmd))
    assert "no launcher, service or batch launch is active" in causes(balsam_cmd)[0]


def test_an_idle_launcher_while_jobs_are_ready(db, make_job, balsam_cmd):
    from balsam.core import write_client

    launcher("nid7:77", nodes=2)
    busy = make_job(name="busy")
    hold(db, busy, "nid8:88")  # another launcher at work: "nothing runs jobs" does not apply
    ready = [make_job(name=f"ready{n}") for n in range(3)]
    write_client.get().transition([str(j.pk) for j in ready], "READY")
    assert not [c for c in causes(balsam_cmd) if "holds no job" in c]  # ready just now: between two passes
    db_write(db, "UPDATE balsam_job SET state_changed_at = '2000-01-01 00:00:00' WHERE state = 'READY'")
    db_write(db, "UPDATE balsam_launcher SET started_at = '2000-01-01 00:00:00'")
    found = [f for f in findings(balsam_cmd) if "holds no job" in f["cause"]]
    assert found == [{"cause": "launcher nid7:77 on nid7 is running but holds no job, while 3 job(s) it could run "
                               "have been ready for over 2 minutes",
                      "fix": "balsam log --launcher nid7-77   (what it is doing; or stop it and start another)"}]
    # Jobs outside its workflow are not its business.
    db_write(db, "UPDATE balsam_launcher SET wf_filter = 'other'")
    assert not [c for c in causes(balsam_cmd) if "holds no job" in c]
