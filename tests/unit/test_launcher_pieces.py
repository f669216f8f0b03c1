"""Node detection and MPI command lines (pure functions)."""

import pytest

from balsam.launcher import mpi_commands
from balsam.launcher.mpi_commands import Launch
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


LAUNCH = Launch(command=["./app", "-x"], hosts=["n1", "n2"], ranks_per_node=4, threads_per_rank=2, env={"A": "1"})


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
