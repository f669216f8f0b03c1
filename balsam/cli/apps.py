"""``balsam app``: register an application."""

import click

from balsam import api
from balsam.cli.common import attach
from balsam.cli.show import app_block


@click.command()
@click.option("--name", required=True, help="Unique application name; jobs refer to it.")
@click.option("--executable", required=True, help="Command line to run (a .py script runs with this Python).")
@click.option("--description", default="", help="What the application does.")
@click.option("--preprocess", default="", help="Script run in the job directory before the application.")
@click.option("--postprocess", default="", help="Script run in the job directory after the application.")
@click.option("--env", "env", multiple=True, metavar="VAR=VAL", help="Environment variable for every job (repeatable).")
@click.pass_context
def app(ctx, name, executable, description, preprocess, postprocess, env):
    """Add an application definition to the DB."""
    attach(ctx)
    environ = api.parse_env(env)
    created = api.add_app(name, executable, description, preprocess, postprocess, environ)
    click.echo(app_block(created))
    click.echo("Added app to the DB")


COMMANDS = [app]
