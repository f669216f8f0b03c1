"""``balsam doctor``: why nothing (or that job) is running."""

import json

import click

from balsam.cli.common import attach


@click.command()
@click.option("--wf", metavar="NAME", help="Look only at this workflow's jobs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@click.argument("ref", metavar="[JOB]", required=False)
@click.pass_context
def doctor(ctx, wf, as_json, ref):
    """Say in plain words why nothing (or job JOB) is running, and the command that would fix each cause."""
    from balsam import api
    from balsam.config import load_settings

    selection = attach(ctx, current_schema=False)
    from balsam import doctor as diagnosis  # Django models: only once attached

    job = api.get_job(ref) if ref else None
    findings = diagnosis.diagnose(selection.path, load_settings().launcher_lease_expiry_sec, wf, job)
    if as_json:
        click.echo(json.dumps([f.as_dict() for f in findings], indent=2))
        return
    if not findings:
        click.echo("Nothing found that stops jobs from running: they are unfinished and something is working on them "
                   "(see: balsam ls --by-states, balsam log)")
        return
    for finding in findings:
        click.echo(f"- {finding.cause}")
        click.echo(f"    fix: {finding.fix}")


COMMANDS = [doctor]
