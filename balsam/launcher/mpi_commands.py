"""Command lines that start one job's ranks with each platform's MPI launcher.

Each builder returns an argument list (never a shell string). Pure Python: no
Django, no imports of each other.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Launch:
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


def mpich(launch, mpirun="mpiexec"):
    args = [mpirun, "-n", str(launch.num_ranks), "-ppn", str(launch.ranks_per_node), "-hosts", ",".join(launch.hosts)]
    for name, value in launch.env.items():
        args += ["-genv", name, str(value)]
    return args + list(launch.command)


def openmpi(launch, mpirun="mpirun"):
    args = [mpirun, "-n", str(launch.num_ranks), "--map-by", f"ppr:{launch.ranks_per_node}:node",
            "--host", ",".join(f"{h}:{launch.ranks_per_node}" for h in launch.hosts)]
    for name, value in launch.env.items():
        args += ["-x", f"{name}={value}"]
    return args + list(launch.command)


def slurm(launch, srun="srun"):
    args = [srun, "-n", str(launch.num_ranks), "--ntasks-per-node", str(launch.ranks_per_node),
            "--nodelist", ",".join(launch.hosts), "--cpus-per-task", str(launch.threads_per_rank)]
    if launch.env:
        args.append("--export=" + ",".join(["ALL"] + [f"{k}={v}" for k, v in launch.env.items()]))
    return args + list(launch.command)


def cray(launch, aprun="aprun"):
    args = [aprun, "-n", str(launch.num_ranks), "-N", str(launch.ranks_per_node), "-d", str(launch.threads_per_rank),
            "-j", str(launch.threads_per_core), "-cc", "depth", "-L", ",".join(launch.hosts)]
    for name, value in launch.env.items():
        args += ["-e", f"{name}={value}"]
    return args + list(launch.command)


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
