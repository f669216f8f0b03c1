"""Commands that add, link, change, kill and remove jobs."""

import os
import shlex
import sys

import click

from balsam import api
from balsam.cli.common import attach, confirm
from balsam.cli.show import app_block, job_block
from balsam.exceptions import BalsamError, Interrupted, NotFound


def job_options(func):
    """The job-definition options shared by ``job`` and ``mkchild``."""
    options = [
        click.option("--name", required=True, help="Job name (also names its working directory)."),
        click.option("--workflow", required=True, help="Workflow the job belongs to (groups jobs and their data)."),
        click.option("--application", required=True, help="Name of the application to run (see: balsam ls apps)."),
        click.option("--args", default="", help="Arguments appended to the application's command line."),
        click.option("--description", default="", help="Free text."),
        click.option("--num-nodes", type=int, default=1, show_default=True, help="Nodes the job needs."),
        click.option("--ranks-per-node", type=int, default=1, show_default=True, help="MPI ranks per node."),
        click.option("--threads-per-rank", type=int, default=1, show_default=True, help="Threads per rank (sets OMP_NUM_THREADS)."),
        click.option("--threads-per-core", type=int, default=1, show_default=True, help="Hardware threads per core."),
        click.option("--node-packing-count", type=int, default=1, show_default=True, help="How many of these jobs may share one node (serial mode)."),
        click.option("--wall-time-minutes", "--wall-minutes", "wall_time_minutes", type=float, default=0, show_default=True, help="Run time limit in minutes (0: none; --wall-minutes is 0.2's name)."),
        click.option("--input-files", default="*", show_default=True, help="Glob patterns of parents' files linked into the job directory."),
        click.option("--url-in", default="", help="URL or path staged into the job directory before it runs."),
        click.option("--url-out", default="", help="URL or path the stage-out files are sent to."),
        click.option("--stage-out-files", default="", help="Glob patterns of files to stage out."),
        click.option("--env", "env", multiple=True, metavar="VAR=VAL", help="Environment variable for the job (repeatable)."),
        click.option("--preprocess", default="", help="Preprocess script (overrides the application's)."),
        click.option("--postprocess", default="", help="Postprocess script (overrides the application's)."),
        click.option("--post-handle-error", is_flag=True, help="Let the postprocess script handle a run error."),
        click.option("--post-handle-timeout", is_flag=True, help="Let the postprocess script handle a timeout."),
        click.option("--disable-auto-timeout-retry", is_flag=True, help="Do not rerun the job after a timeout."),
        click.option("--yes", "-y", is_flag=True, help="Add without asking for confirmation."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _job_fields(opts):
    return {
        "name": opts["name"],
        "workflow": opts["workflow"],
        "application": opts["application"],
        "args": opts["args"],
        "description": opts["description"],
        "num_nodes": opts["num_nodes"],
        "ranks_per_node": opts["ranks_per_node"],
        "threads_per_rank": opts["threads_per_rank"],
        "threads_per_core": opts["threads_per_core"],
        "node_packing_count": opts["node_packing_count"],
        "wall_time_minutes": opts["wall_time_minutes"],
        "input_files": opts["input_files"],
        "stage_in_url": opts["url_in"],
        "stage_out_url": opts["url_out"],
        "stage_out_files": opts["stage_out_files"],
        "environ_vars": api.parse_env(opts["env"]),
        "preprocess": opts["preprocess"],
        "postprocess": opts["postprocess"],
        "post_error_handler": opts["post_handle_error"],
        "post_timeout_handler": opts["post_handle_timeout"],
        "auto_timeout_retry": not opts["disable_auto_timeout_retry"],
    }


def _add_job(opts, parents=(), creation_note=None):
    fields = _job_fields(opts)
    fields["application"] = api.get_app(fields["application"]).name
    job = api.new_job(creation_note, parents=list(parents), **fields)
    api.require_writable("add a job")
    click.echo(job_block(job))
    if not confirm("Confirm adding job to DB", opts["yes"]):
        click.echo("Add job aborted")
        raise click.exceptions.Exit(1)
    job.save()
    click.echo(f"Added job {job.cute_id}")
    return job


@click.command()
@job_options
@click.pass_context
def job(ctx, **opts):
    """Add a job to the DB (prints it and asks to confirm unless --yes)."""
    attach(ctx)
    _add_job(opts)


@click.command()
@job_options
@click.pass_context
def mkchild(ctx, **opts):
    """Inside a running job: add a job that depends on it (parent = $BALSAM_JOB_ID)."""
    attach(ctx)
    parent_id = os.environ.get("BALSAM_JOB_ID")
    if not parent_id:
        raise BalsamError("mkchild only works inside a job run by Balsam (BALSAM_JOB_ID is not set)")
    parent = api.get_job(parent_id, by_name=False)
    child = _add_job(opts, parents=[parent.pk], creation_note=f"spawned by {parent.cute_id}")
    click.echo(f"Created link {parent.cute_id} --> {child.cute_id}")


@click.command()
@click.argument("parent")
@click.argument("child")
@click.pass_context
def dep(ctx, parent, child):
    """Make CHILD wait for PARENT (each an id prefix or a unique job name)."""
    attach(ctx)
    parent_job, child_job = api.add_dependency(parent, child)
    click.echo(f"Created link {parent_job.cute_id} --> {child_job.cute_id}")


@click.command()
@click.argument("job_id", required=False)
@click.option("--id", "id_option", metavar="ID", help="The job id (same as the argument; for old scripts).")
@click.option("--recursive", is_flag=True, help="Also kill every unfinished descendant.")
@click.pass_context
def kill(ctx, job_id, id_option, recursive):
    """Mark a job USER_KILLED (a running launcher stops it); waiting children become PARENT_KILLED."""
    if job_id and id_option and job_id != id_option:
        raise click.UsageError(f"give the job to kill once: {job_id!r} or --id {id_option!r}")
    ref = job_id or id_option
    if not ref:
        raise click.UsageError("give the id of the job to kill")
    attach(ctx)
    target = api.get_job(ref, by_name=False)
    result = api.kill(target, recursive=recursive)
    if not result["killed"]:
        raise BalsamError(f"job {target.cute_id} is {target.state} and cannot be killed")
    root = "" if str(target.pk) in result["killed"] else f" (descendants of {target.cute_id}, which is {target.state})"
    click.echo(f"Killed {len(result['killed'])} job(s){root}: " + ", ".join(k[:8] for k in result["killed"][:10])
               + (" ..." if len(result["killed"]) > 10 else ""))
    if result["settled"]:
        click.echo(f"{len(result['settled'])} waiting child job(s) marked PARENT_KILLED")


@click.command(name="make_dummies", context_settings={"ignore_unknown_options": True})
@click.argument("count", type=int)
@click.pass_context
def make_dummies(ctx, count):
    """Add COUNT trivial jobs (workflow "dummy") for testing and benchmarks."""
    attach(ctx)
    api.check_dummy_count(count)  # before the progress bar shows
    existing = _dummy_count()
    try:
        if count >= 5 * api.JOBS_PER_REQUEST:
            with click.progressbar(length=count, label="Adding dummy jobs", file=sys.stderr) as bar:
                api.make_dummies(count, progress=bar.update)
        else:
            api.make_dummies(count)
    except KeyboardInterrupt:
        # Counted in the DB: Ctrl-C may land after a batch committed and before its progress call.
        added = _dummy_count() - existing
        raise Interrupted(f"interrupted after adding {added} of {count} dummy jobs (in whole batches of "
                          f"{api.JOBS_PER_REQUEST}; see: balsam ls --wf dummy --by-states)") from None
    click.echo(f"Added {count} dummy jobs to the DB")


def _dummy_count():
    return sum(api.workflow_counts(api.DUMMY_WORKFLOW).get(api.DUMMY_WORKFLOW, {}).values())


@click.command()
@click.argument("kind", type=click.Choice(["jobs", "apps"]))
@click.argument("ref", metavar="ID")
@click.option("--attr", required=True, help="Field to change (e.g. state, args, num_nodes).")
@click.option("--value", required=True, help="New value, parsed by the field's type (False is false).")
@click.pass_context
def modify(ctx, kind, ref, attr, value):
    """Change one field of a job or an application."""
    attach(ctx)
    if kind == "jobs":
        obj, _ = api.modify_job(ref, attr, value)
        click.echo(f"job {obj.cute_id} {attr} changed to: {getattr(obj, attr)}")
    else:
        obj, _ = api.modify_app(ref, attr, value)
        click.echo(f"application {obj.name} {attr} changed to: {getattr(obj, attr)}")


@click.command()
@click.argument("kind", type=click.Choice(["jobs", "apps"]))
@click.option("--name", help="Remove every job (or the application) with exactly this name.")
@click.option("--id", "ref", metavar="ID", help="Remove the job (id prefix) or application (id or name).")
@click.option("--all", "everything", is_flag=True, help="Remove all of them.")
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def rm(ctx, kind, name, ref, everything, force):
    """Permanently remove jobs or applications."""
    chosen = [x for x in (name, ref, everything or None) if x]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --name, --id or --all")
    attach(ctx)
    if kind == "jobs":
        if everything or name:
            ids = api.job_ids(name)
        else:
            ids = [api.get_job(ref, by_name=False).pk]
        if not ids:
            raise NotFound("no jobs match" + (f" the name {name!r}" if name else ""))
        if not confirm(f"PERMANENTLY remove {len(ids)} job(s)?", force):
            click.echo("Nothing removed")
            raise click.exceptions.Exit(1)
        removed = api.remove_jobs(ids)
        click.echo(f"Deleted {removed} job(s)")
        if removed < len(ids):
            click.echo(f"Kept {len(ids) - removed} job(s) a running launcher holds: "
                       "`balsam kill` them first (or they were removed meanwhile)")
    else:
        apps = api.find_apps(name) if everything or name else [api.get_app(ref)]
        if not apps:
            raise NotFound("no applications match" + (f" the name {name!r}" if name else ""))
        for app_obj in apps:
            click.echo(app_block(app_obj))
        if not confirm(f"PERMANENTLY remove {len(apps)} application(s)?", force):
            click.echo("Nothing removed")
            raise click.exceptions.Exit(1)
        removed = api.remove_apps(apps)
        click.echo(f"Deleted {removed} application(s)")


@click.command(context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True})
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("-n", "--nodes", "num_nodes", type=int, default=1, show_default=True, help="Nodes the job needs.")
@click.option("-N", "--ranks-per-node", type=int, default=1, show_default=True, help="MPI ranks per node.")
@click.option("--name", default="job", show_default=True, help="Job name.")
@click.option("-t", "--wall-minutes", "wall_time_minutes", type=float, required=True, help="Run time limit in minutes.")
@click.option("-d", "--threads-per-rank", type=int, default=1, show_default=True, help="Threads per rank.")
@click.option("-j", "--threads-per-core", type=int, default=1, show_default=True, help="Hardware threads per core.")
@click.option("--env", multiple=True, metavar="VAR=VALUE", help="Environment variable for the job (repeatable).")
@click.pass_context
def qsub(ctx, command, env, **fields):
    """Add a job that runs COMMAND as it is, without defining an application first (as in Balsam 0.2).

    Options go before the command; everything from COMMAND on is the command line. The job is in
    workflow "qsub", has no pre- or postprocess and is not retried after a timeout.
    """
    attach(ctx)
    # Every value is checked before the command's application is made.
    job = api.new_job(workflow=api.QSUB_WORKFLOW, environ_vars=api.parse_env(env), auto_timeout_retry=False, **fields)
    api.require_writable("add a job")
    job.application = api.command_app(shlex.join(command)).name
    job.save()
    click.echo(job_block(job))
    click.echo(f"Added job {job.cute_id} to the DB")


COMMANDS = [job, mkchild, dep, kill, make_dummies, modify, qsub, rm]
