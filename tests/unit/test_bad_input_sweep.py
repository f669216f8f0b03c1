"""Every command, given out-of-range, non-finite, empty, huge and malformed
values: a non-zero exit, one line on stderr that is not an internal error,
and nothing stored changed."""

import pytest

from tests.unit.test_cli import assert_one_line_error

BAD_NUMBERS = ["-1", "nan", "inf", "-inf", "1e400", "99999999999999999999999", "", " ", "x" * 5000]
BAD_TEXT = ["", "x" * 5000]
JOB = ["job", "--name", "sim", "--workflow", "wf", "--application", "hello", "--yes"]


def _cases():
    cases = []
    for option in ("--num-nodes", "--ranks-per-node", "--threads-per-rank", "--threads-per-core",
                   "--node-packing-count", "--wall-time-minutes"):
        cases += [(JOB + [option, value]) for value in BAD_NUMBERS]
    cases += [(JOB[:2] + [value] + JOB[3:]) for value in ["x" * 5000]]  # --name too long
    cases += [(JOB[:5] + [value] + JOB[6:]) for value in BAD_TEXT]  # --application
    cases += [JOB + ["--env", value] for value in ["", "=", "A", "1A=2"]]
    for attr in ("num_nodes", "wall_time_minutes", "ranks_per_node", "node_packing_count", "threads_per_rank"):
        cases += [["modify", "jobs", "JOB", "--attr", attr, "--value", value] for value in BAD_NUMBERS]
    for attr, values in (("environ_vars", ["[1]", '{"": "x"}', "{", '{"A": [1]}']),
                         ("data", ["{", "[" * 200 + "]" * 200]), ("state", ["", "DONE", "RUNNING"]),
                         ("name", ["x" * 5000]), ("workdir", ["/etc"]), ("lease_owner", ["me"])):
        cases += [["modify", "jobs", "JOB", "--attr", attr, "--value", value] for value in values]
    cases += [["modify", "apps", "hello", "--attr", "name", "--value", value] for value in BAD_TEXT]
    cases += [["modify", "apps", "hello", "--attr", "executable", "--value", value] for value in ["", "/no/such/x"]]
    cases += [["modify", "jobs", ref, "--attr", "args", "--value", "x"] for ref in ["", "zz", "0" * 40]]
    cases += [["app", "--name", name, "--executable", "echo"] for name in BAD_TEXT + ["hello"]]
    cases += [["app", "--name", "a2", "--executable", value] for value in ["", "/no/such/x", "'unclosed"]]
    cases += [["make_dummies", value] for value in ["-1", "nan", "1e400", "99999999999999999999999", "", "x"]]
    cases += [["dep", a, b] for a, b in (("JOB", "JOB"), ("zz", "JOB"), ("JOB", ""))]
    cases += [["kill", value] for value in ["", "zz", "0" * 40]]
    cases += [["rm", "jobs", "--id", value] for value in ["", "zz"]]
    cases += [["ls", "--state", value] for value in ["", "DONE"]]
    cases += [["ls", "--id", value] for value in ["zz", "x" * 5000]]
    cases += [["submit-launch", "-n", n, "-t", t, "-q", "local"] for n, t in
              (("-1", "10"), ("0", "10"), ("1", "nan"), ("1", "inf"), ("1", "-5"), ("99999999999999999999999", "10"),
               ("1", "1e400"))]
    cases += [["submit-launch", "-n", "1", "-t", "10", "-q", value] for value in ["", "nope"]]
    cases += [["cancel-launch", value] for value in ["-1", "99999999999999999999999", "x"]]
    cases += [["service", "--period-sec", value] for value in ["nan", "inf", "-1", "0"]]
    cases += [["launcher", "--consume-all", option, value] for option in
              ("--num-workers", "--nodes-per-worker", "--max-ranks-per-node", "--time-limit-minutes",
               "--num-transition-processes", "--lease-expiry-sec") for value in ["nan", "-1", "1e400", "x"]]
    cases += [["log", "--lines", value] for value in ["-1", "nan", "inf", "1e400", "1.5", "²", "", " ", "x" * 5000]]
    cases += [["log", "--launcher", value] for value in ["", " ", "zz", "x" * 5000]]
    cases += [["log", "--service", "--dbserver"], ["log", "--launcher", "h", "--watchdog"], ["log", "--cli", "--service"]]
    for option in ("-n", "-N", "-t", "-d", "-j"):
        cases += [["qsub", "-t", "5", option, value, "echo", "hi"] for value in BAD_NUMBERS]
    cases += [["qsub", "-t", "5", command] for command in ["", "/no/such/x", "no-such-program-xyz"]]
    cases += [["qsub", "-t", "5", "--env", "1A=2", "echo"], ["qsub", "echo", "hi"], ["qsub", "-t", "5"]]
    cases += [["db", "compact", "--events-older-than", value] for value in ["nan", "-1d", "", "1e400d", "5y"]]
    cases += [["db", "restore", value] for value in ["", "/no/such/file.sqlite3", "/"]]
    cases += [["db", "backup", "--to", value] for value in ["/", "/proc/no/such/dir/x.sqlite3"]]
    cases += [["doctor", value] for value in ["zz", "0" * 40]]
    cases += [JOB + ["--n", "3"], ["ls", "--h"], ["launcher", "--consume-all", "--n", "1"]]  # ambiguous
    cases += [["report", "throughput", "--since", value] for value in
              ["x", "-1h", "0m", "1e400h", "nan", "inf", "9" * 13 + "w", "1h30m", "x" * 5000]]
    cases += [["report", what, "--plot", value] for what in ("states", "utilization")
              for value in ["", "x.jpg", "/no/such/dir/x.png", "x" * 5000 + ".png"]]
    cases += [["report", "failures", "--plot", "f.png"]]
    cases += [["report", "failures", "--limit", value] for value in BAD_NUMBERS + ["0"]]
    cases += [["report", "failures", "--lines", value] for value in ["-1", "nan", "1e400", "x", "100000"]]
    cases += [["report", value] for value in ["", "state", "x" * 5000]]
    cases += [["web", "--port", value] for value in BAD_NUMBERS + ["65536", "8000.5"]]
    cases += [["web", "--host", value] for value in ["", " "]]
    cases += [["web", "adduser", name, "--password-file", "/no/such/file"] for name in ["", " ", "a b", "x" * 5000]]
    cases += [["web", "adduser", "alice", "--password-file", value] for value in ["", "/no/such/file", "/"]]
    cases += [["web", "passwd", name, "--password-file", "/no/such/file"] for name in ["", "nobody", "x" * 5000]]
    return cases


CASES = _cases()


@pytest.mark.parametrize("args", CASES, ids=[" ".join(a)[:80] for a in CASES])
def test_bad_input_is_one_line_and_changes_nothing(cli, db, make_job, snapshot, args):
    job = make_job(name="target")
    if args[0] == "log":  # a log to find, so a bad --launcher is refused for itself
        (db / "log").mkdir(exist_ok=True)
        (db / "log" / "launcher-h-1.log").write_text("started\n")
    args = [job.short_id if a == "JOB" else a for a in args]
    before = snapshot()
    result = cli(*args)
    assert result.exit_code != 0, f"accepted: {args}"
    assert_one_line_error(result, "", code=result.exit_code)
    line = result.stderr.strip()
    assert "unexpected" not in line and "internal error" not in line, line
    assert snapshot() == before
