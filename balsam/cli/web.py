"""``balsam web``: serve the DB's admin and dashboard; ``adduser`` / ``passwd`` manage logins."""

import click

from balsam.cli.prefixes import PrefixGroup

HOST_HELP = ("Address to listen on (default 127.0.0.1: this machine only; reach it through an SSH tunnel). "
             "0.0.0.0 listens on every address; a login is still required.")


def _db(ctx):
    """The DB chosen by ``web --path`` or else by ``balsam --db`` and the usual order; attached with the admin apps."""
    from balsam.web import server

    web_ctx = ctx.find_object(_WebOptions)
    root = ctx.find_root()
    cli_path = (web_ctx.path if web_ctx else None) or (root.obj.get("db_path") if root.obj else None)
    return server.attach(cli_path)


class _WebOptions:
    def __init__(self, path):
        self.path = path


def _password(password_file, name):
    if password_file is not None:
        from balsam.web.accounts import read_password_file

        return read_password_file(password_file)
    return click.prompt(f"Password for {name}", hide_input=True, confirmation_prompt=True)


@click.group(cls=PrefixGroup, invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help=HOST_HELP)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port (0: any free port, printed at start).")
@click.option("--path", metavar="DIR", help="Balsam DB directory (the same as balsam --db DIR).")
@click.pass_context
def web(ctx, host, port, path):
    """Serve this DB's Django admin and live dashboard (stop with Ctrl-C or SIGTERM)."""
    ctx.obj = _WebOptions(path)
    if ctx.invoked_subcommand is not None:
        return
    db_path = _db(ctx)
    from balsam.web.server import WebServer

    server = WebServer(db_path, host=host, port=port)
    stopped_by = server.run(announce=click.echo)
    click.echo(f"balsam web stopped ({stopped_by})")


_password_file_option = click.option(
    "--password-file", type=click.Path(dir_okay=True), metavar="FILE",
    help="Read the password from the first line of FILE instead of asking.")


@web.command()
@click.argument("name")
@_password_file_option
@click.pass_context
def adduser(ctx, name, password_file):
    """Add a login NAME for this DB's web pages (asks for the password twice)."""
    _db(ctx)
    from balsam.web import accounts

    accounts.check_new_user(name)  # before asking for a password
    added = accounts.add_user(name, _password(password_file, name))
    click.echo(f"Added login {added!r}; start the pages with: balsam web")


@web.command()
@click.argument("name")
@_password_file_option
@click.pass_context
def passwd(ctx, name, password_file):
    """Change the password of login NAME."""
    _db(ctx)
    from balsam.web import accounts

    accounts.require_user(name)  # before asking for a password
    changed = accounts.set_password(name, _password(password_file, name))
    click.echo(f"Changed the password of {changed!r}")


COMMANDS = [web]
