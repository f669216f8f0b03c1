"""``balsam init`` and ``balsam which``."""

import shlex

import click

from balsam.cli.common import attach


@click.command()
@click.argument("path", type=click.Path(file_okay=True, dir_okay=True))
@click.option(
    "--db-type",
    type=click.Choice(["sqlite3"]),
    default="sqlite3",
    show_default=True,
    help="Database backend (the embedded SQLite file).",
)
def init(path, db_type):
    """Create a Balsam DB directory at PATH, or refresh the schema of an existing one (keeps all data)."""
    from balsam.dbdir import init_db

    db_path, created = init_db(path, db_type)
    if created:
        click.echo(f"Created Balsam DB at {db_path}")
    else:
        click.echo(f"Balsam DB at {db_path} is up to date (schema refreshed, data kept)")
    click.echo(f"Use it with: export BALSAM_DB_PATH={shlex.quote(str(db_path))}")


WHICH_CHECK_SEC = 0.2  # `which` is a quick look: a large DB is checked in part, at a bounded cost


@click.command()
@click.pass_context
def which(ctx):
    """Show the active Balsam DB: path, what selected it, backend, write mode and job counts."""
    from balsam import api
    from balsam.config import SQLITE_NAME
    from balsam.core import states

    selection = attach(ctx)
    integrity = api.integrity(WHICH_CHECK_SEC)
    counts = api.state_counts()
    total = sum(counts.values())
    summary = ", ".join(f"{counts[s]} {s}" for s in states.ALL_STATES if counts.get(s))
    click.echo(f"Balsam DB:   {selection.path}  (selected by {selection.source})")
    click.echo(f"Backend:     sqlite3  ({selection.path / SQLITE_NAME})")
    click.echo(f"Integrity:   {integrity}")
    click.echo(f"Write mode:  {api.write_path_description()}")
    click.echo(f"Jobs:        {total}" + (f"  ({summary})" if summary else ""))


COMMANDS = [init, which]
