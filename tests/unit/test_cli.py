"""Every CLI command, in-process: what it prints, what it stores, and that bad
input is one line on stderr, a non-zero exit, and no change to the DB."""

import json

import click
import pytest

from balsam.cli.main import cli as balsam_cli
from balsam.core.models import ApplicationDefinition, BalsamJob

JOB = ["job", "--name", "sim", "--workflow", "wf", "--application", "hello", "--yes"]


def assert_one_line_error(result, fragment, code=1):
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in result.output


def add_job(cli, *extra, name="sim"):
    args = list(JOB)
    args[2] = name
    result = cli(*args, *extra)
    assert result.exit_code == 0, result.output
    return BalsamJob.objects.get(name=name)


@pytest.fixture
def hello(make_app):
    return make_app("hello", "echo")


def _all_commands(group, prefix=()):
    for name, command in group.commands.items():
        yield prefix + (name,)
        if isinstance(command, click.Group):
            yield from _all_commands(command, prefix + (name,))


@pytest.mark.parametrize("path", sorted(_all_commands(balsam_cli)))
def test_every_command_has_help(cli, path):
    result = cli(*path, "--help")
    assert result.exit_code == 0
    assert "Usage: balsam" in result.output


def test_init_and_which(cli, tmp_path):
    result = cli("init", tmp_path / "new")
    assert result.exit_code == 0
    assert f"Created Balsam DB at {tmp_path / 'new'}" in result.output
    result = cli("init", tmp_path / "new")
    assert "up to date" in result.output
    result = cli("--db", tmp_path / "new", "which")
    assert f"Balsam DB:   {tmp_path / 'new'}  (selected by --db)" in result.output
    assert "Write mode:  direct" in result.output
    assert "Jobs:        0" in result.output


def test_which_counts_jobs(cli, make_job):
    make_job()
    make_job().update_state("READY")
    assert "Jobs:        2  (1 CREATED, 1 READY)" in cli("which").output


def test_init_refuses_a_file(cli, tmp_path):
    (tmp_path / "f").write_text("data")
    assert_one_line_error(cli("init", tmp_path / "f"), "is a file")


def test_missing_db_is_one_line_naming_the_path(cli, tmp_path, snapshot):
    result = cli("--db", tmp_path / "nowhere", "ls")
    assert_one_line_error(result, f"{tmp_path / 'nowhere'} (selected by --db) does not exist")
    assert f"balsam init {tmp_path / 'nowhere'}" in result.stderr


def test_app_is_added(cli):
    result = cli("app", "--name", "sim", "--executable", "echo", "--description", "d", "--env", "A=1", "--env", "B=x:y")
    assert result.exit_code == 0 and "Added app to the DB" in result.output
    app = ApplicationDefinition.objects.get(name="sim")
    assert (app.executable, app.environ_vars) == ("echo", {"A": "1", "B": "x:y"})


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--name", "hello", "--executable", "echo"], "an application named 'hello' already exists"),
        (["--name", "new", "--executable", "no-such-program-xyz"], "is not on PATH"),
        (["--name", "new", "--executable", "echo", "--env", "oops"], "--env expects VARIABLE=value"),
        (["--name", "new"], "Missing option '--executable'"),
    ],
)
def test_app_bad_input(cli, hello, snapshot, args, fragment):
    before = snapshot()
    result = cli("app", *args)
    assert_one_line_error(result, fragment, code=2 if "Missing" in fragment else 1)
    assert snapshot() == before


def test_job_with_every_option(cli, hello):
    result = cli(
        *JOB, "--args", "-n 3", "--description", "d", "--num-nodes", "2", "--ranks-per-node", "4",
        "--threads-per-rank", "2", "--threads-per-core", "1", "--node-packing-count", "3",
        "--wall-time-minutes", "10", "--input-files", "*.dat", "--url-in", "local:/in", "--url-out", "local:/out",
        "--stage-out-files", "*.out", "--env", "X=1", "--preprocess", "pre.sh", "--postprocess", "post.sh",
        "--post-handle-error", "--post-handle-timeout", "--disable-auto-timeout-retry",
    )
    assert result.exit_code == 0, result.output
    job = BalsamJob.objects.get()
    assert (job.args, job.num_nodes, job.ranks_per_node, job.threads_per_rank, job.node_packing_count) == ("-n 3", 2, 4, 2, 3)
    assert (job.wall_time_minutes, job.input_files, job.stage_in_url, job.stage_out_url) == (10, "*.dat", "local:/in", "local:/out")
    assert (job.stage_out_files, job.environ_vars, job.preprocess, job.postprocess) == ("*.out", {"X": "1"}, "pre.sh", "post.sh")
    assert job.post_error_handler and job.post_timeout_handler and not job.auto_timeout_retry
    assert f"Added job {job.cute_id}" in result.output


def test_job_asks_for_confirmation(cli, hello):
    args = [a for a in JOB if a != "--yes"]
    result = cli(*args, input="n\n")
    assert result.exit_code == 1 and "Add job aborted" in result.output
    assert "Confirm adding job to DB" in result.output
    assert not BalsamJob.objects.exists()
    result = cli(*args, input="y\n")
    assert result.exit_code == 0 and BalsamJob.objects.count() == 1


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--application", "nope"], "no application with id or name 'nope'"),
        (["--num-nodes", "-1"], "num_nodes must be at least 1"),
        (["--ranks-per-node", "0"], "ranks_per_node must be at least 1"),
        (["--env", "X"], "--env expects VARIABLE=value"),
        (["--num-nodes", "two"], "'two' is not a valid integer"),
        (["--num-nodes", "100000000000000000000"], "num_nodes must be between -2,147,483,647 and 2,147,483,647"),
        (["--ranks-per-node", str(2**31)], "ranks_per_node must be between"),
        (["--wall-time-minutes", "nan"], "wall_time_minutes must be a finite number, not nan"),
        (["--wall-time-minutes", "inf"], "wall_time_minutes must be a finite number, not inf"),
    ],
)
def test_job_bad_input(cli, hello, snapshot, extra, fragment):
    before = snapshot()
    result = cli(*JOB, *extra)
    assert_one_line_error(result, fragment, code=2 if "valid integer" in fragment else 1)
    assert "Job [" not in result.stdout  # no card for a job that was never added
    assert snapshot() == before


def test_dep_links_and_refuses_cycles(cli, hello, snapshot):
    a, b = add_job(cli, name="first"), add_job(cli, name="second")
    result = cli("dep", a.short_id, "second")
    assert result.exit_code == 0 and f"Created link {a.cute_id} --> {b.cute_id}" in result.output
    before = snapshot()
    assert_one_line_error(cli("dep", "second", "first"), "would create a cycle")
    assert_one_line_error(cli("dep", "first", "zzz"), "no job with id or name 'zzz'")
    assert snapshot() == before


def test_name_that_is_also_an_id_prefix_is_ambiguous(cli, make_job):
    import uuid

    named = make_job(name="abc")
    other = make_job(name="zz", job_id=uuid.UUID("abc00000-0000-4000-8000-000000000000"))
    result = cli("dep", "abc", "zz")
    assert_one_line_error(result, "job id or name 'abc' is ambiguous")
    assert str(named.job_id) in result.stderr and str(other.job_id) in result.stderr


def test_ambiguous_prefix_lists_candidates(cli, hello, make_job, snapshot):
    import uuid

    j1 = make_job(name="x", job_id=uuid.UUID("abcd1111-0000-4000-8000-000000000000"))
    j2 = make_job(name="y", job_id=uuid.UUID("abcd2222-0000-4000-8000-000000000000"))
    before = snapshot()
    result = cli("kill", "abcd")
    assert_one_line_error(result, f"job id 'abcd' is ambiguous: it matches [x | {j1.job_id}], [y | {j2.job_id}]")
    assert snapshot() == before


def test_mkchild(cli, hello):
    parent = add_job(cli, name="parent")
    args = ["mkchild", "--name", "kid", "--workflow", "wf", "--application", "hello", "--yes"]
    assert_one_line_error(cli(*args), "BALSAM_JOB_ID is not set")
    result = cli(*args, env={"BALSAM_JOB_ID": str(parent.pk)})
    assert result.exit_code == 0, result.output
    kid = BalsamJob.objects.get(name="kid")
    assert list(kid.parents.all()) == [parent]
    assert f"Created link {parent.cute_id} --> {kid.cute_id}" in result.output


def test_ls_table_and_filters(cli, hello, make_job):
    a = make_job(name="alpha", workflow="one")
    make_job(name="beta", workflow="two").update_state("READY")
    out = cli("ls").output
    assert out.splitlines()[0].split() == ["job_id", "name", "workflow", "application", "state"]
    assert f"{a.short_id}  alpha" in out and "beta" in out
    assert "beta" not in cli("ls", "--wf", "one").output
    assert "alpha" not in cli("ls", "--state", "ready").output
    assert "beta" not in cli("ls", "--id", a.short_id[:5]).output
    assert "alpha" not in cli("ls", "--name", "et").output
    assert cli("ls", "--state", "RUN_ERROR").output.strip() == "No jobs found matching query"


def test_ls_bad_state_is_one_line(cli, hello):
    assert_one_line_error(cli("ls", "--state", "DONE"), "unknown state 'DONE'")


def test_ls_by_states_draws_bars(cli, make_job):
    for _ in range(3):
        make_job()
    make_job().update_state("READY")
    lines = cli("ls", "--by-states").output.splitlines()
    assert lines[2].split()[:2] == ["CREATED", "3"] and lines[2].count("█") == 40
    assert lines[3].split()[:2] == ["READY", "1"] and 10 <= lines[3].count("█") <= 14
    assert lines[4].split() == ["total", "4"]
    assert json.loads(cli("ls", "--by-states", "--json").output) == {"CREATED": 3, "READY": 1}


def test_ls_tree_shows_each_job_once_however_many_paths_reach_it(cli, make_job):
    # Like a chain of spawn_child calls: every job has all earlier ones as parents,
    # so 2**15 paths lead to the last of 16 jobs.
    chain = []
    for n in range(16):
        chain.append(make_job(name=f"g{n}", parents=list(chain)))
    tree = cli("ls", "--tree").output.splitlines()
    edges = 16 * 15 // 2
    assert len(tree) == 1 + edges  # the root, then one line per edge
    full = [line for line in tree if not line.endswith("(shown above)")]
    assert len(full) == 16 and full[0] == f"g0 [{chain[0].short_id}] CREATED"
    assert [line.split()[-3] for line in full] == [f"g{n}" for n in range(16)]


def test_ls_tree_history_verbose_json(cli, make_job):
    parent = make_job(name="parent")
    child = make_job(name="child", parents=[parent])
    parent.update_state("READY", "deps ok")
    tree = cli("ls", "--tree").output.splitlines()
    assert tree == [f"parent [{parent.short_id}] READY", f"└── child [{child.short_id}] CREATED"]
    history = cli("ls", "--history", "--name", "parent").output
    assert f"Job parent [{parent.job_id}]" in history and "CREATED -> READY  deps ok" in history
    verbose = cli("ls", "--verbose", "--name", "child").output
    assert f"parents: {parent.short_id}" in verbose and "working_directory:" in verbose
    rows = json.loads(cli("ls", "--json").output)
    by_name = {r["name"]: r for r in rows}
    assert by_name["child"]["parents"] == [str(parent.pk)]
    assert by_name["parent"]["working_directory"] == parent.working_directory


def test_ls_apps_and_workflows(cli, make_job):
    make_job(name="a", workflow="one")
    make_job(name="b", workflow="one").update_state("READY")
    apps = cli("ls", "apps").output
    assert "hello" in apps and "echo" in apps
    assert "hello" in cli("ls", "apps", "--id", "hello").output
    wf = cli("ls", "wf").output.splitlines()
    assert wf[2].split()[:2] == ["one", "2"] and "1 CREATED" in wf[2] and "1 READY" in wf[2]


def test_modify_parses_by_field_type(cli, hello):
    job = add_job(cli)
    result = cli("modify", "jobs", job.short_id, "--attr", "auto_timeout_retry", "--value", "False")
    assert result.exit_code == 0 and "auto_timeout_retry changed to: False" in result.output
    cli("modify", "jobs", job.short_id, "--attr", "num_nodes", "--value", "8")
    job.refresh_from_db()
    assert (job.auto_timeout_retry, job.num_nodes) == (False, 8)
    result = cli("modify", "apps", "hello", "--attr", "description", "--value", "new text")
    assert result.exit_code == 0
    assert ApplicationDefinition.objects.get(name="hello").description == "new text"


def test_modify_state_goes_through_the_state_machine(cli, hello, snapshot):
    job = add_job(cli)
    assert cli("modify", "jobs", job.short_id, "--attr", "state", "--value", "READY").exit_code == 0
    event = BalsamJob.objects.get().events.get()
    assert (event.to_state, event.message) == ("READY", "state changed from the command line")
    before = snapshot()
    assert_one_line_error(cli("modify", "jobs", job.short_id, "--attr", "state", "--value", "JOB_FINISHED"),
                          "cannot move from READY to JOB_FINISHED")
    assert snapshot() == before


@pytest.mark.parametrize(
    "attr, value, fragment",
    [
        ("num_nodes", "many", "num_nodes must be a whole number"),
        ("num_nodes", "0", "num_nodes must be at least 1"),
        ("colour", "red", "job has no field 'colour'"),
        ("auto_timeout_retry", "perhaps", "must be true or false"),
        ("job_id", "1234", "read-only job field 'job_id'"),
        ("environ_vars", "A=1", "environ_vars must be JSON"),
        ("num_nodes", str(2**63), "num_nodes must be between"),
        ("wall_time_minutes", "nan", "wall_time_minutes must be a finite number"),
        ("data", "[" * 200 + "]" * 200, "data nests deeper than 100 levels"),
        ("environ_vars", '{"A": {"x": 1}}', "environ_vars: the value of A must be text or a number, not {'x': 1}"),
        ("environ_vars", '{"A": null}', "the value of A must be text or a number, not None"),
    ],
)
def test_modify_bad_input(cli, hello, snapshot, attr, value, fragment):
    job = add_job(cli)
    before = snapshot()
    assert_one_line_error(cli("modify", "jobs", job.short_id, "--attr", attr, "--value", value), fragment)
    assert snapshot() == before


@pytest.mark.parametrize(
    "option, value",
    [
        ("--time-limit-minutes", "nan"),
        ("--time-limit-minutes", "-1"),
        ("--lease-expiry-sec", "inf"),
        ("--lease-expiry-sec", "-1"),
        ("--max-ranks-per-node", "100000000000000000000"),
        ("--num-transition-processes", "0"),
    ],
)
def test_launcher_refuses_out_of_range_numbers_before_starting(cli, option, value):
    assert_one_line_error(cli("launcher", "--consume-all", option, value), option, code=2)


def test_rm_jobs(cli, make_job):
    a = make_job(name="a")
    make_job(name="b")
    make_job(name="b")
    assert "Deleted 1 job(s)" in cli("rm", "jobs", "--id", a.short_id, "--force").output
    assert "Deleted 2 job(s)" in cli("rm", "jobs", "--name", "b", "--force").output
    assert not BalsamJob.objects.exists()


def test_rm_keeps_jobs_a_live_launcher_holds(cli, make_job):
    from balsam.core import write_client

    held = make_job(name="held")
    free = make_job(name="free")
    assert write_client.get().claim("launcher-x", ["CREATED"], 1, 60, scope={"job_ids": [str(held.pk)]}) == [
        str(held.pk)]
    result = cli("rm", "jobs", "--all", "--force")
    assert result.exit_code == 0
    assert "Deleted 1 job(s)" in result.output
    assert "Kept 1 job(s) a running launcher holds" in result.output
    assert list(BalsamJob.objects.values_list("name", flat=True)) == ["held"]
    assert not BalsamJob.objects.filter(pk=free.pk).exists()


def test_rm_asks_and_needs_one_selector(cli, make_job, snapshot):
    make_job(name="a")
    before = snapshot()
    result = cli("rm", "jobs", "--all", input="n\n")
    assert result.exit_code == 1 and "PERMANENTLY remove 1 job(s)?" in result.output
    assert_one_line_error(cli("rm", "jobs", "--all", "--name", "a"), "exactly one of --name, --id or --all", code=2)
    assert_one_line_error(cli("rm", "jobs"), "exactly one of", code=2)
    assert_one_line_error(cli("rm", "jobs", "--name", "zz", "--force"), "no jobs match the name 'zz'")
    assert snapshot() == before
    assert cli("rm", "jobs", "--all", input="y\n").exit_code == 0
    assert not BalsamJob.objects.exists()


def test_rm_app_in_use_is_refused(cli, make_job, snapshot):
    make_job(application="hello")
    before = snapshot()
    assert_one_line_error(cli("rm", "apps", "--name", "hello", "--force"), "1 unfinished job(s) use application 'hello'")
    assert snapshot() == before
    BalsamJob.objects.all().delete()
    assert "Deleted 1 application(s)" in cli("rm", "apps", "--id", "hello", "--force").output


def test_kill_and_killjob_alias(cli, make_job, snapshot):
    a = make_job(name="a")
    b = make_job(name="b", parents=[a])
    make_job(name="c", parents=[b])
    result = cli("kill", a.short_id)
    assert result.exit_code == 0 and "Killed 1 job(s)" in result.output
    assert "2 waiting child job(s) marked PARENT_KILLED" in result.output
    d = make_job(name="d")
    make_job(name="e", parents=[d])
    assert cli("killjob", "--id", d.short_id, "--recursive").exit_code == 0
    states = dict(BalsamJob.objects.values_list("name", "state"))
    assert states == {"a": "USER_KILLED", "b": "PARENT_KILLED", "c": "PARENT_KILLED", "d": "USER_KILLED", "e": "USER_KILLED"}
    before = snapshot()
    assert_one_line_error(cli("kill", a.short_id), "is USER_KILLED and cannot be killed")
    assert_one_line_error(cli("kill"), "give the id of the job to kill", code=2)
    assert snapshot() == before
    fresh = make_job(name="f")
    assert_one_line_error(cli("kill", fresh.short_id, "--id", d.short_id), "give the job to kill once", code=2)
    assert BalsamJob.objects.get(pk=fresh.pk).state == "CREATED"


def test_make_dummies(cli, snapshot):
    result = cli("make_dummies", "12")
    assert result.exit_code == 0 and "Added 12 dummy jobs to the DB" in result.output
    assert BalsamJob.objects.filter(workflow="dummy", application="dummy").count() == 12
    before = snapshot()
    assert_one_line_error(cli("make_dummies", "-3"), "must not be negative")
    assert snapshot() == before


def test_usage_error_is_one_line(cli):
    assert_one_line_error(cli("ls", "--bogus"), "No such option '--bogus'", code=2)
    assert_one_line_error(cli("frobnicate"), "No such command 'frobnicate'", code=2)


def test_job_accepts_the_application_id(cli, hello):
    result = cli(*[a for a in JOB if a != "hello"][:6], str(hello.pk), "--yes")
    assert result.exit_code == 0, result.output
    assert BalsamJob.objects.get().application == "hello"


def test_init_on_an_impossible_path_is_one_line(cli):
    assert_one_line_error(cli("init", "/proc/balsam-cannot-be-here"), "cannot create the Balsam DB at /proc/balsam-cannot-be-here")


def test_a_damaged_db_file_met_by_any_command_is_one_line(cli, db, monkeypatch):
    from django.db import DatabaseError

    from balsam import api

    def damaged(*args, **kwargs):
        raise DatabaseError("database disk image is malformed")

    monkeypatch.setattr(api, "find_jobs", damaged)
    assert_one_line_error(cli("ls"), f"the DB file {db / 'db.sqlite3'} is damaged (database disk image is malformed)")
