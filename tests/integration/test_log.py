"""``balsam log`` as a real process on real log files: which log it picks,
how many lines, following through rotation and a newer launcher, Ctrl-C,
a closed pipe, bad input, and that it writes nothing in the DB directory."""

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BALSAM
from tests.helpers import TAKES_CTRL_C, wait_until

LINES = [f"2026-01-01 00:00:{i % 60:02d},000|1|INFO|balsam.x:1] line {i}" for i in range(200)]


def write_log(db, name, lines=LINES, age_sec=0):
    """A log file under <db>/log with ``lines``, last modified ``age_sec`` ago."""
    path = db / "log" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    stamp = path.stat().st_mtime - age_sec
    os.utime(path, (stamp, stamp))
    return path


def append(path, *lines):
    with open(path, "a") as f:
        f.write("".join(f"{line}\n" for line in lines))


def tree(directory):
    """Every path under ``directory`` with its size and modification time."""
    found = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = Path(root) / name
            stat = path.lstat()
            found[str(path.relative_to(directory))] = (stat.st_size, stat.st_mtime_ns)
    return found


def assert_one_line(result, expected_start, code):
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected_start), result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr


class Following:
    """``balsam log ARGS`` running, its stdout and stderr read without blocking."""

    def __init__(self, db, *args):
        self.process = subprocess.Popen([BALSAM, "log", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        env=dict(os.environ, BALSAM_DB_PATH=str(db)), **TAKES_CTRL_C)
        for stream in (self.process.stdout, self.process.stderr):
            os.set_blocking(stream.fileno(), False)
        self.out = ""
        self.err = ""

    def _read(self):
        for stream, attr in ((self.process.stdout, "out"), (self.process.stderr, "err")):
            while True:
                try:
                    data = os.read(stream.fileno(), 65536)
                except BlockingIOError:
                    break
                if not data:
                    break
                setattr(self, attr, getattr(self, attr) + data.decode())

    def wait_for(self, text, stream="out", timeout=30):
        def seen():
            self._read()
            return text in getattr(self, stream)

        wait_until(seen, timeout, f"{text!r} on balsam log's std{stream} (so far: {getattr(self, stream)[-500:]!r})")

    def interrupt(self):
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)
        self._read()
        return self.process.returncode

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        self.process.stdout.close()
        self.process.stderr.close()


@pytest.fixture
def following(db):
    started = []

    def start(*args):
        started.append(Following(db, *args))
        return started[-1]

    yield start
    for each in started:
        each.stop()


# ---------------------------------------------------------------------------
# which log, how much of it
# ---------------------------------------------------------------------------
def test_default_is_the_newest_launcher_log_last_50_lines(balsam_cmd, db):
    write_log(db, "launcher-old-1.log", ["old"], age_sec=600)
    newest = write_log(db, "launcher-node7-4242.log", LINES, age_sec=60)
    write_log(db, "service.log", ["service, newer but not a launcher"])
    write_log(db, "launcher-gone-3.log.1", ["a rotation, newer: never chosen"])
    result = balsam_cmd("log")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == LINES[-50:]
    assert result.stderr == f"==> {newest} <==\n"


def test_a_real_launcher_log_is_the_default(balsam_cmd, db):
    run = subprocess.run([BALSAM, "launcher", "--consume-all", "--until-idle"], capture_output=True, text=True,
                         env=dict(os.environ, BALSAM_DB_PATH=str(db)), timeout=120)
    assert run.returncode == 0, run.stderr
    [launcher_log] = (db / "log").glob("launcher-*.log")
    result = balsam_cmd("log", "-n", "all")
    assert result.returncode == 0 and result.stderr == f"==> {launcher_log} <==\n"
    assert "starting: mode serial" in result.stdout and "launcher stopping: idle" in result.stdout
    assert result.stdout == launcher_log.read_text()


@pytest.mark.parametrize("lines, expected", [("3", LINES[-3:]), ("0", []), ("all", LINES), ("ALL", LINES),
                                             ("500", LINES), ("1", LINES[-1:])])
def test_lines(balsam_cmd, db, lines, expected):
    write_log(db, "launcher-a-1.log")
    for option in ("-n", "--lines"):
        result = balsam_cmd("log", option, lines)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == expected


@pytest.mark.parametrize("text, name", [("4242", "launcher-node7-4242.log"), ("node7", "launcher-node7-4242.log"),
                                        ("login-2-99", "launcher-login-2-99.log"), ("99", "launcher-login-2-99.log")])
def test_a_launcher_by_pid_host_or_host_pid(balsam_cmd, db, text, name):
    write_log(db, "launcher-node7-4242.log", ["node7 4242"], age_sec=120)
    write_log(db, "launcher-login-2-99.log", ["login-2 99"], age_sec=60)
    write_log(db, "launcher-login-2-7.log", ["newest"])
    result = balsam_cmd("log", "--launcher", text)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (db / "log" / name).read_text()


def test_an_ambiguous_or_unknown_launcher_is_one_line_with_the_candidates(balsam_cmd, db):
    for pid in range(12):
        write_log(db, f"launcher-login-{pid}.log", [str(pid)], age_sec=100 - pid)
    result = balsam_cmd("log", "--launcher", "login")
    assert_one_line(result, "Error: launcher 'login' is ambiguous: it matches launcher-login-11.log, "
                            "launcher-login-10.log, launcher-login-9.log", 1)
    assert result.stderr.strip().endswith("launcher-login-2.log and 2 more; give its host-pid")
    result = balsam_cmd("log", "--launcher", "nid001")
    assert_one_line(result, f"Error: no launcher log matches 'nid001' in {db / 'log'} (launcher logs, newest first: "
                            "launcher-login-11.log", 1)
    assert result.stdout == ""


@pytest.mark.parametrize("option", ["--service", "--dbserver", "--watchdog", "--cli"])
def test_the_other_logs_by_option(balsam_cmd, db, option):
    for kind in ("service", "dbserver", "watchdog", "cli"):
        write_log(db, f"{kind}.log", [f"{kind} says hello"])
    write_log(db, "launcher-a-1.log", ["a launcher, newest"])
    result = balsam_cmd("log", option)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{option[2:]} says hello\n"


def test_a_missing_log_says_which_logs_there_are(balsam_cmd, db):
    shutil.rmtree(db / "log", ignore_errors=True)
    assert_one_line(balsam_cmd("log"), f"Error: no logs in {db / 'log'} yet", 1)
    write_log(db, "service.log", ["s"])
    assert_one_line(balsam_cmd("log"), f"Error: no launcher log in {db / 'log'} yet (logs there: service.log); "
                                       "choose one with --service, --dbserver, --watchdog, --cli", 1)
    assert_one_line(balsam_cmd("log", "--dbserver"), f"Error: no dbserver log in {db / 'log'} (logs there: service.log)", 1)


@pytest.mark.parametrize("args, message, code", [
    (["--service", "--dbserver"], "Error: give at most one of --launcher, --service, --dbserver, --watchdog, --cli, "
                                  "not --service and --dbserver (see: balsam log --help)", 2),
    (["--launcher", "1", "--cli"], "Error: give at most one of --launcher, --service, --dbserver, --watchdog, --cli, "
                                   "not --launcher and --cli", 2),
    (["--launcher", " "], "Error: --launcher needs a host, a pid or host-pid", 2),
    (["-n", "-1"], "Error: Invalid value for '-n' / '--lines': must be a whole number of lines (0 or more) or 'all', "
                   "not '-1'", 2),
    (["-n", "x" * 5000], "Error: Invalid value for '-n' / '--lines': must be a whole number of lines (0 or more) or "
                         "'all', not 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'", 2),
])
def test_bad_options_are_one_line(balsam_cmd, db, args, message, code):
    write_log(db, "launcher-a-1.log")
    assert_one_line(balsam_cmd("log", *args), message, code)


def test_a_directory_that_is_not_a_balsam_db(balsam_cmd, tmp_path):
    (tmp_path / "other" / "log").mkdir(parents=True)
    (tmp_path / "other" / "log" / "launcher-a-1.log").write_text("x\n")
    assert_one_line(balsam_cmd("--db", tmp_path / "other", "log"),
                    f"Error: {tmp_path / 'other'} (selected by --db) is not a Balsam DB", 1)
    assert_one_line(balsam_cmd("--db", tmp_path / "nowhere", "log"),
                    f"Error: {tmp_path / 'nowhere'} (selected by --db) does not exist", 1)
    assert not (tmp_path / "nowhere").exists()


# ---------------------------------------------------------------------------
# --follow
# ---------------------------------------------------------------------------
def test_follow_prints_new_lines_through_a_rotation_and_stops_on_ctrl_c(db, following):
    path = write_log(db, "launcher-a-1.log", LINES[:10])
    log = following("--follow", "-n", "2")
    log.wait_for(f"==> {path} <==", "err")
    log.wait_for(LINES[9])
    assert log.out.splitlines() == LINES[8:10]
    append(path, "appended 1", "appended 2")
    log.wait_for("appended 2\n")
    # What RotatingFileHandler does: the last record, a rename to .1, a new file.
    append(path, "last before rotation")
    os.rename(path, path.with_name("launcher-a-1.log.1"))
    path.write_text("first after rotation\n")
    log.wait_for("first after rotation\n")
    append(path, "second after rotation")
    log.wait_for("second after rotation\n")
    assert log.out.splitlines() == LINES[8:10] + ["appended 1", "appended 2", "last before rotation",
                                                  "first after rotation", "second after rotation"]
    assert f"==> {path} was rotated; following the new file <==" in log.err
    path.write_text("truncated\n")
    log.wait_for("truncated\n")
    assert log.interrupt() == 0  # Ctrl-C is how following ends: no error
    assert "Error" not in log.err


def test_follow_moves_to_a_launcher_started_later(db, following):
    old = write_log(db, "launcher-a-1.log", ["old launcher"], age_sec=60)
    log = following("-f")
    log.wait_for("old launcher\n")
    new = write_log(db, "launcher-b-2.log", ["new launcher starting"])
    log.wait_for("new launcher starting\n")
    log.wait_for(f"==> a newer launcher started: following {new} <==", "err")
    append(old, "the old one still writes")  # it is left behind
    append(new, "new launcher running")
    log.wait_for("new launcher running\n")
    assert "the old one still writes" not in log.out


def test_follow_of_a_named_launcher_stays_on_it(db, following):
    chosen = write_log(db, "launcher-a-1.log", ["chosen"], age_sec=60)
    log = following("-f", "--launcher", "a-1")
    log.wait_for("chosen\n")
    write_log(db, "launcher-b-2.log", ["a newer launcher"])
    append(chosen, "still here")
    log.wait_for("still here\n")
    # The newer-launcher check runs every second: give it three before concluding.
    with pytest.raises(AssertionError):
        log.wait_for("a newer launcher", timeout=3)
    assert "newer launcher started" not in log.err


def test_a_closed_pipe_ends_it_quietly(db):
    path = write_log(db, "launcher-a-1.log", LINES[:3])
    process = subprocess.Popen([BALSAM, "log", "-f"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=dict(os.environ, BALSAM_DB_PATH=str(db)))
    try:
        assert process.stdout.readline().decode().rstrip("\n") == LINES[0]
        process.stdout.close()  # the reader (`| head -1`) went away
        append(path, "one more, to a closed pipe")
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert err.decode() == f"==> {path} <==\n"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# ---------------------------------------------------------------------------
# a reader only
# ---------------------------------------------------------------------------
def test_it_writes_nothing_in_the_db_directory(balsam_cmd, db, following):
    shutil.rmtree(db / "log", ignore_errors=True)
    before = tree(db)
    assert balsam_cmd("log").returncode == 1  # no logs: and it did not make log/ or cli.log
    assert tree(db) == before
    path = write_log(db, "launcher-a-1.log", LINES[:5])
    before = tree(db)
    assert balsam_cmd("log", "-n", "all").returncode == 0
    log = following("-f")
    log.wait_for(LINES[4])
    assert log.interrupt() == 0
    assert tree(db) == before
    assert (db / "log" / "cli.log").exists() is False and path.read_text().count("\n") == 5


@pytest.fixture
def read_only_view(tmp_path):
    """``make(directory)``: the directory seen through a read-only bind mount
    (no process, not even root, can write there); root only, required under CI=true."""
    mounts = []

    def make(directory):
        view = tmp_path / "read-only-view"
        view.mkdir()
        for command in (["mount", "--bind", str(directory), str(view)],
                        ["mount", "-o", "remount,ro,bind", str(view)]):
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                subprocess.run(["umount", str(view)], capture_output=True)
                if os.environ.get("CI") == "true":
                    pytest.fail(f"cannot make a read-only bind mount: {result.stderr.strip()}")
                pytest.skip(f"a read-only bind mount needs root: {result.stderr.strip()}")
        mounts.append(view)
        return view

    yield make
    for view in mounts:
        subprocess.run(["umount", "-l", str(view)], capture_output=True)


def test_it_runs_on_a_db_it_can_only_read(balsam_cmd, db, read_only_view):
    write_log(db, "launcher-h-1.log", LINES[:4])
    write_log(db, "service.log", ["service"])
    view = read_only_view(db)
    with pytest.raises(OSError):
        (view / "log" / "probe").write_text("x")  # the view really is read-only
    result = balsam_cmd("--db", view, "log")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == LINES[:4]
    result = balsam_cmd("--db", view, "log", "--service")
    assert result.returncode == 0 and result.stdout == "service\n", result.stderr
    log = Following(view, "-f")
    try:
        log.wait_for(LINES[3])
        append(db / "log" / "launcher-h-1.log", "written by the launcher")
        log.wait_for("written by the launcher\n")
        assert log.interrupt() == 0, log.err
    finally:
        log.stop()
