"""``balsam log``: print, and follow, the logs in ``<DB>/log/``.

File work only: no Django and no write to the DB directory, so it starts at
once and a user who may only read the DB can run it.
"""

import os
import sys

import click

from balsam import logs, logtail
from balsam.cli.common import db_dir
from balsam.exceptions import BalsamError


class LineCount(click.ParamType):
    """A number of lines (0 or more), or ``all``: returned as an int or ``None``."""

    name = "N|all"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text == "all":
            return None
        if not (text.isascii() and text.isdigit()):
            self.fail(f"must be a whole number of lines (0 or more) or 'all', not {_shorten(value)!r}", param, ctx)
        return int(text)


def _shorten(text, width=40):
    text = str(text)
    return text if len(text) <= width else text[: width - 3] + "..."


@click.command(name="log")
@click.option("-f", "--follow", is_flag=True,
              help="Keep printing what is written (through rotations); by default, move to a launcher started "
                   "later. Stop with Ctrl-C.")
@click.option("-n", "--lines", type=LineCount(), default="50", show_default=True, metavar="N|all",
              help="Print the last N lines first (0: none; all: the whole current file).")
@click.option("--launcher", "launcher_id", metavar="ID",
              help="The log of this launcher: its host, pid or host-pid (a part of one is enough if it names one log).")
@click.option("--service", is_flag=True, help="The service's log (service.log).")
@click.option("--dbserver", is_flag=True, help="The dbserver's log (dbserver.log).")
@click.option("--watchdog", is_flag=True, help="The dbserver watchdog's log: server starts, restarts, stops (watchdog.log).")
@click.option("--cli", "cli_log", is_flag=True, help="The CLI's log: tracebacks of unexpected errors (cli.log).")
@click.pass_context
def log(ctx, follow, lines, launcher_id, service, dbserver, watchdog, cli_log):
    """Print the newest launcher's log (or another log in <DB>/log/) and, with -f, follow it."""
    chosen = {"launcher": launcher_id is not None, "service": service, "dbserver": dbserver,
              "watchdog": watchdog, "cli": cli_log}
    given = [f"--{name}" for name, on in chosen.items() if on]
    if len(given) > 1:
        raise click.UsageError(f"give at most one of --launcher, --{', --'.join(logs.KINDS)}, not {' and '.join(given)}")
    if launcher_id is not None and not launcher_id.strip():
        raise click.UsageError("--launcher needs a host, a pid or host-pid (leave it out for the newest launcher)")
    kind = next((name for name in logs.KINDS if chosen[name]), None)
    db_path = db_dir(ctx)
    path = logs.find_log(db_path, kind=kind, launcher=launcher_id.strip() if launcher_id else None)
    # Only the default follows a newer launcher: a log asked for by name is followed as asked.
    newer = logs.newer_launcher_watch(db_path) if follow and not given else None
    follower = logtail.Follower(path, _write, _notice, newer=newer)
    try:
        follower.open()
        click.echo(f"==> {path} <==", err=True)
        try:
            follower.show(lines)
            if follow:
                follower.follow()
        except KeyboardInterrupt:
            if not follow:
                raise  # a plain print interrupted: exit 130 like any command
            # Ctrl-C is how following ends, not an error (as for the launcher and the service): exit 0
    except BrokenPipeError:
        _quiet_stdout()  # the reader went away (| head): nothing more to say
    except OSError as exc:
        raise BalsamError(f"cannot read {exc.filename or follower.path}: {exc.strerror or exc}") from None
    finally:
        follower.close()


def _write(data):
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _notice(text):
    click.echo(f"==> {text} <==", err=True)


def _quiet_stdout():
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


COMMANDS = [log]
