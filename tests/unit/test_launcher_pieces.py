"""Node detection and MPI command lines (pure functions)."""

import pytest

from balsam.launcher import mpi_commands
from balsam.launcher.mpi_commands import RankLayout
from balsam.launcher.nodes import detect_nodes, expand_cobalt_partname, expand_slurm_nodelist


@pytest.mark.parametrize(
    "text, names",
    [
        ("nid[001-003,007]", ["nid001", "nid002", "nid003", "nid007"]),
        ("login1", ["login1"]),
        ("a[1-2],b3,c[09-10]-ib", ["a1", "a2", "b3", "c09-ib", "c10-ib"]),
    ],
)
def test_slurm_nodelists(text, names):
    assert expand_slurm_nodelist(text) == names


def test_cobalt_partition_names():
    assert expand_cobalt_partname("1001-1003,1030") == ["1001", "1002", "1003", "1030"]


def test_detection_order(tmp_path):
    nodefile = tmp_path / "nodes"
    nodefile.write_text("n1\nn1\nn2\n")
    assert [n.hostname for n in detect_nodes({"SLURM_JOB_NODELIST": "x[1-2]", "PBS_NODEFILE": str(nodefile)})] == ["x1", "x2"]
    assert [n.hostname for n in detect_nodes({"PBS_NODEFILE": str(nodefile)})] == ["n1", "n2"]
    assert [n.hostname for n in detect_nodes({"COBALT_PARTNAME": "5-6"})] == ["5", "6"]
    local = detect_nodes({}, cores_per_node=8)
    assert len(local) == 1 and local[0].cores == 8


LAUNCH = RankLayout(command=["./app", "-x"], hosts=["n1", "n2"], ranks_per_node=4, threads_per_rank=2, env={"A": "1"})


def test_mpich():
    assert mpi_commands.mpich(LAUNCH) == [
        "mpiexec", "-n", "8", "-ppn", "4", "-hosts", "n1,n2", "-genv", "A", "1", "./app", "-x"]


def test_openmpi():
    assert mpi_commands.openmpi(LAUNCH) == [
        "mpirun", "-n", "8", "--map-by", "ppr:4:node", "--host", "n1:4,n2:4", "-x", "A=1", "./app", "-x"]


def test_slurm():
    assert mpi_commands.slurm(LAUNCH) == [
        "srun", "-n", "8", "--ntasks-per-node", "4", "--nodelist", "n1,n2", "--cpus-per-task", "2",
        "--export=ALL,A=1", "./app", "-x"]


def test_cray():
    assert mpi_commands.cray(LAUNCH) == [
        "aprun", "-n", "8", "-N", "4", "-d", "2", "-j", "1", "-cc", "depth", "-L", "n1,n2", "-e", "A=1", "./app", "-x"]


def test_choice():
    assert mpi_commands.choose({"SLURM_JOB_ID": "1"}) == "slurm"
    assert mpi_commands.choose({"COBALT_PARTNAME": "1-2"}) == "cray"
    assert mpi_commands.choose({}, "mpirun (Open MPI) 4.1.4") == "openmpi"
    assert mpi_commands.choose({}, "HYDRA build details") == "mpich"


# --------------------------------------------------------------------------- staging
import json
import os
import sys
import uuid
from types import SimpleNamespace

from balsam.launcher import staging
from balsam.launcher.environment import base_environment, job_variables


def test_parent_files_are_linked_with_clash_suffixes_and_reruns_change_nothing(tmp_path):
    parent_a, parent_b, workdir = tmp_path / "a", tmp_path / "b", tmp_path / "job"
    for directory in (parent_a, parent_b, workdir):
        directory.mkdir()
    (parent_a / "out.dat").write_text("a")
    (parent_b / "out.dat").write_text("b")
    (parent_a / "skip.log").write_text("x")
    ids = [uuid.UUID("aaaaaaaa" + "0" * 24), uuid.UUID("bbbbbbbb" + "0" * 24)]
    parents = list(zip(ids, [parent_a, parent_b]))
    assert staging.link_parent_files(workdir, "*.dat", parents) == 2
    assert sorted(p.name for p in workdir.iterdir()) == ["out.dat", "out.dat_bbbbbbbb"]
    assert (workdir / "out.dat_bbbbbbbb").read_text() == "b"
    assert staging.link_parent_files(workdir, "*.dat", parents) == 0  # an interrupted stage-in, run again


def test_transfer_commands(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    assert staging.transfer_in_command(f"local:{source}", tmp_path / "job") == [
        "cp", "-rp", "--remove-destination", f"{source}/.", str(tmp_path / "job")]
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "result.txt").write_text("1")
    assert staging.transfer_out_command(tmp_path / "job", "*.txt *.none", f"file:{tmp_path / 'out'}") == [
        "cp", "-p", str(tmp_path / "job" / "result.txt"), str(tmp_path / "out")]
    assert staging.transfer_out_command(tmp_path / "job", "*.none", f"local:{tmp_path / 'out'}") is None
    with pytest.raises(staging.StagingError, match="does not exist"):
        staging.transfer_in_command(f"local:{tmp_path / 'missing'}", tmp_path)


def test_job_environment(monkeypatch):
    monkeypatch.setenv("INHERITED", "yes")
    monkeypatch.setenv("BALSAM_JOB_ERROR", "TRUE")  # left over from a handler that started us
    job = SimpleNamespace(job_id=uuid.UUID(int=1), environ_vars={"JOB_VAR": "j", "SHARED": "job"}, threads_per_rank=4)
    parent, child = uuid.UUID(int=2), uuid.UUID(int=3)
    env = base_environment() | job_variables(job, {"APP_VAR": "a", "SHARED": "app"}, [parent], [child], "/db",
                                             handler="TIMEOUT")
    assert env["INHERITED"] == "yes" and env["APP_VAR"] == "a" and env["JOB_VAR"] == "j" and env["SHARED"] == "job"
    assert env["BALSAM_JOB_ID"] == str(job.job_id) and env["BALSAM_DB_PATH"] == "/db"
    assert json.loads(env["BALSAM_PARENT_IDS"]) == [str(parent)] and json.loads(env["BALSAM_CHILD_IDS"]) == [str(child)]
    assert env["OMP_NUM_THREADS"] == "4" and env["BALSAM_JOB_TIMEOUT"] == "TRUE" and "BALSAM_JOB_ERROR" not in env
    assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)


def test_balsam_logs_and_parent_run_outputs_are_not_linked(tmp_path):
    parent, workdir = tmp_path / "p", tmp_path / "job"
    parent.mkdir()
    workdir.mkdir()
    for name in ("preprocess.log", "postprocess.log", "parent.out", "data.txt"):
        (parent / name).write_text(name)
    staging.link_parent_files(workdir, "*", [(uuid.UUID(int=5), parent)], skip_names={"parent.out"})
    assert sorted(p.name for p in workdir.iterdir()) == ["data.txt"]


def _open_fds():
    import os

    return set(os.listdir("/proc/self/fd"))


def test_a_start_ahead_of_its_prepared_files_opens_its_own_and_none_is_left_open(tmp_path, monkeypatch):
    """The spawner's ``_Preparer`` makes the next start's directory and output
    file on a thread of its own. A start that comes while that is under way
    takes nothing (it opens its own) and the file the thread then opens is
    closed, not kept for a start that has already happened."""
    import os
    import threading

    from balsam.launcher import spawner
    from tests.helpers import wait_until

    gate = threading.Event()
    make = spawner._make_directory
    monkeypatch.setattr(spawner, "_make_directory", lambda path: (gate.wait(10), make(path)))
    before = _open_fds()
    preparer = spawner._Preparer()
    slow = tmp_path / "slow"
    preparer.ask("slow", str(slow), str(slow / "out.txt"), "")
    assert preparer.take("slow") is None  # still being made: the start does it itself
    gate.set()
    wait_until(lambda: (slow / "out.txt").exists(), 10, "the thread to finish its work")
    wait_until(lambda: _open_fds() == before, 10, "the file the thread opened to be closed")
    ready = tmp_path / "ready"
    preparer.ask("ready", str(ready), str(ready / "out.txt"), "")
    wait_until(lambda: "ready" not in preparer._pending, 10, "the next start's files")
    out = preparer.take("ready")
    assert os.fstat(out).st_ino == (ready / "out.txt").stat().st_ino
    os.close(out)
    assert _open_fds() == before


def test_the_spawner_remembers_a_bounded_number_of_handed_back_starts(monkeypatch):
    """A start asking to wait behind one handed back is handed back too, so
    the spawner remembers handed-back keys -- the latest HANDED_BACK_KEPT, not
    every one over a launcher's days."""
    from balsam.launcher import spawner

    monkeypatch.setattr(spawner, "HANDED_BACK_KEPT", 3)
    children = spawner._Children()
    for key in range(1, 6):
        children._remember_handed_back(key)
    assert list(children.handed_back) == [3, 4, 5]
    reply = children.request(6, ["/bin/true"], "/nonexistent", {}, "/nonexistent/out", "", after=5)
    assert reply == [("failed", 6, spawner.HANDED_BACK)]
    assert list(children.handed_back) == [4, 5, 6]


class _Heartbeats:
    """A write client that records the lease calls a launcher's job source makes."""

    def __init__(self):
        self.calls = []

    def heartbeat(self, owner, lease_expiry_sec):
        self.calls.append("heartbeat")

    def recover_expired(self, lease_expiry_sec):
        self.calls.append("recover")
        return []


def test_a_launcher_on_a_node_booted_moments_ago_keeps_its_leases_from_the_first_pass(monkeypatch):
    """time.monotonic() counts from boot: a duty never done is due at once,
    not once the node has been up for its period (a heartbeat 60 s late on a
    node booted with the batch job, a dependency look an hour late in tests
    run on a machine up for less than that)."""
    from balsam.launcher import job_source

    monkeypatch.setattr(job_source.time, "monotonic", lambda: 5.0)  # up for 5 s
    client = _Heartbeats()
    source = job_source.JobSource(client, "me", {}, lease_expiry_sec=180)
    source.keep_leases()
    assert client.calls == ["heartbeat", "recover"]
    source.keep_leases()
    assert client.calls == ["heartbeat", "recover"]  # then each on its period


class _Resolves:
    mode = "direct"

    def __init__(self):
        self.batches = []

    def resolve_dependencies(self, ids):
        self.batches.append(list(ids))
        return {"ready": [str(i) for i in ids], "awaiting": []}


def test_a_looks_candidates_move_in_writes_that_double_after_the_first(monkeypatch):
    """Each write has a fixed cost: a submission of thousands moves in a few
    writes, the first one small so that its jobs start at once."""
    import uuid

    from balsam.core import queries
    from balsam.launcher import job_source

    waiting = [(uuid.uuid4(), "CREATED", True) for _ in range(3000)]
    monkeypatch.setattr(queries, "waiting_jobs", lambda scope, limit=None: waiting[:limit])
    monkeypatch.setattr(queries, "parent_states", lambda ids: {})
    monkeypatch.setattr(queries, "commits_seen", lambda: None)
    client = _Resolves()
    source = job_source.JobSource(client, "me", {}, lease_expiry_sec=180)
    while source.resolve_dependencies(limit=72):
        pass

    assert [len(b) for b in client.batches] == [72, 144, 288, 576, 1024, 896]
    assert sorted(pk for b in client.batches for pk in b) == sorted(pk for pk, _, _ in waiting)
