"""Command lines that start a job's run: directly on this host in serial
mode, or its ranks through each platform's MPI launcher.

Each builder returns an argument list (never a shell string). No Django.
"""

import shlex
import socket
import subprocess
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RankLayout:
    """What to start: ``command`` (argv) on ``hosts`` with this layout."""

    command: list
    hosts: list
    ranks_per_node: int = 1
    threads_per_rank: int = 1
    threads_per_core: int = 1
    env: dict = field(default_factory=dict)

    @property
    def num_ranks(self):
        return len(self.hosts) * self.ranks_per_node


def mpich(layout, mpirun="mpiexec"):
    args = [mpirun, "-n", str(layout.num_ranks), "-ppn", str(layout.ranks_per_node), "-hosts", ",".join(layout.hosts)]
    for name, value in layout.env.items():
        args += ["-genv", name, str(value)]
    return args + list(layout.command)


def openmpi(layout, mpirun="mpirun"):
    args = [mpirun, "-n", str(layout.num_ranks), "--map-by", f"ppr:{layout.ranks_per_node}:node",
            "--host", ",".join(f"{h}:{layout.ranks_per_node}" for h in layout.hosts)]
    for name, value in layout.env.items():
        args += ["-x", f"{name}={value}"]
    return args + list(layout.command)


def slurm(layout, srun="srun"):
    args = [srun, "-n", str(layout.num_ranks), "--ntasks-per-node", str(layout.ranks_per_node),
            "--nodelist", ",".join(layout.hosts), "--cpus-per-task", str(layout.threads_per_rank)]
    if layout.env:
        args.append("--export=" + ",".join(["ALL"] + [f"{k}={v}" for k, v in layout.env.items()]))
    return args + list(layout.command)


def cray(layout, aprun="aprun"):
    args = [aprun, "-n", str(layout.num_ranks), "-N", str(layout.ranks_per_node), "-d", str(layout.threads_per_rank),
            "-j", str(layout.threads_per_core), "-cc", "depth", "-L", ",".join(layout.hosts)]
    for name, value in layout.env.items():
        args += ["-e", f"{name}={value}"]
    return args + list(layout.command)


BUILDERS = {"mpich": mpich, "openmpi": openmpi, "slurm": slurm, "cray": cray}


def choose(environ, mpirun_version_text=""):
    """Which builder suits this machine: srun inside Slurm, aprun on Cray,
    else the flavour ``mpirun --version`` reports."""
    if environ.get("SLURM_JOB_ID"):
        return "slurm"
    if environ.get("COBALT_PARTNAME") and not environ.get("COBALT_NODEFILE"):
        return "cray"
    if "Open MPI" in mpirun_version_text or "OpenRTE" in mpirun_version_text:
        return "openmpi"
    return "mpich"


def mpirun_version():
    """What ``mpirun --version`` says ('' when there is none)."""
    try:
        result = subprocess.run(["mpirun", "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout + result.stderr


class RunCommands:
    """A launcher's command lines for runs: the application's executable and
    the job's args, wrapped in the MPI launcher unless the job runs serially
    on this host."""

    def __init__(self, job_mode, num_nodes, environ):
        self.serial = job_mode == "serial"
        needs_mpi = job_mode == "mpi" or num_nodes > 1
        self.flavour = choose(environ, mpirun_version() if needs_mpi else "")
        self.local_hosts = {socket.gethostname(), socket.getfqdn(), "localhost"}
        self.environ = environ
        self._executables = {}  # application name -> its executable, split into words

    def argv(self, job, app, hosts, env):
        """The run's argument list; ``env``: the job's full environment (the
        MPI launcher is told what differs from the launcher's own)."""
        executable = self._executables.get(app.name)
        if executable is None:
            executable = self._executables[app.name] = shlex.split(app.executable)
        command = executable + shlex.split(job.args) if job.args else list(executable)
        if self.serial and set(hosts) <= self.local_hosts:
            return command
        extra = {k: v for k, v in env.items() if self.environ.get(k) != v and k != "PATH"}
        layout = RankLayout(command, hosts, job.ranks_per_node, job.threads_per_rank, job.threads_per_core, env=extra)
        return BUILDERS[self.flavour](layout)
