"""``balsam share`` (the owner gives a UNIX group access to a DB) and
``balsam login`` (a collaborator saves the key the owner's ``--add-user`` made).
Adding and removing users are options of ``balsam dbserver``."""

import click

from balsam import config


def _existing_db(path):
    return config.require_db(config.DBSelection(config.absolute_path(path), "PATH"))


@click.command()
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--group", required=True, metavar="GROUP", help="The UNIX group to share the DB with.")
def share(path, group):
    """Share the DB at PATH with a UNIX group (owner only): group ownership, setgid
    directories, group-writable data/ and log/, the DB file group-readable, and
    the DB's umask set to 0007. Collaborators then need a key: balsam dbserver --add-user NAME."""
    from balsam import sharing

    db_path = _existing_db(path)
    changed = sharing.share(db_path, group)
    click.echo(f"Shared {db_path} with group {group} ({changed} entries changed; umask 0007 for its processes)")
    click.echo(f"Authorize each collaborator with: balsam dbserver --path {db_path} --add-user NAME")


@click.command()
@click.argument("path", type=click.Path(file_okay=False))
@click.argument("token")
def login(path, token):
    """Save your key for the shared DB at PATH from the TOKEN its owner gave you
    (stored mode 600 under ~/.balsam/logins/)."""
    from balsam import sharing

    db_path = _existing_db(path)
    saved = sharing.login(db_path, token)
    click.echo(f"Saved your key for {db_path} in {saved}; your writes now go through its dbserver")


COMMANDS = [share, login]
