"""Moving files into and out of job directories.

Parent outputs are linked in by the launcher itself (fast, re-runnable);
URL transfers are argument lists the launcher runs as supervised processes.
"""

import glob
import os
import shutil
from pathlib import Path

from balsam.exceptions import BalsamError


class StagingError(BalsamError):
    pass


# The launcher's own logs in a job directory: never passed on to children.
BALSAM_LOGS = frozenset({"preprocess.log", "postprocess.log", "stage_in.log", "stage_out.log"})


def link_parent_files(workdir, input_files, parent_dirs, skip_names=()):
    """Symlink each parent's files matching ``input_files`` (space-separated
    globs) into ``workdir``, except Balsam's logs and ``skip_names`` (the
    parents' run outputs). Name clashes get the parent's short id appended.
    Running it again after an interruption changes nothing."""
    workdir = Path(workdir)
    patterns = input_files.split()
    skip = BALSAM_LOGS | set(skip_names)
    linked = 0
    for parent_id, parent_dir in parent_dirs:
        for pattern in patterns:
            for source in sorted(Path(parent_dir).glob(pattern)):
                if not source.is_file() or source.name in skip:
                    continue
                for name in (source.name, f"{source.name}_{parent_id.hex[:8]}"):
                    target = workdir / name
                    if target.is_symlink() and os.readlink(target) == str(source):
                        break  # linked by an earlier, interrupted stage-in
                    if not target.exists() and not target.is_symlink():
                        target.symlink_to(source)
                        linked += 1
                        break
                else:
                    raise StagingError(f"cannot link {source} into {workdir}: {source.name} and its suffixed name exist")
    return linked


def _local_path(url):
    for prefix in ("local:", "file://", "file:"):
        if url.startswith(prefix):
            return url[len(prefix):]
    if url.startswith("/") or url.startswith("~"):
        return url
    return None


def transfer_in_command(url, workdir):
    """Copy the contents of ``url`` (a directory or file) into ``workdir``."""
    local = _local_path(url)
    if local is not None:
        source = os.path.expanduser(local)
        if not os.path.exists(source):
            raise StagingError(f"stage-in source {source} does not exist")
        # --remove-destination: a staged-in file replaces a link to a parent's
        # file instead of writing through it into the parent's directory.
        if os.path.isdir(source):
            return ["cp", "-rp", "--remove-destination", os.path.join(source, "."), str(workdir)]
        return ["cp", "-p", "--remove-destination", source, str(workdir)]
    return _remote_copy(url.removeprefix("rsync:").removeprefix("scp:"), str(workdir) + "/")


def transfer_out_command(workdir, patterns, url):
    """Copy the files matching ``patterns`` in ``workdir`` to ``url``; None if nothing matches."""
    files = sorted({p for pattern in patterns.split() for p in glob.glob(os.path.join(workdir, pattern)) if os.path.isfile(p)})
    if not files:
        return None
    local = _local_path(url)
    if local is not None:
        destination = os.path.expanduser(local)
        os.makedirs(destination, exist_ok=True)
        return ["cp", "-p", *files, destination]
    return _remote_copy(files, url.removeprefix("rsync:").removeprefix("scp:"))


def _remote_copy(sources, destination):
    sources = [sources] if isinstance(sources, str) else list(sources)
    tool = shutil.which("rsync") or shutil.which("scp")
    if tool is None:
        raise StagingError("neither rsync nor scp is installed for a remote transfer")
    flag = "-a" if tool.endswith("rsync") else "-rp"
    return [tool, flag, *sources, destination]
