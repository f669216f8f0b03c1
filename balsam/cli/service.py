"""``balsam submit-launch``, ``balsam cancel-launch`` and ``balsam service``."""

import signal

import click

from balsam.cli.common import attach, check_range


@click.command(name="submit-launch")
@click.option("-n", "--nodes", type=int, required=True, help="Nodes to request.")
@click.option("-t", "--wall-minutes", type=float, required=True, help="Wall time to request (minutes).")
@click.option("-q", "--queue", required=True, help="Queue (Slurm partition) to submit to.")
@click.option("-A", "--project", default="", help="Project (account) to charge.")
@click.option("--job-mode", type=click.Choice(["serial", "mpi"]), default="serial", show_default=True,
              help="The launcher's job mode.")
@click.option("--wf-filter", default="", metavar="NAME", help="Only run jobs of this workflow.")
@click.pass_context
def submit_launch(ctx, nodes, wall_minutes, queue, project, job_mode, wf_filter):
    """Submit one launcher allocation now (renders qsubmit/qlaunchN.sh from the template)."""
    selection = attach(ctx)
    from balsam import api
    from balsam.service.launches import submit_launch as submit
    from balsam.service.policy import load_policy

    policy = load_policy(selection.path)
    launch = submit(selection.path, policy, queue, nodes, wall_minutes, job_mode, project, wf_filter)
    click.echo(f"Submitted launch {launch.pk} to {policy.scheduler} as {launch.scheduler_id} "
               f"({nodes} node(s), {wall_minutes:g} min, {job_mode}; {api.tied_job_count(launch.pk)} job(s) tied); "
               f"script {launch.script_path}")


@click.command(name="cancel-launch")
@click.argument("launch_id", type=int)
@click.pass_context
def cancel_launch(ctx, launch_id):
    """Cancel a queued or running launch; its unfinished jobs become free to run again."""
    attach(ctx)
    from balsam.service.launches import cancel_launch as cancel

    launch, freed = cancel(launch_id)
    click.echo(f"Cancelled launch {launch.pk} ({launch.scheduler} {launch.scheduler_id}); {freed} job(s) freed")


@click.command()
@click.option("--queue", "-q", help="Only submit to this queue (default: every queue with submit on).")
@click.option("--project", "-A", default="", help="Project (account) to charge.")
@click.option("--period-sec", type=float, default=10.0, show_default=True, help="Seconds between passes.")
@click.option("--until-idle", is_flag=True, help="Exit once no job is left unfinished and no launch is active.")
@click.pass_context
def service(ctx, queue, project, period_sec, until_idle):
    """Keep launches submitted for the DB's runnable jobs (the metascheduler)."""
    check_range("--period-sec", period_sec, 0.01, 10**6)
    selection = attach(ctx)
    from balsam import logs
    from balsam.service.policy import load_policy
    from balsam.service.schedulers import get_scheduler
    from balsam.service.service import Service

    logs.configure(selection.path, "service")
    policy = load_policy(selection.path)
    get_scheduler(policy.scheduler)
    runner = Service(selection.path, policy, queue=queue, project=project, period_sec=period_sec,
                     until_idle=until_idle)
    if not runner.queues():
        raise click.UsageError(f"no queue to submit to: add queues to {policy.path}")

    def stop(signum, frame):
        runner.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(f"balsam service: scheduler {policy.scheduler}, queues {', '.join(q.name for q in runner.queues())}")
    runner.run()
    click.echo("balsam service stopped")


COMMANDS = [submit_launch, cancel_launch, service]
