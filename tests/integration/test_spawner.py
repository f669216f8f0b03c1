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
