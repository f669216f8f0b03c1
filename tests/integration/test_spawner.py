"""The launcher's spawner process on its own (real processes, no DB)."""

import os
import sys
from pathlib import Path

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


def test_a_withdrawn_run_that_had_started_runs_on_and_one_still_waiting_is_given_back(tmp_path):
    """The launcher withdraws the runs queued behind a run that turned out
    long. Its view may be late: a run the spawner has started meanwhile (the
    run before it ended first) must run on and end as usual -- not be killed,
    not be started twice -- and one still waiting must leave without running,
    its place in the queue taken by the one behind it."""
    from balsam.launcher.supervisor import Supervisor

    def run(pk, code, after=None, hosts=("h",)):
        workdir = tmp_path / f"job{pk}"
        supervisor.start_run(pk, list(hosts), [sys.executable, "-c", code], workdir, {}, workdir / "out", None,
                             after)
        return workdir / "out"

    supervisor = Supervisor(dict(os.environ))
    supervisor.start()
    try:
        run(1, "pass")
        second = run(2, "print('second ran')", after=1)
        run(3, "import time; time.sleep(60)", hosts=("g",))
        fourth = run(4, "print('fourth ran')", after=3, hosts=("g",))
        fifth = run(5, "print('fifth ran')", after=4, hosts=("g",))
        supervisor.send()
        # Run 2 starts when run 1 ends; the launcher has not looked since, so
        # to it run 1 is still going and run 2 still waits.
        wait_until(lambda: second.is_file() and second.read_text() == "second ran\n", 30, "the second run to run")
        assert supervisor.runs[2][0].waiting
        assert supervisor.withdraw_queues(running_longer_than=0) == 3  # 2 (already started), 4 and 5
        supervisor.send()
        ended = {}

        def settled():
            ended.update((pk, code) for pk, _, _, code in supervisor.ended_runs())
            return {1, 2} <= set(ended) and not {4, 5} & set(supervisor.runs)

        wait_until(settled, 30, "the first two runs to end and the last two to be given back")
        assert ended == {1: 0, 2: 0}
        assert set(supervisor.runs) == {3} and 3 not in supervisor.successors
        assert supervisor.takes_over(1)  # as the launcher asks when it reaps run 1: run 2 took its hosts
        for output in (fourth, fifth):  # made ahead (the next in line's), never written to
            assert not output.exists() or output.read_text() == ""
    finally:
        supervisor.kill_everything()
        supervisor.close()


def test_a_run_ending_as_the_one_behind_it_is_given_back_returns_its_hosts(tmp_path):
    """The spawner's answers to a withdrawal and the end of the run before it
    can arrive together. Read in the order of the runs, the end came first,
    found the withdrawn run still linked behind it, and handed it the hosts:
    the slot was lost (a benchmark launcher ended with two lost slots and 60
    jobs it could never start). The given-back run is unlinked first."""
    from balsam.launcher.supervisor import Supervisor

    supervisor = Supervisor(dict(os.environ))
    supervisor.start()
    try:
        done = tmp_path / "first-done"
        for pk, code, after in [(1, f"import time, pathlib; time.sleep(1); pathlib.Path({str(done)!r}).touch()", None),
                                (2, "print('second ran')", 1)]:
            workdir = tmp_path / f"job{pk}"
            supervisor.start_run(pk, ["h"], [sys.executable, "-c", code], workdir, {}, workdir / "out", None, after)
        supervisor.send()
        first = supervisor.runs[1][0]

        def first_started():
            supervisor.spawner.collect()
            return first.pid is not None

        wait_until(first_started, 30, "the first run to start")
        assert supervisor.withdraw_queues(running_longer_than=0) == 1
        supervisor.send()
        wait_until(done.exists, 30, "the first run to end")
        # Reaped by the spawner (no longer even a zombie): both answers wait, unread.
        wait_until(lambda: not Path(f"/proc/{first.pid}").exists(), 30, "the first run to be reaped")
        ended, handed_on = {}, {}

        def settled():
            for pk, _, _, code in supervisor.ended_runs():  # as the launcher reaps: each end in turn
                ended[pk], handed_on[pk] = code, supervisor.takes_over(pk)
            return 1 in ended

        wait_until(settled, 30, "the first run's end to be read")
        assert ended == {1: 0} and not supervisor.runs
        assert handed_on == {1: False}, "run 1's hosts went to a run that never started"
    finally:
        supervisor.kill_everything()
        supervisor.close()


def test_a_withdrawn_run_handed_the_hosts_of_a_stopped_run_gives_them_back(tmp_path):
    """A run stopped while the one queued behind it is being withdrawn hands
    that one its hosts (it would start in its place). Given back, it never
    started: the hosts must come back to the launcher, once."""
    from balsam.launcher.supervisor import Supervisor

    supervisor = Supervisor(dict(os.environ))
    supervisor.start()
    try:
        for pk, code, after in [(1, "import time; time.sleep(60)", None), (2, "print('second ran')", 1)]:
            workdir = tmp_path / f"job{pk}"
            supervisor.start_run(pk, ["h"], [sys.executable, "-c", code], workdir, {}, workdir / "out", None, after)
        supervisor.send()
        assert supervisor.withdraw_queues(running_longer_than=0) == 1
        assert supervisor.stop(1) is None  # its hosts go to run 2 ...
        supervisor.send()

        def given_back():
            list(supervisor.ended_runs())
            return 2 not in supervisor.runs

        wait_until(given_back, 30, "run 2 to be given back")
        assert supervisor.returned_hosts() == [(2, ["h"])]  # ... which never started: they come back
        assert supervisor.returned_hosts() == []
    finally:
        supervisor.kill_everything()
        supervisor.close()
