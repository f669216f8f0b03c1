"""What Balsam 0.2's own tests and tutorials expect (issue #17): the defects
they exposed, and the compatibility of the CLI and of job histories."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BALSAM
from tests.helpers import db_rows
from tests.integration.test_launcher import mpi_available, run_launcher, state  # noqa: F401 (a fixture)

from balsam import api


def test_a_virtualenv_python_given_as_an_app_keeps_its_packages(db, tmp_path, balsam_cmd):
    venv_python = Path(sys.executable).with_name("python")
    assert venv_python.is_symlink()  # a venv's interpreter links to the base one, which lacks the venv's packages
    script = tmp_path / "uses_balsam.py"
    script.write_text("import balsam\nprint('balsam from', balsam.__file__)\n")
    added = balsam_cmd("app", "--name", "venv-py", "--executable", f"{venv_python} {script}")
    assert added.returncode == 0, added.stderr
    stored = db_rows(db, "SELECT executable FROM balsam_app WHERE name = 'venv-py'")
    assert stored == [(f"{venv_python} {script}",)]  # as typed, not the symlink's target
    assert f"{venv_python} {script}" in balsam_cmd("ls", "apps").stdout
    job = api.add_job(name="imports", workflow="w", application="venv-py")
    run_launcher(db, "--consume-all")
    assert state(job) == "JOB_FINISHED", (Path(job.working_directory) / "imports.out").read_text()
    assert "balsam from" in (Path(job.working_directory) / "imports.out").read_text()


def test_a_relative_path_to_a_symlinked_program_becomes_absolute_but_stays_the_link(tmp_path, monkeypatch):
    target = tmp_path / "real-prog"
    target.write_text("#!/bin/sh\n")
    (tmp_path / "link-prog").symlink_to(target)
    monkeypatch.chdir(tmp_path)
    assert api.resolve_command("./link-prog -x") == f"{tmp_path / 'link-prog'} -x"


EDGE_WORKER = '''
import sys
from django.db import transaction
from balsam.launcher import dag
from balsam.core.models import BalsamJob

kind, name, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
errors = []
for i in range(rounds):
    try:
        if kind == "edges":  # 0.2's rescue-job scenario: drop an edge and put it back
            child, parent = BalsamJob.objects.get(name=name), BalsamJob.objects.get(name="parent")
            child.parents.remove(parent)
            child.parents.add(parent)
            child.parents.clear()
            child.parents.set([parent])
        else:  # saves and a queryset update inside the user's own transaction
            with transaction.atomic():
                job = dag.add_job(name=f"{name}-{i}", workflow="inserts", application="hello")
                BalsamJob.objects.filter(pk=job.pk).update(description="updated in a transaction")
    except Exception as exc:
        errors.append(repr(exc))
print(len(errors), errors[:3])
'''


def test_orm_writes_in_transactions_never_fail_as_locked_while_others_write(db, make_app, tmp_path):
    from balsam.core.models import BalsamJob

    make_app("hello")
    parent = api.add_job(name="parent", workflow="edges", application="hello")
    children = [api.add_job(name=f"child{i}", workflow="edges", application="hello", parents=[parent])
                for i in range(16)]
    worker = tmp_path / "worker.py"
    worker.write_text(EDGE_WORKER)
    env = {**os.environ, "BALSAM_DB_PATH": str(db)}
    processes = [subprocess.Popen([sys.executable, str(worker), kind, f"{kind}{i}" if kind == "inserts" else f"child{i}",
                                   "15"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for i in range(16) for kind in ("edges", "inserts")]
    reports = [p.communicate(timeout=300) for p in processes]
    assert all(p.returncode == 0 for p in processes), [err[-500:] for _, err in reports]
    assert [out.split(" ", 1)[0] for out, _ in reports] == ["0"] * 32, [out for out, _ in reports if out[0] != "0"]
    edges = db_rows(db, "SELECT child_id, parent_id FROM balsam_job_dependency ORDER BY child_id")
    assert sorted(edges) == sorted((child.pk.hex, parent.pk.hex) for child in children)
    assert BalsamJob.objects.filter(workflow="inserts", description="updated in a transaction").count() == 16 * 15


def test_an_edge_added_in_a_transaction_still_follows_the_state_machine(db, make_app):
    from django.db import transaction

    from balsam.core.models import BalsamJob
    from balsam.exceptions import DependencyError

    make_app("hello")
    a = api.add_job(name="a", workflow="w", application="hello")
    b = api.add_job(name="b", workflow="w", application="hello", parents=[a])
    running = api.add_job(name="r", workflow="w", application="hello")
    BalsamJob.objects.filter(pk=running.pk).update(state="READY")
    with transaction.atomic():
        with pytest.raises(DependencyError, match="cycle"):
            a.parents.add(b)
    with pytest.raises(DependencyError, match="READY"):
        with transaction.atomic():
            running.parents.add(a)
    assert db_rows(db, "SELECT COUNT(*) FROM balsam_job_dependency") == [(1,)]


def test_a_serial_launcher_hands_back_a_job_its_preprocess_made_multi_rank(db, tmp_path, mpi_available):
    from tests.integration.test_launcher import APPS

    from balsam.core.models import BalsamJob

    mpi_available()
    binary = tmp_path / "hello_mpi"
    subprocess.run(["mpicc", "-o", str(binary), str(APPS / "hello_mpi.c")], check=True)
    api.add_app("hello_mpi", str(binary), preprocess=f"{sys.executable} {APPS / 'pre_two_ranks.py'}", check_paths=False)
    job = api.add_job(name="grows", workflow="w", application="hello_mpi")
    serial = run_launcher(db, "--consume-all")  # serial mode: it claims the 1-rank job and runs its preprocess
    stored = BalsamJob.objects.get(pk=job.pk)
    assert (stored.state, stored.ranks_per_node, stored.lease_owner) == ("PREPROCESSED", 2, "")
    last = stored.events.order_by("-id").first()
    assert (last.from_state, last.to_state) == ("PREPROCESSED", "PREPROCESSED")
    assert "a serial launcher runs only jobs with num_nodes = 1 and ranks_per_node = 1" in last.message
    assert "--job-mode mpi" in last.message
    assert not (Path(stored.working_directory) / "grows.out").exists()  # it was never run as one rank
    history = subprocess.run([BALSAM, "ls", "--history", "--name", "grows"], capture_output=True, text=True,
                             env={**os.environ, "BALSAM_DB_PATH": str(db)})
    assert "handed back by launcher" in history.stdout, history.stdout + serial.stdout
    run_launcher(db, "--consume-all", "--job-mode", "mpi")
    assert state(job) == "JOB_FINISHED"
    output = (Path(stored.working_directory) / "grows.out").read_text()
    assert "rank 0 of 2" in output and "rank 1 of 2" in output


def test_jobs_made_by_a_running_job_say_so_first_in_their_history(db, balsam_cmd):
    from tests.integration.test_launcher import APPS

    from balsam.core.models import BalsamJob

    api.add_app("maker", f"{sys.executable} {APPS / 'makes_jobs.py'}", check_paths=False)
    maker = api.add_job(name="maker", workflow="w", application="maker")
    run_launcher(db, "--job-file", _job_file(db, maker))
    spawned, added = BalsamJob.objects.get(name="spawned"), BalsamJob.objects.get(name="added")
    assert spawned.history()[0][1:] == ("", "CREATED", f"spawned by {maker.cute_id}")
    assert added.history()[0][1:] == ("", "CREATED", f"created by {maker.cute_id}")
    assert [h[3] for h in maker.history()][0] == "created"  # made from outside any job
    shown = balsam_cmd("ls", "--history", "--name", "spawned")
    assert f"spawned by {maker.cute_id}" in shown.stdout.splitlines()[2], shown.stdout


def test_a_job_spawned_with_the_api_or_mkchild_names_its_parent(db, make_app, balsam_cmd):
    make_app("hello")
    parent = api.add_job(name="parent", workflow="w", application="hello")
    child = api.spawn_child(parent, name="child", application="hello")
    assert child.history()[0][3] == f"spawned by {parent.cute_id}"
    made = balsam_cmd("mkchild", "--name", "cli-child", "--workflow", "w", "--application", "hello", "--yes",
                      env={"BALSAM_JOB_ID": str(parent.pk)})
    assert made.returncode == 0, made.stderr
    from balsam.core.models import BalsamJob

    assert BalsamJob.objects.get(name="cli-child").history()[0][3] == f"spawned by {parent.cute_id}"


def test_an_error_handler_log_begins_with_the_02_header(db):
    from tests.integration.test_launcher import APPS, py_app

    handler = f"{sys.executable} {APPS / 'handler.py'}"
    py_app("fail", "fail.py", postprocess=handler)
    job = api.add_job(name="handled", workflow="w", application="fail", post_error_handler=True)
    run_launcher(db, "--consume-all")
    lines = (Path(job.working_directory) / "postprocess.log").read_text().splitlines()
    assert lines[:2] == [f"# postprocess: {handler}", "# Invoked to handle RUN_ERROR"]


def _job_file(db, job):
    path = Path(db) / "maker.ids"
    path.write_text(f"{job.pk}\n")
    return path


def test_long_options_accept_0_2_style_unique_prefixes(db, balsam_cmd):
    app = balsam_cmd("app", "--name", "echo", "--exec", "/bin/echo", "--desc", "says things")
    assert app.returncode == 0, app.stderr
    assert db_rows(db, "SELECT executable, description FROM balsam_app WHERE name = 'echo'") == [("/bin/echo", "says things")]
    job = balsam_cmd("job", "--name", "j", "--work", "w", "--app", "echo", "--wall-min", "5", "--num-n", "1",
                     "--args", "--name", "--yes")  # an option's value is never expanded
    assert job.returncode == 0, job.stderr
    assert db_rows(db, "SELECT wall_time_minutes, args FROM balsam_job WHERE name = 'j'") == [(5.0, "--name")]
    assert "Job j [" in balsam_cmd("ls", "--hist", "--name", "j").stdout
    ran = subprocess.run([BALSAM, "launcher", "--consume", "--until-idle", "--max-ranks", "2"], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "BALSAM_DB_PATH": str(db)})
    assert ran.returncode == 0, ran.stderr
    assert db_rows(db, "SELECT state FROM balsam_job WHERE name = 'j'") == [("JOB_FINISHED",)]
    ambiguous = balsam_cmd("job", "--n", "x")
    assert ambiguous.returncode == 2
    assert ambiguous.stderr == "Error: option --n is ambiguous: it could be --name, --node-packing-count, --num-nodes\n"


def test_qsub_adds_a_job_that_runs_a_command_without_an_application(db, balsam_cmd):
    added = balsam_cmd("qsub", "-n", "1", "-N", "1", "-t", "5", "--name", "hi", "--env", "WHO=world",
                       "sh", "-c", "echo hello $WHO -n")  # options of the command are the command's
    assert added.returncode == 0, added.stderr
    assert "Added job [hi |" in added.stdout
    (name, workflow, app, wall, retry), = db_rows(
        db, "SELECT name, workflow, application, wall_time_minutes, auto_timeout_retry FROM balsam_job")
    assert (name, workflow, wall, retry) == ("hi", "qsub", 5.0, 0)
    assert db_rows(db, f"SELECT executable, preprocess, postprocess FROM balsam_app WHERE name = '{app}'") == [
        ("sh -c 'echo hello $WHO -n'", "", "")]
    again = balsam_cmd("qsub", "-t", "5", "sh", "-c", "echo hello $WHO -n")  # the same command: the same application
    assert again.returncode == 0, again.stderr
    assert db_rows(db, "SELECT COUNT(DISTINCT application), COUNT(*) FROM balsam_job") == [(1, 2)]
    run_launcher(db, "--wf-filter", "qsub")
    (workdir,), = db_rows(db, "SELECT workdir FROM balsam_job WHERE name = 'hi'")
    assert (db / "data" / workdir / "hi.out").read_text().startswith("hello world -n")
    missing = balsam_cmd("qsub", "echo", "hi")
    assert missing.returncode == 2 and "Missing option '-t' / '--wall-minutes'" in missing.stderr
