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
