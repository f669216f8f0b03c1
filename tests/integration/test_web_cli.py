"""`balsam web`, `balsam web adduser` and `balsam web passwd` as commands: the
real console script in subprocesses, a real server on a free port, real
signals; bad input gets one line and changes nothing."""

import signal
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests import helpers
from tests.helpers import WebProcess, db_rows

PASSWORD = "correct-horse-42"


@pytest.fixture
def web_process(db):
    started = []

    def start(*args, **kwargs):
        started.append(WebProcess(db, *args, **kwargs))
        return started[-1]

    yield start
    for server in started:
        server.stop(signal.SIGKILL)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url, host=None):
    """(status, Location header, body) without following redirects."""
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.headers.get("Location"), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location"), exc.read()


def one_line_error(result, code=1):
    """The web commands' refusals exit 1 (a usage error: 2)."""
    return helpers.one_line_error(result, code=code)


def logins(db):
    return db_rows(db, "SELECT username, password FROM auth_user ORDER BY username")


@pytest.fixture
def password_file(tmp_path):
    def make(text, name="pw"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return make


# --------------------------------------------------------------------------- accounts
def test_adduser_and_passwd_with_a_password_file(db, balsam_cmd, password_file):
    result = balsam_cmd("web", "adduser", "alice", "--password-file", password_file(PASSWORD + "\nignored\n"))
    assert result.returncode == 0, result.stderr
    assert "Added login 'alice'" in result.stdout
    from django.contrib.auth.hashers import check_password

    [(name, hashed)] = logins(db)
    assert name == "alice" and check_password(PASSWORD, hashed)
    result = balsam_cmd("web", "passwd", "alice", "--password-file", password_file("another-horse-43"))
    assert result.returncode == 0 and "Changed the password of 'alice'" in result.stdout
    [(_, hashed)] = logins(db)
    assert check_password("another-horse-43", hashed) and not check_password(PASSWORD, hashed)


def test_adduser_asks_twice_without_a_file(db, cli):
    result = cli("web", "adduser", "bob", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "Password for bob" in result.output and "Repeat for confirmation" in result.output
    assert [name for name, _ in logins(db)] == ["bob"]


@pytest.mark.parametrize("args, text, expected", [
    (["adduser", "carol"], "", "is empty: its first line is the password"),
    (["adduser", "carol"], "\nsecond line\n", "is empty: its first line is the password"),
    (["adduser", "carol"], "short", "This password is too short"),
    (["adduser", "carol"], "83749283749", "This password is entirely numeric"),
    (["adduser", "carol"], "password123", "This password is too common"),
    (["adduser", "alice"], PASSWORD, "login 'alice' exists; change its password with: balsam web passwd alice"),
    (["adduser", "bad name!"], PASSWORD, "may contain only letters, digits and @ . + - _"),
    (["adduser", ""], PASSWORD, "the login name must not be empty"),
    (["passwd", "nobody"], PASSWORD, "no login 'nobody' (logins: alice)"),
    (["passwd", "alice"], "tiny", "This password is too short"),
])
def test_bad_accounts_input_is_one_line_and_changes_nothing(db, balsam_cmd, password_file, args, text, expected):
    assert balsam_cmd("web", "adduser", "alice", "--password-file", password_file(PASSWORD, "alice")).returncode == 0
    before = logins(db)
    line = one_line_error(balsam_cmd("web", *args, "--password-file", password_file(text)))
    assert expected in line
    assert logins(db) == before


def test_unreadable_password_files(db, balsam_cmd, tmp_path):
    assert "No such file or directory" in one_line_error(
        balsam_cmd("web", "adduser", "dave", "--password-file", tmp_path / "missing"))
    assert "is a directory" in one_line_error(balsam_cmd("web", "adduser", "dave", "--password-file", tmp_path))
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00pass")
    assert "is not text" in one_line_error(balsam_cmd("web", "adduser", "dave", "--password-file", binary))
    assert logins(db) == []


def test_the_secret_key_is_made_owner_only(db, balsam_cmd, password_file):
    key = db / "secret_key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    key.chmod(0o644)  # as an earlier Balsam may have left it
    assert balsam_cmd("web", "adduser", "alice", "--password-file", password_file(PASSWORD)).returncode == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    key.unlink()
    assert balsam_cmd("web", "passwd", "alice", "--password-file", password_file(PASSWORD)).returncode == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_text().strip()) > 40


# --------------------------------------------------------------------------- serving
def test_serves_until_sigterm_and_stops_cleanly(db, web_process, balsam_cmd, password_file):
    server = web_process()
    assert f"at http://127.0.0.1:{server.port}/" in server.banner
    assert f"ssh -N -L {server.port}:127.0.0.1:{server.port} " in server.banner
    assert "No login yet: add one with: balsam web adduser NAME" in server.banner
    status, location, _ = fetch(server.url("/"))
    assert status == 302 and location == "/admin/login/?next=/"
    status, _, body = fetch(server.url("/static/balsam_web/dashboard.js"))
    assert status == 200 and b"dashboard.json" in body
    status, _, body = fetch(server.url("/admin/login/"))
    assert status == 200 and b"csrfmiddlewaretoken" in body
    code, out, err = server.stop(signal.SIGTERM)
    assert code == 0, err
    assert "balsam web stopped (SIGTERM)" in out and "Traceback" not in err


def test_ctrl_c_stops_cleanly_too(db, web_process):
    server = web_process()
    code, out, err = server.stop(signal.SIGINT)
    assert code == 0 and "stopped (SIGINT)" in out and "Traceback" not in err


def test_a_port_in_use_is_one_line(db, balsam_cmd):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(balsam_cmd("web", "--port", port))
    assert line.startswith(f"Error: port {port} on 127.0.0.1 is in use")


@pytest.mark.parametrize("args, expected", [
    (["--port", "70000"], "70000 is not in the range 0<=x<=65535"),
    (["--port", "http"], "'http' is not a valid integer"),
])
def test_bad_ports_are_usage_errors(db, balsam_cmd, args, expected):
    assert expected in one_line_error(balsam_cmd("web", *args), code=2)


@pytest.mark.parametrize("host, expected", [
    ("", "--host must name an address or a host name"),
    ("no-such-host.invalid", "unknown host name"),
    ("192.0.2.1", "not an address of this machine"),
])
def test_bad_hosts_are_one_line(db, balsam_cmd, host, expected):
    assert expected in one_line_error(balsam_cmd("web", "--host", host))


def test_all_addresses_need_the_host_option_and_accept_this_machines_names(db, web_process):
    server = web_process("--host", "0.0.0.0")
    assert "a login is required" in server.banner and "ssh -N -L" not in server.banner
    for name in (socket.gethostname(), "localhost", "127.0.0.1"):
        status, location, _ = fetch(server.url("/"), host=f"{name}:{server.port}")
        assert status == 302 and location.startswith("/admin/login/"), name
    status, _, _ = fetch(server.url("/"), host="evil.example")
    assert status == 400
    assert server.stop()[0] == 0


def test_an_outdated_schema_is_named_with_its_repair(db, balsam_cmd):
    import sqlite3

    con = sqlite3.connect(db / "db.sqlite3")
    with con:
        con.execute("DROP TABLE django_session")
        con.execute("DELETE FROM django_migrations WHERE app = 'sessions'")
    con.close()
    line = one_line_error(balsam_cmd("web"))
    assert f"needs its tables updated for this Balsam; run: balsam init {db}" in line
    assert balsam_cmd("init", db).returncode == 0
    assert db_rows(db, "SELECT COUNT(*) FROM django_migrations WHERE app = 'sessions'")[0][0] > 0


def test_web_takes_the_db_from_path(db, tmp_path, balsam_cmd, password_file):
    result = balsam_cmd("web", "--path", db, "adduser", "erin", "--password-file", password_file(PASSWORD),
                        env={"BALSAM_DB_PATH": str(tmp_path / "elsewhere")})
    assert result.returncode == 0, result.stderr
    assert [name for name, _ in logins(db)] == ["erin"]
    line = one_line_error(balsam_cmd("web", "--path", tmp_path / "nothing-here", "adduser", "x"))
    assert "nothing-here" in line


def test_help_does_not_load_the_web_package(tmp_path):
    code = ("import sys\nfrom balsam.cli.main import cli\n"
            "try:\n    cli.main(['web', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith(('balsam.web', 'django', 'waitress'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "Usage: balsam web" in result.stdout and "adduser" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_kill_from_the_served_pages_goes_through_a_live_dbserver(db, dbserver, web_process, balsam_cmd, password_file,
                                                                   make_job):
    import http.cookiejar
    import re
    import urllib.parse

    job = make_job(name="victim")
    assert balsam_cmd("web", "adduser", "alice", "--password-file", password_file(PASSWORD)).returncode == 0
    server = web_process()
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def form_token(path):
        with opener.open(server.url(path), timeout=30) as response:
            return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.read().decode()).group(1)

    def post(path, fields):
        data = urllib.parse.urlencode(fields, doseq=True).encode()
        with opener.open(server.url(path), data=data, timeout=30) as response:
            return response.read().decode()

    post("/admin/login/", {"csrfmiddlewaretoken": form_token("/admin/login/"), "username": "alice",
                           "password": PASSWORD, "next": "/"})
    jobs_page = "/admin/balsam/balsamjob/"
    text = post(jobs_page, {"csrfmiddlewaretoken": form_token(jobs_page), "action": "kill_selected",
                            "_selected_action": [str(job.pk)]})
    assert "Killed 1" in text
    assert db_rows(db, f"SELECT state FROM balsam_job WHERE job_id = '{job.pk.hex}'") == [("USER_KILLED",)]
    # The dbserver applied it: its record of applied requests has the kill.
    assert db_rows(db, "SELECT COUNT(*) FROM balsam_applied_request WHERE result LIKE '%killed%'")[0][0] >= 1
    assert server.stop()[0] == 0
