"""``balsam launcher``: run jobs from the DB inside this allocation."""

import os
import socket
import sys

import click

from balsam.cli.common import attach, check_range


@click.command()
@click.option("--consume-all", "consume_all", is_flag=True, help="Run every job in the DB.")
@click.option("--wf-filter", metavar="NAME", help="Run only the jobs of this workflow.")
@click.option("--job-file", type=click.Path(exists=True, dir_okay=False), help="Run only the job ids listed in FILE.")
@click.option("--job-mode", type=click.Choice(["serial", "mpi"]), default="serial", show_default=True,
              help="serial: pack single-rank jobs onto nodes; mpi: one MPI launch per job on whole nodes.")
@click.option("--num-workers", type=int, default=0, show_default=True, help="Use at most this many workers (0: all nodes).")
@click.option("--nodes-per-worker", type=int, default=1, show_default=True, help="Nodes per worker.")
@click.option("--max-ranks-per-node", type=int, default=0, help="Serial jobs run at once per node (default: its cores).")
@click.option("--time-limit-minutes", type=float, default=0, help="Stop after this many minutes (0: no limit).")
@click.option("--num-transition-processes", type=int, default=4, show_default=True,
              help="Pre/postprocess scripts and transfers run at once.")
@click.option("--until-idle", is_flag=True, help="Exit once nothing in scope is left to run or process.")
@click.option("--lease-expiry-sec", type=float, default=None,
              help="Seconds without a heartbeat before another launcher may take this one's jobs "
                   "(default: launcher_lease_expiry_sec in user_settings.py).")
@click.pass_context
def launcher(ctx, consume_all, wf_filter, job_file, job_mode, num_workers, nodes_per_worker, max_ranks_per_node,
             time_limit_minutes, num_transition_processes, until_idle, lease_expiry_sec):
    """Run jobs in this allocation (or on this machine) until stopped, out of time, or idle."""
    chosen = [x for x in (consume_all or None, wf_filter, job_file) if x]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --consume-all, --wf-filter NAME or --job-file FILE")
    check_range("--num-workers", num_workers, 0, 10**6)
    check_range("--nodes-per-worker", nodes_per_worker, 1, 10**6)
    check_range("--max-ranks-per-node", max_ranks_per_node, 0, 10**5)
    check_range("--time-limit-minutes", time_limit_minutes, 0, 10**7)
    check_range("--num-transition-processes", num_transition_processes, 1, 10**4)
    check_range("--lease-expiry-sec", lease_expiry_sec, 0, 10**6)  # 0: the default
    selection = attach(ctx)

    from balsam import api, logs
    from balsam.config import load_settings
    from balsam.launcher.launcher import install_signal_handlers, make_launcher
    from balsam.launcher.nodes import detect_nodes
    from balsam.launcher.progress import Progress

    if wf_filter and not api.workflow_counts(wf_filter):
        known = ", ".join(sorted(name or "(none)" for name in api.workflow_counts())[:10]) or "none"
        click.echo(f"Note: no job is in workflow {wf_filter!r} yet (workflows: {known}); "
                   f"this launcher runs its jobs once they are added", err=True)
    job_ids = None
    if job_file:
        with open(job_file) as f:
            job_ids = list(dict.fromkeys(str(api.job_uuid(token)) for token in f.read().split()))
    nodes = detect_nodes()
    if num_workers:
        nodes = nodes[: num_workers * nodes_per_worker]
    settings = load_settings()
    logs.configure(selection.path, logs.launcher_log_name(socket.gethostname(), os.getpid()))
    progress = Progress(sys.stderr, sys.stderr.isatty(), summary_stream=sys.stdout)
    # Inside a launch the service submitted: run only the jobs tied to it.
    launch_id = os.environ.get("BALSAM_QUEUED_LAUNCH_ID")
    runner = make_launcher(
        selection.path, nodes, job_mode=job_mode, workflow=wf_filter, job_ids=job_ids,
        queued_launch=int(launch_id) if launch_id else None,
        max_ranks_per_node=max_ranks_per_node or None, time_limit_minutes=time_limit_minutes,
        num_transition_processes=num_transition_processes, until_idle=until_idle,
        lease_expiry_sec=lease_expiry_sec or settings.launcher_lease_expiry_sec,
        script_timeout_sec=settings.launcher_script_timeout_sec, progress=progress,
        max_timeout_retries=settings.launcher_max_timeout_retries,
    )
    install_signal_handlers(runner)
    runner.run()


COMMANDS = [launcher]
