"""Launch scripts rendered from templates (``string.Template``: ``$name``).

A user template ``<scheduler>.sh`` in ``<DB>/job-templates/`` or
``~/.balsam/job-templates/`` overrides the shipped one.
"""

import math
import shlex
import string
import sys
from pathlib import Path

from balsam import dbsettings
from balsam.service.schedulers import SchedulerError

SHIPPED = Path(__file__).resolve().parent / "templates"
REPO_SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"  # a checkout run without installing
LAUNCHER_MARGIN_FRACTION = 0.05  # the launcher stops this much before the allocation ends...
LAUNCHER_MARGIN_MIN_MINUTES = 1.0  # ...and at least this many minutes before


def template_path(scheduler, db_path):
    for directory in (Path(db_path) / "job-templates", Path.home() / ".balsam" / "job-templates", SHIPPED):
        candidate = directory / f"{scheduler}.sh"
        if candidate.is_file():
            return candidate
    raise SchedulerError(f"no launch template for scheduler {scheduler!r}")


def launcher_minutes(wall_minutes):
    """A time limit a little under the allocation's, so the launcher ends cleanly."""
    margin = max(LAUNCHER_MARGIN_MIN_MINUTES, wall_minutes * LAUNCHER_MARGIN_FRACTION)
    return round(max(wall_minutes * 0.5, wall_minutes - margin), 2)


def variables(launch, db_path, script_path):
    wall = float(launch["wall_minutes"])
    hours, minutes = divmod(math.ceil(wall), 60)
    scope = ["--wf-filter", launch["wf_filter"]] if launch.get("wf_filter") else ["--consume-all"]
    scheduler = launch["scheduler"]
    account = ""
    if launch.get("project"):
        account = {"slurm": f"#SBATCH --account={launch['project']}", "pbs": f"#PBS -A {launch['project']}"}.get(scheduler, "")
    return {
        "launch_id": str(launch["id"]),
        "scheduler": scheduler,
        "nodes": str(launch["nodes"]),
        "wall_minutes": f"{wall:g}",
        "wall_minutes_int": str(math.ceil(wall)),
        "walltime_hms": f"{hours:02d}:{minutes:02d}:00",
        "queue": launch["queue"],
        "project": launch.get("project", ""),
        "account_directive": account,
        "job_mode": launch["job_mode"],
        "wf_filter": launch.get("wf_filter", ""),
        "scope_args": shlex.join(scope),
        "launcher_minutes": f"{launcher_minutes(wall):g}",
        "db_path": shlex.quote(str(db_path)),
        "balsam": shlex.quote(str(Path(sys.executable).with_name("balsam"))),
        "python": shlex.quote(sys.executable),
        "output_path": str(Path(script_path).with_suffix(".out")),
        "umask_command": umask_command(db_path),
        "activate_command": activate_command(db_path),
    }


def activate_command(db_path):
    """The line sourcing balsamactivate for the DB: a launcher whose DB server
    died while the batch job waited in the queue brings it back (when it is
    the owner's). A no-op when the script is not installed next to balsam."""
    for script in (Path(sys.executable).with_name("balsamactivate"), REPO_SCRIPTS / "balsamactivate"):
        if script.is_file():
            balsam = shlex.quote(str(Path(sys.executable).with_name("balsam")))
            return f"BALSAM_CLI={balsam} . {shlex.quote(str(script))} {shlex.quote(str(db_path))} || exit 1"
    return ": balsamactivate is not installed next to balsam"


def umask_command(db_path):
    """The shell line applying the DB's umask (a shared DB's: what the batch job
    makes stays writable by the group), or a no-op saying there is none."""
    value = dbsettings.parse_umask(dbsettings.read(db_path).get("umask"))
    return ": no umask setting for this DB" if value is None else f"umask {value:04o}"


def render(launch, db_path, script_path):
    path = template_path(launch["scheduler"], db_path)
    values = variables(launch, db_path, script_path)
    try:
        return string.Template(path.read_text()).substitute(values)
    except KeyError as exc:
        raise SchedulerError(
            f"template {path} uses unknown variable ${exc.args[0]}; known: {', '.join('$' + k for k in sorted(values))}"
        ) from None
    except ValueError as exc:
        raise SchedulerError(f"template {path} is malformed: {exc}") from None
