"""Real processes: the console script, user scripts importing ``dag``."""

import os
import subprocess
import sys
import textwrap

from balsam.core.models import BalsamJob


def run_user_script(db, code, **env):
    """Run ``code`` as a user's script with nothing but BALSAM_DB_PATH (and PATH) set."""
    clean_env = {"PATH": os.environ["PATH"], "BALSAM_DB_PATH": str(db), **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=clean_env, timeout=120
    )


def test_console_script_errors_are_one_line_without_traceback(balsam_cmd, tmp_path):
    result = balsam_cmd("--db", tmp_path / "missing", "ls")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: {tmp_path / 'missing'} (selected by --db) does not exist; "
        f"create it with: balsam init {tmp_path / 'missing'}"
    )
    result = balsam_cmd("modify", "jobs", "nope", "--attr", "state", "--value", "READY")
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_console_script_round_trip(balsam_cmd, db):
    assert balsam_cmd("app", "--name", "hello", "--executable", "echo").returncode == 0
    out = balsam_cmd("job", "--name", "a", "--workflow", "w", "--application", "hello", "--yes")
    assert out.returncode == 0, out.stderr
    listing = balsam_cmd("ls").stdout
    assert "a" in listing and "CREATED" in listing
    which = balsam_cmd("which").stdout
    assert "Jobs:        1  (1 CREATED)" in which and "Integrity:   ok" in which
    assert (db / "log" / "cli.log").is_file()


def test_traceback_only_when_asked(balsam_cmd):
    result = balsam_cmd("kill", "zzzz", env={"BALSAM_TRACEBACK": "1"})
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_user_script_with_only_balsam_db_path(db, make_app):
    make_app()
    result = run_user_script(
        db,
        """
        import balsam.launcher.dag as dag
        a = dag.add_job(name="a", workflow="w", application="hello")
        b = dag.add_job(name="b", workflow="w", application="hello")
        dag.add_dependency(a, b)
        print(dag.JOB_ID == "", dag.current_job is None, dag.TIMEOUT, dag.ERROR)
        print(dag.BalsamJob.objects.get(name="b").parents.get().name)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "False", "False", "a"]
    assert BalsamJob.objects.count() == 2


def test_script_inside_a_job_spawns_children_and_kills(db, make_job):
    parent = make_job(name="parent", args="--n 1")
    other = make_job(name="other")
    victim_child = make_job(name="victim_child", parents=[other])
    result = run_user_script(
        db,
        """
        import balsam.launcher.dag as dag
        assert dag.current_job.name == "parent"
        assert dag.TIMEOUT and not dag.ERROR
        for i in range(3):
            dag.spawn_child(name=f"kid{i}", application="hello", args=str(i))
        clone = dag.spawn_child(clone=True, name="clone")
        print(clone.args)
        print(sorted(c.name for c in dag.children))
        dag.kill(dag.BalsamJob.objects.get(name="other"))
        """,
        BALSAM_JOB_ID=str(parent.pk),
        BALSAM_JOB_TIMEOUT="TRUE",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "--n 1"
    assert lines[1] == str(["clone", "kid0", "kid1", "kid2"])
    assert {j.name for j in parent.children.all()} == {"kid0", "kid1", "kid2", "clone"}
    assert BalsamJob.objects.get(pk=other.pk).state == "USER_KILLED"
    assert BalsamJob.objects.get(pk=victim_child.pk).state == "USER_KILLED"


def test_bad_dag_calls_raise_clear_errors(db, make_app):
    make_app()
    result = run_user_script(
        db,
        """
        import balsam.launcher.dag as dag
        from balsam.exceptions import BalsamError
        for call in (lambda: dag.add_job(name="x", colour="red"),
                     lambda: dag.spawn_child(name="y"),
                     lambda: dag.add_dependency("nope", "nada")):
            try:
                call()
            except BalsamError as exc:
                print(type(exc).__name__, exc)
        """,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ValidationError unknown job field 'colour'")
    assert lines[1].startswith("BalsamError spawn_child() needs a current job")
    assert lines[2].startswith("NotFound no job with id or name 'nope'")
    assert not BalsamJob.objects.exists()


def test_dag_with_a_deleted_current_job(db):
    result = run_user_script(db, "import balsam.launcher.dag", BALSAM_JOB_ID="0" * 32)
    assert result.returncode == 1
    assert "is not a job in" in result.stderr and "was it deleted?" in result.stderr


def test_concurrent_direct_writers_lose_nothing(db, make_app):
    """8 processes adding jobs at once through the direct client: no 'database is locked'."""
    make_app()
    code = """
        import sys
        import balsam.launcher.dag as dag
        for i in range(25):
            dag.add_job(name=f"p{sys.argv[1]}_{i}", workflow="w", application="hello")
    """
    env = {"PATH": os.environ["PATH"], "BALSAM_DB_PATH": str(db)}
    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(n)], env=env, stderr=subprocess.PIPE, text=True)
        for n in range(8)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, errors
    assert BalsamJob.objects.count() == 200


def _count_jobs(db):
    from tests.helpers import db_rows

    return db_rows(db, "SELECT COUNT(*) FROM balsam_job")[0][0]


def test_ctrl_c_at_a_prompt_exits_130_interrupted(db, make_app):
    import signal

    from tests.conftest import BALSAM
    from tests.helpers import TAKES_CTRL_C, wait_until

    make_app()
    process = subprocess.Popen([BALSAM, "job", "--name", "a", "--workflow", "w", "--application", "hello"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, BALSAM_DB_PATH=str(db)), **TAKES_CTRL_C)
    # The card is printed just before the prompt (which ends without a newline).
    wait_until(lambda: "application" in process.stdout.readline(), 60, "the job card")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and err.strip() == "Error: interrupted"
    assert _count_jobs(db) == 0


def test_ctrl_c_during_make_dummies_says_how_many_were_added(db):
    import re
    import signal

    from tests.conftest import BALSAM
    from tests.helpers import TAKES_CTRL_C, wait_until

    process = subprocess.Popen([BALSAM, "make_dummies", "300000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=dict(os.environ, BALSAM_DB_PATH=str(db)), **TAKES_CTRL_C)
    wait_until(lambda: _count_jobs(db) >= 20_000, 120, "make_dummies to add some jobs")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    last = err.strip().splitlines()[-1]
    found = re.fullmatch(r"Error: interrupted after adding (\d+) of 300000 dummy jobs .*", last)
    assert found, last
    assert int(found.group(1)) == _count_jobs(db) < 300_000


def _damage_db_file(db):
    """8 KiB of random bytes over the middle of the DB file (as a disk or a careless copy might)."""
    import random

    path = db / "db.sqlite3"
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek((size // 2) // 4096 * 4096)
        f.write(random.Random(7).randbytes(8192))


def test_a_damaged_db_is_refused_in_one_line(balsam_cmd, db, make_app):
    make_app()
    assert balsam_cmd("make_dummies", "3000").returncode == 0
    from django.db import connections

    connections.close_all()
    _damage_db_file(db)
    for args in (["init", db], ["dbserver", "--host", "127.0.0.1"], ["which"]):
        result = balsam_cmd(*args)
        assert result.returncode != 0, args
        assert "is damaged" in result.stderr and ".recover" in result.stderr, result.stderr
        assert "unexpected" not in result.stderr
    from balsam.wire.serverinfo import ServerInfo

    assert ServerInfo(db).read()["address"] is None  # nothing serves the damaged file


def test_a_launcher_filtering_on_an_unknown_workflow_says_so(balsam_cmd, make_job):
    make_job(workflow="real")
    result = balsam_cmd("launcher", "--wf-filter", "nosuchwf", "--until-idle")
    assert result.returncode == 0
    assert "no job is in workflow 'nosuchwf' yet (workflows: real)" in result.stderr
    assert "Note" not in balsam_cmd("launcher", "--wf-filter", "real", "--until-idle").stderr


def _peak_rss_mib(db, *args):
    """Peak resident memory of ``balsam ARGS`` (its output discarded), in MiB."""
    from tests.conftest import BALSAM

    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    result = subprocess.run([sys.executable, "-c", probe, BALSAM, *args], capture_output=True, text=True,
                            env=dict(os.environ, BALSAM_DB_PATH=str(db)), timeout=300)
    assert result.returncode == 0, result.stderr
    return int(result.stdout) / 1024


def test_a_long_listing_streams_in_bounded_memory(db, balsam_cmd):
    assert balsam_cmd("make_dummies", "150000").returncode == 0
    empty = _peak_rss_mib(db, "ls", "--wf", "no-such-workflow")
    full = _peak_rss_mib(db, "ls", "--wf", "dummy")
    # SQLite's page cache may fill up to its bound (64 MiB, settings.py) as the scan reads the
    # table; beyond that a streamed listing needs only its sample of rows. Holding every row
    # (as before) took over 150 MiB here, and more for every further job.
    assert full - empty < 64 + 16, f"listing 150,000 jobs took {full - empty:.0f} MiB more than listing none"
