"""``balsam``: the command-line interface (thin: parse, call ``balsam.api``, format)."""

import logging
import os
import sys

import click

from balsam.cli.prefixes import PrefixGroup
from balsam.config import SQLITE_NAME
from balsam.exceptions import BalsamError, DBDamaged

logger = logging.getLogger("balsam.cli")


class BalsamGroup(PrefixGroup):
    """Turns every error into one line on stderr and a non-zero exit; long
    options may be abbreviated to any unique prefix, as in Balsam 0.2.

    Tracebacks only with ``BALSAM_TRACEBACK=1``. Both the console script and
    click's test runner go through ``main`` here.
    """

    def main(self, args=None, prog_name=None, **extra):
        extra.pop("standalone_mode", None)
        try:
            result = super().main(args=args, prog_name=prog_name or "balsam", standalone_mode=False, **extra)
        except click.exceptions.Abort as exc:
            # click turns Ctrl-C into Abort (and a closed stdin at a prompt too).
            if isinstance(exc.__context__, KeyboardInterrupt):
                _fail("interrupted", 130)
            _fail("aborted", 1)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            hint = f" (see: {exc.ctx.command_path} --help)" if getattr(exc, "ctx", None) else ""
            _fail(_one_line(exc.format_message()) + hint, exc.exit_code)
        except BalsamError as exc:
            if os.environ.get("BALSAM_TRACEBACK") == "1":
                raise
            _fail(_one_line(str(exc)), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as exc:
            if os.environ.get("BALSAM_TRACEBACK") == "1":
                raise
            if DBDamaged.seen_in(exc):
                db_file = os.path.join(os.environ.get("BALSAM_DB_PATH", "."), SQLITE_NAME)
                _fail(_one_line(str(DBDamaged.of(db_file, _one_line(str(exc))))), 1)
            logger.exception("unexpected error")
            _fail(f"unexpected {type(exc).__name__}: {_one_line(str(exc))} (rerun with BALSAM_TRACEBACK=1 for details)", 1)
        sys.exit(result if isinstance(result, int) else 0)


def _one_line(text):
    return " ".join(str(text).split())


def _fail(message, code):
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


@click.group(name="balsam", cls=BalsamGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--db",
    "db_path",
    metavar="PATH",
    help="Balsam DB directory to use (default: $BALSAM_DB_PATH, then default_db_path in "
    "user_settings.py, then the repository's default_balsamdb/).",
)
@click.version_option(package_name="balsam", prog_name="balsam")
@click.pass_context
def cli(ctx, db_path):
    """Balsam: run many jobs, with dependencies, inside HPC batch allocations."""
    ctx.obj = {"db_path": db_path}


def _register():
    from balsam.cli import apps, db, dbserver, doctor, jobs, launcher, log, ls, report, service, sharing, web

    for module in (db, dbserver, sharing, apps, jobs, ls, report, launcher, service, log, doctor, web):
        for command in module.COMMANDS:
            cli.add_command(command)
    cli.add_command(jobs.kill, name="killjob")


_register()


def main():
    cli.main()


if __name__ == "__main__":
    main()
