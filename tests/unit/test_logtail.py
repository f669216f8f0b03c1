"""Reading logs from their end and following them (balsam/logtail.py), and
finding them in <DB>/log (balsam/logs.py): real files, no subprocesses."""

import os

import pytest

from balsam import logs, logtail
from balsam.exceptions import AmbiguousId, NotFound


class CountingReader:
    """A binary file that counts the bytes read through it."""

    def __init__(self, f):
        self.f = f
        self.bytes_read = 0

    def seek(self, *args):
        return self.f.seek(*args)

    def read(self, size=-1):
        data = self.f.read(size)
        self.bytes_read += len(data)
        return data


def last_lines(path, count, block=logtail.BLOCK):
    with open(path, "rb") as f:
        offset = logtail.start_of_last_lines(f, count, block=block)
        f.seek(offset)
        return f.read()


@pytest.mark.parametrize("block", [1, 3, 7, logtail.BLOCK])
@pytest.mark.parametrize(
    "content, count, expected",
    [
        (b"", 5, b""),
        (b"a\nb\nc\n", 2, b"b\nc\n"),
        (b"a\nb\nc\n", 3, b"a\nb\nc\n"),
        (b"a\nb\nc\n", 99, b"a\nb\nc\n"),
        (b"a\nb\nc", 2, b"b\nc"),  # a last line without its newline is a line
        (b"a\nb\nc\n", 0, b""),
        (b"a\nb\nc\n", None, b"a\nb\nc\n"),
        (b"\n\n\n", 2, b"\n\n"),
        (b"one long line\n", 1, b"one long line\n"),
        (b"x\n" + b"y" * 50 + b"\nz\n", 2, b"y" * 50 + b"\nz\n"),
    ],
)
def test_last_lines_whatever_the_block_size(tmp_path, block, content, count, expected):
    path = tmp_path / "x.log"
    path.write_bytes(content)
    assert last_lines(path, count, block=block) == expected


def test_a_huge_log_is_tailed_by_reading_only_its_end(tmp_path):
    """200 MB (sparse: cheap to make) and then 1000 lines: the last 50 are
    found by reading about one block, not the file."""
    path = tmp_path / "huge.log"
    with open(path, "wb") as f:
        f.truncate(200 * 2**20)
        f.seek(0, os.SEEK_END)
        f.write(b"".join(b"line %d\n" % i for i in range(1000)))
    with open(path, "rb") as f:
        reader = CountingReader(f)
        offset = logtail.start_of_last_lines(reader, 50)
        f.seek(offset)
        assert f.read().splitlines() == [b"line %d" % i for i in range(950, 1000)]
    assert reader.bytes_read <= logtail.BLOCK
    with open(path, "rb") as f:  # many lines: reads what they hold plus at most one block
        reader = CountingReader(f)
        offset = logtail.start_of_last_lines(reader, 1000, block=4096)
        assert reader.bytes_read <= os.path.getsize(path) - offset + 4096


class Sink:
    def __init__(self):
        self.data = b""
        self.notices = []

    def write(self, chunk):
        self.data += chunk

    def notice(self, text):
        self.notices.append(text)


def follower(path, lines=50, newer=None):
    sink = Sink()
    f = logtail.Follower(path, sink.write, sink.notice, newer=newer)
    f.show(lines)
    return f, sink


def append(path, text):
    with open(path, "ab") as f:
        f.write(text)


def test_follow_prints_what_is_appended(tmp_path):
    path = tmp_path / "a.log"
    path.write_bytes(b"old 1\nold 2\n")
    f, sink = follower(path, lines=1)
    assert sink.data == b"old 2\n"
    assert f.poll() is False
    append(path, b"new 1\nnew 2\n")
    assert f.poll() is True
    assert sink.data == b"old 2\nnew 1\nnew 2\n" and sink.notices == []
    f.close()


def test_follow_reads_the_old_file_to_its_end_then_the_rotated_one(tmp_path):
    path = tmp_path / "a.log"
    path.write_bytes(b"before\n")
    f, sink = follower(path)
    append(path, b"last words\n")  # written just before the rename: must not be lost
    os.rename(path, tmp_path / "a.log.1")
    assert f.poll() is True  # the last words
    path.write_bytes(b"first of new\n")
    while f.poll():
        pass
    assert sink.data == b"before\nlast words\nfirst of new\n"
    assert sink.notices == [f"{path} was rotated; following the new file"]
    append(path, b"more\n")
    f.poll()
    assert sink.data.endswith(b"first of new\nmore\n")
    f.close()


def test_follow_rereads_a_truncated_file(tmp_path):
    path = tmp_path / "a.log"
    path.write_bytes(b"a long first life of this file\n")
    f, sink = follower(path)
    path.write_bytes(b"again\n")  # truncated and rewritten, shorter
    while f.poll():
        pass
    assert sink.data == b"a long first life of this file\nagain\n"
    assert sink.notices == [f"{path} was truncated; reading it from its start"]
    f.close()


def test_follow_waits_for_a_missing_file_and_says_so_once(tmp_path, monkeypatch):
    path = tmp_path / "a.log"
    path.write_bytes(b"x\n")
    f, sink = follower(path)
    path.unlink()
    monkeypatch.setattr(logtail, "GONE_NOTICE_SEC", 0)
    assert f.poll() is False and f.poll() is False and f.poll() is False
    assert sink.notices == [f"{path} is gone; waiting for it to come back"]
    path.write_bytes(b"back\n")
    while f.poll():
        pass
    assert sink.data == b"x\nback\n"
    f.close()


def test_switch_ends_a_partial_line_first(tmp_path):
    old, new = tmp_path / "old.log", tmp_path / "new.log"
    old.write_bytes(b"complete\npartial")
    new.write_bytes(b"new 1\n")
    f, sink = follower(old)
    f.switch(new, "moved")
    f.poll()
    assert sink.data == b"complete\npartial\nnew 1\n" and sink.notices == ["moved"]
    f.close()


# ---------------------------------------------------------------------------
# finding the logs
# ---------------------------------------------------------------------------
def make_logs(db, names_oldest_first):
    directory = db / "log"
    directory.mkdir(parents=True, exist_ok=True)
    for age, name in enumerate(reversed(names_oldest_first)):
        path = directory / name
        path.write_text(f"{name}\n")
        os.utime(path, (1_700_000_000 - age * 60, 1_700_000_000 - age * 60))
    return directory


def test_the_newest_launcher_log_by_modification_time(tmp_path):
    d = make_logs(tmp_path, ["launcher-b-2.log", "launcher-a-1.log", "service.log", "launcher-c-3.log.1"])
    assert logs.find_log(tmp_path) == d / "launcher-a-1.log"
    os.utime(d / "launcher-b-2.log")  # written to now
    assert logs.find_log(tmp_path) == d / "launcher-b-2.log"


@pytest.mark.parametrize("text, name", [
    ("4242", "launcher-nid00012-4242.log"),           # a pid
    ("nid00012", "launcher-nid00012-4242.log"),       # a host
    ("login-1-77", "launcher-login-1-77.log"),         # host-pid, a host with dashes
    ("login-1", "launcher-login-1-77.log"),           # the host of it
    ("gin-1-7", "launcher-login-1-77.log"),           # a part naming one log
    ("42", "launcher-nid00012-42.log"),               # the exact pid wins over 4242 containing it
])
def test_a_launcher_by_host_pid_or_a_part(tmp_path, text, name):
    d = make_logs(tmp_path, ["launcher-nid00012-4242.log", "launcher-nid00012-42.log", "launcher-login-1-77.log"])
    if name == "launcher-nid00012-4242.log" and text == "nid00012":
        (d / "launcher-nid00012-42.log").unlink()  # a host is one log only if it ran one launcher
    assert logs.find_log(tmp_path, launcher=text) == d / name


def test_an_ambiguous_launcher_lists_the_candidates_newest_first(tmp_path):
    make_logs(tmp_path, [f"launcher-node-{pid}.log" for pid in range(100, 115)])
    with pytest.raises(AmbiguousId) as error:
        logs.find_log(tmp_path, launcher="node")
    message = str(error.value)
    assert message.startswith("launcher 'node' is ambiguous: it matches launcher-node-114.log, launcher-node-113.log")
    assert message.endswith("launcher-node-105.log and 5 more; give its host-pid")


def test_no_matching_launcher_lists_the_launcher_logs(tmp_path):
    d = make_logs(tmp_path, ["launcher-a-1.log", "service.log"])
    with pytest.raises(NotFound, match=rf"no launcher log matches 'zz' in {d} \(launcher logs, newest first: "
                                       r"launcher-a-1.log\)"):
        logs.find_log(tmp_path, launcher="zz")


def test_the_single_logs_by_kind(tmp_path):
    d = make_logs(tmp_path, ["service.log", "dbserver.log", "watchdog.log", "cli.log"])
    for kind in logs.KINDS:
        assert logs.find_log(tmp_path, kind=kind) == d / f"{kind}.log"
    (d / "dbserver.log").unlink()
    with pytest.raises(NotFound, match=rf"no dbserver log in {d} \(logs there: "):
        logs.find_log(tmp_path, kind="dbserver")
    with pytest.raises(NotFound, match="no launcher log in .* yet .*; choose one with --service, --dbserver"):
        logs.find_log(tmp_path)


def test_no_logs_at_all(tmp_path):
    with pytest.raises(NotFound, match=f"no logs in {tmp_path / 'log'} yet"):
        logs.find_log(tmp_path)
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "launcher-a-1.log.1").write_text("only a rotation\n")
    with pytest.raises(NotFound, match="no logs in"):
        logs.find_log(tmp_path)


def test_the_newer_launcher_watch_sees_only_launchers_started_later(tmp_path):
    d = make_logs(tmp_path, ["launcher-a-1.log", "launcher-b-2.log"])
    check = logs.newer_launcher_watch(tmp_path)
    assert check() is None
    os.utime(d / "launcher-a-1.log")  # an older launcher writing again is no reason to move
    assert check() is None
    (d / "launcher-c-3.log").write_text("started\n")
    assert check() == (d / "launcher-c-3.log", f"a newer launcher started: following {d / 'launcher-c-3.log'}")
    assert check() is None
    os.rename(d / "launcher-c-3.log", d / "launcher-c-3.log.1")  # its rotation is not a new launcher
    (d / "launcher-c-3.log").write_text("rotated\n")
    assert check() is None
