"""The dbserver as users and attackers meet it: real watchdog and server processes."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from tests.conftest import BALSAM
from tests.helpers import db_rows, wait_until
import zmq

from balsam.core.models import BalsamJob
from balsam.wire import protocol
from balsam.wire.credentials import client_keys
from balsam.wire.serverinfo import ServerInfo




def connect(db, keys=None):
    keys = keys or client_keys(db)
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.curve_serverkey = keys["server_public"]
    sock.curve_publickey = keys["public"]
    sock.curve_secretkey = keys["secret"]
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(ServerInfo(db).read()["address"])
    return sock


def ask(sock, frame, timeout=10):
    sock.send(frame)
    assert sock.poll(timeout * 1000), "no reply from the dbserver"
    return protocol.decode_reply(sock.recv())


def ping(db):
    sock = connect(db)
    try:
        return ask(sock, protocol.encode_request(protocol.new_request_id(), "ping", {}))["ok"]
    finally:
        sock.close()


def user_env(db, **extra):
    return {"PATH": os.environ["PATH"], "BALSAM_DB_PATH": str(db), **extra}


# --------------------------------------------------------------------------- lifecycle
def test_start_status_second_start_stop(balsam_cmd, db):
    started = balsam_cmd("dbserver", "--host", "127.0.0.1")
    assert started.returncode == 0, started.stderr
    info = ServerInfo(db).read()
    try:
        assert f"serving at {info['address']}" in started.stdout
        assert info["address"].startswith("tcp://127.0.0.1:") and info["host"] == "127.0.0.1"
        assert psutil.pid_exists(info["server_pid"]) and psutil.pid_exists(info["watchdog_pid"])
        again = balsam_cmd("dbserver", "--host", "127.0.0.1")
        assert again.returncode == 1
        assert again.stderr.strip() == (
            f"Error: {db} is already served by dbserver pid {info['server_pid']} "
            f"(watchdog pid {info['watchdog_pid']}) at {info['address']}"
        )
        assert balsam_cmd("app", "--name", "hello", "--executable", "echo").returncode == 0
        status = balsam_cmd("dbserver", "--status").stdout
        for label in ("address", "server pid", "watchdog pid", "uptime", "requests served", "commits",
                      "mean batch size", "restarts"):
            assert f"{label}:" in status
        assert f"address: {info['address']}" in status and "commits: 1" in status
        assert f"Write mode:  dbserver at {info['address']}" in balsam_cmd("which").stdout
        refused = balsam_cmd("dbserver", "--reset")
        assert refused.returncode == 1 and "is running" in refused.stderr and "--stop" in refused.stderr
    finally:
        stopped = balsam_cmd("dbserver", "--stop")
    assert stopped.returncode == 0 and "stopped the dbserver" in stopped.stdout
    assert ServerInfo(db).read()["address"] is None
    wait_until(lambda: not psutil.pid_exists(info["server_pid"]) or
               psutil.Process(info["server_pid"]).status() == psutil.STATUS_ZOMBIE, 10, "the server to exit")
    assert "Write mode:  direct" in balsam_cmd("which").stdout
    not_running = balsam_cmd("dbserver", "--status")
    assert not_running.returncode == 1 and "no dbserver is running" in not_running.stderr


def test_server_killed_is_restarted_within_two_seconds(dbserver, db):
    os.kill(dbserver["server_pid"], signal.SIGKILL)
    killed_at = time.monotonic()
    info = wait_until(
        lambda: (i := ServerInfo(db).read()).get("server_pid") not in (None, dbserver["server_pid"]) and i, 5,
        "a new server",
    )
    assert time.monotonic() - killed_at < 2.0
    assert info["restarts"] == 1 and info["address"] != dbserver["address"]
    assert ping(db)
    log = (db / "log" / "watchdog.log").read_text()
    assert f"server pid {dbserver['server_pid']} exited with code -9" in log and "restarting (restart 1)" in log


def test_writes_from_processes_go_through_the_server(dbserver, db, make_app):
    make_app()
    code = "import balsam.launcher.dag as dag; dag.add_job(name='via_server', application='hello')"
    subprocess.run([sys.executable, "-c", code], env=user_env(db), check=True, timeout=60)
    assert BalsamJob.objects.filter(name="via_server").exists()
    figures = json.loads(json.dumps(ServerInfo(db).read()))
    assert figures["address"]
    log = (db / "log" / "dbserver.log").read_text()
    assert "serving" in log


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "frame, fragment",
    [
        (b"\xff\x00garbage", "not UTF-8 JSON"),
        (b"[1, 2, 3]", "must be a JSON object"),
        (json.dumps({"v": 99, "id": "x" * 32, "op": "ping"}).encode(), "protocol version 99 is not supported"),
        (json.dumps({"v": 1, "id": "x" * 32, "op": "drop_tables", "args": {}}).encode(), "unknown operation 'drop_tables'"),
        (json.dumps({"v": 1, "op": "ping"}).encode(), "needs an 'id'"),
        (b'{"v": 1, "id": "' + b"x" * 32 + b'", "op": "create_jobs", "args": {"rows": ' + b"[" * 100_000
         + b"]" * 100_000 + b"}}", "nests too deeply"),
    ],
    ids=["garbage", "not-an-object", "version", "unknown-op", "no-id", "deep-nesting"],
)
def test_malformed_requests_get_an_error_reply(dbserver, db, frame, fragment):
    sock = connect(db)
    reply = ask(sock, frame)
    assert reply["ok"] is False and reply["error"] == "ProtocolError" and fragment in reply["message"]
    assert ask(sock, protocol.encode_request(protocol.new_request_id(), "ping", {}))["ok"]


def test_bad_arguments_fail_alone(dbserver, db, make_app):
    make_app()
    sock = connect(db)
    bad = protocol.encode_request(protocol.new_request_id(), "create_jobs", {"rows": [{"name": "x", "colour": "red"}]})
    reply = ask(sock, bad)
    assert reply["error"] == "ValidationError" and "unknown or read-only job field 'colour'" in reply["message"]
    reply = ask(sock, protocol.encode_request(protocol.new_request_id(), "update_jobs", {"nonsense": 1}))
    assert reply["error"] == "ValidationError" and "bad arguments for update_jobs" in reply["message"]
    good = protocol.encode_request(protocol.new_request_id(), "create_jobs", {"rows": [{"name": "ok", "application": "hello"}]})
    assert ask(sock, good)["ok"]
    assert list(BalsamJob.objects.values_list("name", flat=True)) == ["ok"]


def test_oversized_message_gets_an_error_reply(dbserver, db):
    sock = connect(db)
    frame = b" " * (protocol.MAX_REQUEST_BYTES + 1)
    reply = ask(sock, frame, timeout=30)
    assert reply["ok"] is False and "exceeds the" in reply["message"]
    assert ping(db)


def test_client_without_the_credential_is_refused_and_logged(dbserver, db, make_app):
    make_app()
    public, secret = zmq.curve_keypair()
    intruder = connect(db, {"public": public, "secret": secret, "server_public": client_keys(db)["server_public"]})
    intruder.send(protocol.encode_request(protocol.new_request_id(), "create_jobs", {"rows": [{"name": "evil", "application": "hello"}]}))
    assert not intruder.poll(1500)
    intruder.close()
    assert not BalsamJob.objects.filter(name="evil").exists()
    wait_until(lambda: "refused a client without an authorized key for this DB" in (db / "log" / "dbserver.log").read_text(), 5,
               "the refusal in the log")
    assert ping(db)


def test_raw_tcp_garbage_does_not_disturb_the_server(dbserver, db):
    host, port = dbserver["address"].removeprefix("tcp://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.0\r\n\r\n" + os.urandom(4096))
    assert ping(db)


def test_credentials_are_owner_only(db):
    directory = db / "credentials"
    assert oct(directory.stat().st_mode & 0o777) == "0o700"
    for path in directory.iterdir():
        assert oct(path.stat().st_mode & 0o777) == "0o600"


# --------------------------------------------------------------------------- exactly once
def test_a_repeated_request_id_is_applied_once(dbserver, db, make_app):
    make_app()
    sock = connect(db)
    frame = protocol.encode_request("r" * 32, "create_jobs", {"rows": [{"name": "once", "application": "hello"}]})
    first, second = ask(sock, frame), ask(sock, frame)
    assert first["ok"] and first["result"] == second["result"]
    assert BalsamJob.objects.filter(name="once").count() == 1


def test_clients_on_the_server_host_use_its_local_socket(dbserver, db, balsam_cmd):
    from balsam.dbclient.zmq_client import ZmqClient

    local = ServerInfo(db).read()["local_address"]
    assert local.startswith("ipc://@balsam-dbserver-")
    assert f"local socket: {local}" in balsam_cmd("dbserver", "--status").stdout
    client = ZmqClient(db, deadline_sec=10, ping_timeout_sec=2)
    assert client.request("ping", {})["pid"] == dbserver["server_pid"]
    assert client._local


def test_switching_the_process_to_another_db_closes_the_old_server_connection(dbserver, db, make_app, template_db):
    # Left to the garbage collector, a ZeroMQ context finalised before its
    # socket waits forever: a test session could hang at exit.
    from balsam.core import write_client
    from balsam.django_config import activate

    make_app()  # a write through the server: the client holds a socket and a context
    old = write_client.get()
    server_client = old._server
    context = server_client._ctx
    assert context is not None and not context.closed
    activate(template_db)  # what the fixtures do between tests
    assert write_client.get() is not old
    assert context.closed and server_client._socket is None


def test_an_unreachable_local_socket_falls_back_to_tcp(dbserver, db, make_app):
    """A client in another network namespace (some containers) cannot reach the
    abstract Unix socket: after one timed-out attempt it writes through TCP."""
    from balsam.dbclient.zmq_client import ZmqClient

    make_app()
    ServerInfo(db).update(local_address="ipc://@balsam-dbserver-nobody-listens-here")
    client = ZmqClient(db, deadline_sec=30, ping_timeout_sec=2)
    created = client.request("create_jobs", {"rows": [{"name": "via-tcp", "application": "hello"}]})
    assert len(created) == 1 and not client._local
    assert BalsamJob.objects.filter(name="via-tcp").count() == 1
    client.request("ping", {})
    assert not client._local

# --------------------------------------------------------------------------- stale and hung servers
def _post_fake_server(db, host, address):
    ServerInfo(db).update(address=address, host=host, server_pid=2**22 + 7, watchdog_pid=2**22 + 9)


def test_stale_local_address_fails_fast_in_one_line(balsam_cmd, db):
    _post_fake_server(db, "127.0.0.1", "tcp://127.0.0.1:9")
    began = time.monotonic()
    result = balsam_cmd("app", "--name", "x", "--executable", "echo")
    assert time.monotonic() - began < 10
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "are not running" in result.stderr and f"balsam dbserver --reset --path {db}" in result.stderr
    assert balsam_cmd("ls").returncode == 0  # readers don't need the server
    assert balsam_cmd("dbserver", "--reset").returncode == 0
    assert balsam_cmd("app", "--name", "x", "--executable", "echo").returncode == 0


def test_a_process_that_met_a_stale_address_fails_fast_on_every_write(db, make_app):
    from balsam import api
    from balsam.exceptions import DBServerUnavailable

    make_app()
    _post_fake_server(db, "127.0.0.1", "tcp://127.0.0.1:9")
    for attempt in range(2):  # not only the first: the deadline is 60 s
        began = time.monotonic()
        with pytest.raises(DBServerUnavailable, match="are not running"):
            api.add_app(f"x{attempt}", "echo")
        assert time.monotonic() - began < 10, f"write {attempt + 1} waited for the deadline"


def test_status_counts_only_groups_that_wrote_as_commits(dbserver, db, balsam_cmd, make_app):
    make_app()
    sock = connect(db)
    for n in range(5):  # refused: no such application
        frame = protocol.encode_request(protocol.new_request_id(), "create_jobs", {"rows": [{"application": "nope"}]})
        assert ask(sock, frame)["ok"] is False
    status = balsam_cmd("dbserver", "--status").stdout
    commits = int(status.split("commits: ")[1].split()[0])
    errors = int(status.split("errors returned: ")[1].split()[0])
    assert errors == 5 and commits <= 1  # at most the fixture's own make_app write


@pytest.mark.parametrize("address", ["http://foo", "tcp://", "nonsense"])
def test_a_posted_address_that_is_no_dbserver_is_one_line(balsam_cmd, db, address):
    _post_fake_server(db, "127.0.0.1", address)
    ServerInfo(db).update(server_pid=os.getpid())  # "alive", so the address itself is what fails
    result = balsam_cmd("app", "--name", "x", "--executable", "echo")
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "is not a dbserver's" in result.stderr and "unexpected" not in result.stderr
    assert "balsam dbserver --reset" in result.stderr


def test_unanswered_remote_address_fails_after_a_short_ping(balsam_cmd, db):
    _post_fake_server(db, "127.0.0.2", "tcp://127.0.0.2:9")
    began = time.monotonic()
    result = balsam_cmd("app", "--name", "x", "--executable", "echo", env={"BALSAM_DBSERVER_PING_TIMEOUT_SEC": "1"})
    assert time.monotonic() - began < 10
    assert result.returncode == 1 and "no answer to a ping within 1 s" in result.stderr


def test_hung_server_raises_after_the_deadline(dbserver, db, make_app):
    make_app()
    os.kill(dbserver["server_pid"], signal.SIGSTOP)
    try:
        code = "import balsam.launcher.dag as dag; dag.add_job(name='late', application='hello')"
        began = time.monotonic()
        result = subprocess.run([sys.executable, "-c", code], env=user_env(db, BALSAM_DBSERVER_DEADLINE_SEC="2"),
                                capture_output=True, text=True, timeout=60)
        elapsed = time.monotonic() - began
    finally:
        os.kill(dbserver["server_pid"], signal.SIGCONT)
    assert result.returncode == 1 and 2 <= elapsed < 15
    assert "DBServerUnavailable: no reply from the dbserver of" in result.stderr
    assert dbserver["address"] in result.stderr


# --------------------------------------------------------------------------- load
WRITER = textwrap.dedent(
    """
    import os, sys, time
    import balsam.launcher.dag as dag
    from balsam.exceptions import DBServerUnavailable
    n, count, out, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    with open(out, "w", buffering=1) as log:
        for i in range(count):
            if os.path.exists(stop):
                break
            began = time.monotonic()
            try:
                dag.add_job(name=f"p{n}_{i}", workflow="load", application="hello")
                log.write(f"ok p{n}_{i}\\n")
            except DBServerUnavailable:
                log.write(f"unavailable {time.monotonic() - began:.1f}\\n")
    """
)


def _run_writers(db, tmp_path, processes, count, env=None):
    stop = tmp_path / "stop"
    return [
        subprocess.Popen([sys.executable, "-c", WRITER, str(n), str(count), str(tmp_path / f"w{n}.log"), str(stop)],
                         env=user_env(db, **(env or {})), stderr=subprocess.PIPE, text=True)
        for n in range(processes)
    ]


def _collect(procs, tmp_path, timeout):
    """(names whose add_job returned, seconds each DBServerUnavailable call took)."""
    errors = [p.communicate(timeout=timeout)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * len(procs), [e[-500:] for e in errors if e]
    ok, unavailable = [], []
    for n in range(len(procs)):
        for line in (tmp_path / f"w{n}.log").read_text().splitlines():
            kind, value = line.split()
            (ok if kind == "ok" else unavailable).append(value if kind == "ok" else float(value))
    return ok, unavailable


def _names_in_db(db):
    return [row[0] for row in db_rows(db, "SELECT name FROM balsam_job WHERE workflow = 'load'")]


@pytest.mark.timeout(600)
def test_64_processes_200_jobs_each(dbserver, db, make_app, tmp_path):
    make_app()
    ok, unavailable = _collect(_run_writers(db, tmp_path, 64, 200), tmp_path, timeout=500)
    assert len(ok) == 12_800 and unavailable == []
    names = _names_in_db(db)
    assert len(names) == len(set(names)) == 12_800


@pytest.mark.timeout(600)
def test_sigkill_every_second_loses_and_duplicates_nothing(dbserver, db, make_app, tmp_path):
    make_app()
    deadline = 20
    procs = _run_writers(db, tmp_path, 32, 10**6, env={"BALSAM_DBSERVER_DEADLINE_SEC": str(deadline)})
    wait_until(lambda: len(_names_in_db(db)) > 100, 120, "the writers to get going")
    kills, killed = 0, None
    while kills < 20:  # each server serves about a second, however long its restart took on a busy machine
        posted = wait_until(lambda: ServerInfo(db).read().get("server_pid") not in (None, killed)
                            and ServerInfo(db).read()["server_pid"], 60, "the restarted server")
        time.sleep(1)
        os.kill(posted, signal.SIGKILL)
        killed, kills = posted, kills + 1
    (tmp_path / "stop").touch()
    ok, unavailable = _collect(procs, tmp_path, timeout=deadline + 120)
    names = _names_in_db(db)
    assert len(names) == len(set(names)), "a job was inserted twice"
    assert set(ok) <= set(names), f"{len(set(ok) - set(names))} acknowledged inserts are missing"
    assert all(seconds >= deadline - 0.5 for seconds in unavailable), "a call failed before its deadline"
    assert len(ok) > 1000
    wait_until(lambda: ping(db), 10, "the restarted server")
    assert ServerInfo(db).read()["restarts"] >= kills


DAMAGE = {
    "half-written": lambda f: f.write_text("{half a fi"),
    "binary": lambda f: f.write_bytes(b"\xff\xfe\x00garbage\x81"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_reset_repairs_a_damaged_address_file(balsam_cmd, db, damage):
    DAMAGE[damage](db / "dbwriter_address")
    broken = balsam_cmd("app", "--name", "x", "--executable", "echo")
    assert broken.returncode == 1 and "balsam dbserver --reset" in broken.stderr
    assert len(broken.stderr.strip().splitlines()) == 1 and "unexpected" not in broken.stderr
    fixed = balsam_cmd("dbserver", "--reset")
    assert fixed.returncode == 0 and "rewrote the damaged" in fixed.stdout
    assert balsam_cmd("app", "--name", "x", "--executable", "echo").returncode == 0


@pytest.mark.parametrize("damage", sorted(DAMAGE) + ["deleted"])
def test_init_repairs_a_damaged_or_missing_address_file(balsam_cmd, db, damage):
    address = db / "dbwriter_address"
    address.unlink() if damage == "deleted" else DAMAGE[damage](address)
    result = balsam_cmd("init", db)
    assert result.returncode == 0 and "up to date" in result.stdout, result.stderr
    assert ServerInfo(db).read()["address"] is None
    assert balsam_cmd("app", "--name", "x", "--executable", "echo").returncode == 0


@pytest.mark.parametrize("args, fragment", [
    (["--stop", "--status"],
     "give one of --stop, --status, --reset, --add-user, --remove-user or --list-users, not --stop and --status"),
    (["--reset", "--stop"], "not --stop and --reset"),
    (["--host", ""], "--host must name a host"),
    (["--host", "  "], "--host must name a host"),
])
def test_dbserver_refuses_conflicting_or_empty_options(balsam_cmd, db, args, fragment):
    before = (db / "dbwriter_address").read_bytes()
    result = balsam_cmd("dbserver", *args)
    try:
        assert result.returncode == 2 and fragment in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert (db / "dbwriter_address").read_bytes() == before and not control_running(db)
    finally:
        if control_running(db):  # a server started where it must not: don't leave it running
            balsam_cmd("dbserver", "--stop")


def control_running(db):
    from balsam.dbserver import control

    return control.watchdog_running(db)


def test_a_missing_address_file_is_reported_with_its_repair(balsam_cmd, db):
    (db / "dbwriter_address").unlink()
    result = balsam_cmd("dbserver", "--path", db, "--host", "127.0.0.1")
    assert result.returncode == 1 and "dbwriter_address is missing" in result.stderr
    assert "balsam dbserver --reset" in result.stderr and "unexpected" not in result.stderr
    assert balsam_cmd("dbserver", "--reset").returncode == 0
    assert ServerInfo(db).read()["address"] is None


def _forget_last_migration(db):
    import sqlite3

    con = sqlite3.connect(db / "db.sqlite3")
    con.execute("DELETE FROM django_migrations WHERE app = 'balsam' AND name LIKE '0002%'")
    con.commit()
    con.close()


def test_server_refuses_an_out_of_date_schema(db):
    _forget_last_migration(db)
    result = subprocess.run([sys.executable, "-m", "balsam.dbserver.server", "--path", str(db), "--host", "127.0.0.1"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "schema is out of date" in result.stderr and f"balsam init {db}" in result.stderr
    assert ServerInfo(db).read()["address"] is None


def test_a_server_that_cannot_start_is_reported(balsam_cmd, db):
    _forget_last_migration(db)
    result = balsam_cmd("dbserver", "--host", "127.0.0.1")
    assert result.returncode == 1
    assert "the dbserver did not start: the server failed to start 5 times" in result.stderr
    assert "schema is out of date" in result.stderr
    assert ServerInfo(db).read()["address"] is None


def test_stop_and_reset_refuse_a_server_on_another_host(balsam_cmd, db):
    _post_fake_server(db, "compute-node-7", "tcp://compute-node-7:5000")
    for action in ("--stop", "--reset"):
        result = balsam_cmd("dbserver", action)
        assert result.returncode == 1 and "was started on host compute-node-7" in result.stderr
    assert ServerInfo(db).read()["address"] == "tcp://compute-node-7:5000"


def _db_identity(path):
    return db_rows(path, "SELECT db_id FROM balsam_db_identity")[0][0]


@pytest.mark.parametrize("repair", [["dbserver", "--reset", "--path"], ["init"]])
def test_a_copied_db_directory_is_a_db_of_its_own(dbserver, db, balsam_cmd, make_app, tmp_path, repair):
    make_app()
    copy = tmp_path / "copy"
    shutil.copytree(db, copy, symlinks=True)  # cp -a while the original's dbserver runs
    in_copy = {"BALSAM_DB_PATH": str(copy)}
    add = ["job", "--name", "in-copy", "--workflow", "w", "--application", "hello", "--yes"]

    refused = balsam_cmd(*add, env=in_copy)
    assert refused.returncode == 1 and "points at the server of another DB" in refused.stderr, refused.stderr
    assert refused.stderr.count("Error:") == 1 and "balsam dbserver --reset" in refused.stderr
    stop = balsam_cmd("dbserver", "--stop", "--path", copy)
    assert stop.returncode == 1 and "nothing was stopped" in stop.stderr
    assert ping(db), "the original's server must keep running"
    assert not BalsamJob.objects.filter(name="in-copy").exists()

    fixed = balsam_cmd(*repair, copy, env=in_copy)
    assert fixed.returncode == 0, fixed.stderr
    assert balsam_cmd(*add, env=in_copy).returncode == 0
    assert not BalsamJob.objects.filter(name="in-copy").exists()  # the job is in the copy only
    assert "in-copy" in balsam_cmd("ls", env=in_copy).stdout
    assert _db_identity(copy) != _db_identity(db)
    assert ping(db)


@pytest.fixture
def small_disk(tmp_path):
    """A 48 MiB tmpfs mounted for the test (root only; required under CI=true)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs for the disk-full test: {result.stderr.strip()}")
        pytest.skip(f"mounting a tmpfs needs root: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(disk):
    """Write until not one more byte fits; returns the filler file."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (2**20, 4096, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                pass
    return filler


def test_watchdog_survives_a_full_disk_and_restarts_the_server_when_space_returns(small_disk, template_db):
    from balsam.dbserver import control

    db = small_disk / "balsamdb"
    shutil.copytree(template_db, db)
    info = control.start(db, host="127.0.0.1")
    try:
        filler = _fill(small_disk)
        os.kill(info["server_pid"], signal.SIGKILL)
        # The next server cannot post its address and exits; the watchdog must outlive that.
        watchdog, restarted = psutil.Process(info["watchdog_pid"]), set()

        def settled():
            if not control.watchdog_running(db):
                return "the watchdog died"
            children = {p.pid for p in watchdog.children()} - {info["server_pid"]}
            restarted.update(children)
            return restarted and not children and "waiting for space"

        assert wait_until(settled, 60, "the restarted server to fail") == "waiting for space"
        filler.unlink()
        posted = wait_until(lambda: (lambda now: now.get("server_pid") not in (None, info["server_pid"])
                                     and now.get("address") and now)(ServerInfo(db).read()), 30,
                            "a new server once space returned")
        assert psutil.pid_exists(posted["server_pid"]) and ping(db)
    finally:
        current = ServerInfo(db).read()
        try:
            control.stop(db)
        finally:
            _kill_leftovers = [info["watchdog_pid"], current.get("watchdog_pid"), current.get("server_pid")]
            for pid in filter(None, _kill_leftovers):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def test_one_peer_flooding_a_server_at_its_hard_fd_limit_is_capped_and_writes_still_go_through(db, balsam_cmd):
    import resource

    from balsam.dbserver.peers import cap_for

    limit = 512  # soft = hard: the server cannot raise it, as for a user whose hard limit is low

    def low_limits():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    env = {**os.environ, "BALSAM_DB_PATH": str(db)}
    started = subprocess.run([BALSAM, "dbserver", "--host", "127.0.0.1"], env=env, preexec_fn=low_limits,
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    info = ServerInfo(db).read()
    server = psutil.Process(info["server_pid"])
    idle_fds = server.num_fds()
    host, port = info["address"].split("//")[1].rsplit(":", 1)
    flood = []
    try:
        for _ in range(1100):  # more than the limit: without the cap this peer alone would hold every descriptor
            flood.append(socket.create_connection((host, int(port)), timeout=5))
        seen = []

        def settled():  # hung-up connections close once libzmq notices; the peer keeps at most the cap
            seen.append(server.num_fds())
            return seen[-1] <= idle_fds + cap_for(limit) + 8

        wait_until(lambda: "hung up 100 connection(s) from 127.0.0.1" in (db / "log" / "dbserver.log").read_text(),
                   timeout=60, what="the server hanging up the flood beyond the cap")
        wait_until(settled, timeout=60, what=f"the server's descriptors back to at most the cap (now {seen[-1:]})")
        assert max(seen) < limit - 32  # never near running out
        added = balsam_cmd("make_dummies", 3)  # through the server's local socket, during the flood
        assert added.returncode == 0, added.stderr
        assert db_rows(db, "SELECT COUNT(*) FROM balsam_job") == [(3,)]
        assert ServerInfo(db).read()["server_pid"] == server.pid and server.is_running()
    finally:
        for sock in flood:
            sock.close()
        balsam_cmd("dbserver", "--stop")


def test_a_flood_of_connections_beyond_the_usual_fd_limit_leaves_the_server_answering(db, balsam_cmd):
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip(f"the hard open-file limit ({hard}) leaves no room for the flood")

    def low_soft_limit():  # as for a user whose soft limit is low: the server starts under it
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    env = {**os.environ, "BALSAM_DB_PATH": str(db)}
    started = subprocess.run([BALSAM, "dbserver", "--host", "127.0.0.1"], env=env, preexec_fn=low_soft_limit,
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    info = ServerInfo(db).read()
    host, port = info["address"].split("//")[1].rsplit(":", 1)
    flood = []
    try:
        for _ in range(1100):  # unauthenticated connections that never speak
            flood.append(socket.create_connection((host, int(port)), timeout=5))
        assert ping(db)
        assert psutil.Process(info["server_pid"]).is_running()
    finally:
        for sock in flood:
            sock.close()
        balsam_cmd("dbserver", "--stop")
