"""The launcher's spawner process on its own (real processes, no DB)."""

import os
import sys

from tests.helpers import wait_until

from balsam.launcher.processes import ManagedProcess, Spawner


def test_the_spawner_runs_this_balsam_whatever_directory_the_launcher_starts_in(tmp_path, monkeypatch):
    """``python -m`` puts the working directory first on the module path: a
    launcher started in a directory holding another Balsam tree (a checkout of
    another version) must still run its own spawner."""
    decoy = tmp_path / "other-tree" / "balsam" / "launcher"
    decoy.mkdir(parents=True)
    marker = tmp_path / "decoy-ran"
    for package in (decoy.parent, decoy):
        (package / "__init__.py").write_text("")
    (decoy / "spawner.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.chdir(decoy.parent.parent)
    spawner = Spawner(dict(os.environ))
    try:
        job_dir = tmp_path / "job"
        process = ManagedProcess(spawner, "run", 1, [sys.executable, "-c", "print('ran')"], job_dir, {},
                                 job_dir / "job.out")
        spawner.send()

        def ended():
            spawner.collect()
            return process.poll() is not None

        wait_until(ended, 30, "the run to end")
    finally:
        spawner.close()
    assert process.poll() == 0 and (job_dir / "job.out").read_text() == "ran\n"
    assert not marker.exists()


def _sleeper(seconds):
    return [sys.executable, "-c", f"import time; time.sleep({seconds})"]


MARK_RAN = [sys.executable, "-c", "open('ran', 'w').close()"]  # in the job's own directory


def _until(supervisor, condition, what):
    def check():
        supervisor.spawner.send()
        supervisor.spawner.collect()
        return condition()

    wait_until(check, 30, what)


def test_starts_queued_behind_a_run_that_went_on_too_long_are_handed_back_unstarted(tmp_path):
    """A queue behind a run commits its starts to that run's hosts. When the
    run goes on past the limit its queue was given, the spawner hands every
    start queued there back, unstarted, as its answers are read before the
    run's own end: the run gives its hosts back when it ends, and a start
    asking to wait behind one handed back is handed back too. A queue behind
    a run that ends in time starts as usual."""
    from balsam.launcher.supervisor import Supervisor

    supervisor = Supervisor(dict(os.environ))
    supervisor.start()
    try:
        supervisor.start_run("long", ["h1"], _sleeper(2), tmp_path / "long", {}, tmp_path / "long.out", None)
        for pk, after in (("q1", "long"), ("q2", "q1")):
            supervisor.start_run(pk, ["h1"], MARK_RAN, tmp_path / pk, {}, tmp_path / f"{pk}.out", None,
                                 after=after, hand_back_after=0.3)
        supervisor.start_run("short", ["h2"], _sleeper(0.2), tmp_path / "short", {}, tmp_path / "short.out", None)
        supervisor.start_run("q3", ["h2"], MARK_RAN, tmp_path / "q3", {}, tmp_path / "q3.out", None,
                             after="short", hand_back_after=30)
        queued = {pk: supervisor.runs[pk][0] for pk in ("q1", "q2", "q3")}
        _until(supervisor, lambda: queued["q1"].handed_back and queued["q2"].handed_back, "the long run's queue back")
        assert queued["q1"].pid is None and queued["q2"].pid is None
        assert supervisor.runs["long"][0].poll() is None, "the long run goes on"
        assert "long" not in supervisor.successors  # its hosts come back when it ends
        supervisor.start_run("q4", ["h1"], MARK_RAN, tmp_path / "q4", {}, tmp_path / "q4.out", None,
                             after="q2", hand_back_after=0.3)
        _until(supervisor, lambda: supervisor.runs["q4"][0].handed_back, "a start behind a handed-back one back too")
        _until(supervisor, lambda: queued["q3"].poll() == 0, "the short run's queue to start and end as usual")
        ended = {pk: process for pk, process, _, _ in supervisor.ended_runs()}
        assert {"q1", "q2", "q4", "short", "q3"} <= set(ended)
        assert not supervisor.takes_over("long")
        assert (tmp_path / "q3" / "ran").exists()
        assert not any((tmp_path / pk / "ran").exists() for pk in ("q1", "q2", "q4"))
    finally:
        supervisor.kill_everything()
        supervisor.close()


def test_a_stopped_run_whose_queue_is_handed_back_gives_its_hosts_back_once(tmp_path):
    """A stopped run with a queue behind it keeps its hosts for the queue's
    next run; if the spawner hands that queue back before the stopped run has
    ended, the hosts come back (once) instead."""
    from balsam.launcher.supervisor import Supervisor

    supervisor = Supervisor(dict(os.environ))
    supervisor.start()
    job = object()
    try:
        # A run that ignores SIGTERM for a while: still running when the limit passes.
        stubborn = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                    "open('ready', 'w').close(); time.sleep(0.8)"]
        supervisor.start_run("r", ["h1"], stubborn, tmp_path / "r", {}, tmp_path / "r.out", None)
        supervisor.start_run("q", ["h1"], _sleeper(0), tmp_path / "q", {}, tmp_path / "q.out", None, after="r",
                             hand_back_after=0.3)
        supervisor.send()
        _until(supervisor, lambda: (tmp_path / "r" / "ready").exists(), "the run to ignore SIGTERM")
        assert supervisor.stop("r", job) is None  # the queue's next run may take them
        freed = []
        _until(supervisor, lambda: freed.extend(supervisor.freed()) or freed, "the hosts back")
        assert freed == [(job, ["h1"])]

        def reaped():
            supervisor.reap_stopped()
            freed.extend(supervisor.freed())
            return not supervisor._zombies

        _until(supervisor, reaped, "the stopped run to be reaped")
        assert freed == [(job, ["h1"])]
    finally:
        supervisor.kill_everything()
        supervisor.close()
