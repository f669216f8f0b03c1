"""Real UNIX users and groups for the multi-user tests (root only; required under CI=true).

Each user gets a home of its own under /tmp (for ~/.balsam/) and runs Balsam
with an interpreter it may execute (the test's own venv may live in root's
home) and this checkout's packages on ``PYTHONPATH``.
"""

import os
import pwd
import grp
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Appended to every test user's and group's name, so two checkouts' suites can
# run at once on one machine without removing each other's users.
SUFFIX = os.environ.get("BALSAM_TEST_USER_SUFFIX", "")


def named(base):
    """The name of the test user or group ``base`` in this run (see SUFFIX)."""
    return base + SUFFIX


def unavailable(reason):
    if os.environ.get("CI") == "true":
        pytest.fail(f"the multi-user tests need real UNIX users: {reason}")
    pytest.skip(f"the multi-user tests need real UNIX users: {reason}")


def require_root():
    if os.geteuid() != 0 or not shutil.which("runuser") or not shutil.which("useradd"):
        unavailable("making users and switching to them needs root, useradd and runuser")


def make_group(name):
    try:
        grp.getgrnam(name)
    except KeyError:
        _check(["groupadd", name], f"groupadd {name}")


def make_user(name, groups=()):
    """A user with a home under /tmp, in ``groups`` (supplementary); returns its home."""
    home = Path("/tmp") / f"home-{name}"
    if not exists(name):
        argv = ["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/bash", name]
        if groups:
            argv[1:1] = ["--groups", ",".join(groups)]
        _check(argv, f"useradd {name}")
    return home


def remove_user(name):
    subprocess.run(["userdel", "--remove", name], capture_output=True)


def remove_group(name):
    subprocess.run(["groupdel", name], capture_output=True)


def _check(argv, what):
    made = subprocess.run(argv, capture_output=True, text=True)
    if made.returncode != 0:
        unavailable(f"{what} failed: {made.stderr.strip()}")


def run_as(user, argv, env=None, timeout=120):
    return subprocess.run(["runuser", "-u", user, "--", "env", *(f"{k}={v}" for k, v in (env or {}).items()), *argv],
                          capture_output=True, text=True, timeout=timeout)


def exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def python_for(user, imports="balsam.cli.main, django, zmq"):
    """An interpreter of this Python version that ``user`` may execute and that imports Balsam's packages."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    path = pythonpath()
    for candidate in (os.path.realpath(sys.executable), f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        if os.path.exists(candidate) and run_as(user, [candidate, "-c", f"import {imports}"],
                                                env={"PYTHONPATH": path}).returncode == 0:
            return candidate
    unavailable(f"no Python {sys.version_info.major}.{sys.version_info.minor} that {user} may run with Balsam's packages")


def pythonpath():
    return os.pathsep.join([str(REPO), *site.getsitepackages()])
