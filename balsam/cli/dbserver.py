"""``balsam dbserver``: start, stop, inspect or reset a DB's write server."""

import datetime

import click

from balsam import config
from balsam.cli.common import db_dir


def _db_path(ctx, path):
    if path:
        return config.require_db(config.DBSelection(config.absolute_path(path), "--path"))
    return db_dir(ctx)


@click.command()
@click.option("--path", metavar="DIR", help="Balsam DB directory (default: the active DB).")
@click.option("--host", help="Host name or IP to listen on (default: this machine's hostname, so compute nodes can reach it).")
@click.option("--stop", is_flag=True, help="Stop this DB's server and clear its address.")
@click.option("--status", is_flag=True, help="Show pid, address, uptime, requests, commits, mean batch size and restarts.")
@click.option("--reset", is_flag=True, help="Clear a stale address left after a crash.")
@click.option("--add-user", metavar="NAME", help="Authorize a collaborator (owner only); prints their one-time login token.")
@click.option("--remove-user", metavar="NAME", help="Revoke a collaborator's key (and PostgreSQL role; owner only); refused from their next request on.")
@click.option("--list-users", is_flag=True, help="List the authorized collaborators (owner only).")
@click.option("--no-group-commit", is_flag=True, hidden=True, help="Commit each request alone (for benchmarks).")
@click.pass_context
def dbserver(ctx, path, host, stop, status, reset, add_user, remove_user, list_users, no_group_commit):
    """Start the write server of a Balsam DB (a detached watchdog keeps it running)."""
    from balsam.dbserver import control

    actions = [name for name, chosen in (("stop", stop), ("status", status), ("reset", reset), ("add-user", add_user),
                                         ("remove-user", remove_user), ("list-users", list_users)) if chosen]
    if len(actions) > 1:
        raise click.UsageError(f"give one of --stop, --status, --reset, --add-user, --remove-user or --list-users, "
                               f"not --{' and --'.join(actions)}")
    action = actions[0] if actions else None
    if host is not None and not host.strip():
        raise click.UsageError("--host must name a host or an IP address (leave it out for this machine's hostname)")
    if host and action:
        raise click.UsageError(f"--host only applies when starting a server, not with --{action}")
    db_path = _db_path(ctx, path)
    if action in ("add-user", "remove-user", "list-users"):
        _users(db_path, action, add_user or remove_user)
    elif action == "stop":
        click.echo(control.stop(db_path))
    elif action == "reset":
        click.echo(control.reset(db_path))
    elif action == "status":
        figures = control.status(db_path)
        started = datetime.datetime.fromtimestamp(figures["started"], datetime.timezone.utc)
        rows = _postgres_rows(figures, started) if figures.get("db_type") == "postgres" else [
            ("address", figures["address"]),
            ("local socket", figures["local_address"] or "none (clients on this host use TCP)"),
            ("server pid", f"{figures['pid']} on {figures['host']}"),
            ("watchdog pid", figures["watchdog_pid"]),
            ("uptime", f"{figures['uptime_sec']:.0f} s (since {started:%Y-%m-%d %H:%M:%S} UTC)"),
            ("requests served", figures["requests"]),
            ("commits", figures["commits"]),
            ("mean batch size", f"{figures['mean_batch']:.1f} requests per commit"),
            ("errors returned", figures["errors"]),
            ("restarts", figures["restarts"]),
        ]
        for label, value in rows:
            click.echo(f"{label:>16}: {value}")
    else:
        info = control.start(db_path, host, group_commit=not no_group_commit)
        click.echo(
            f"dbserver for {db_path} serving at {info['address']} "
            f"(server pid {info['server_pid']}, watchdog pid {info['watchdog_pid']})"
        )


def _users(db_path, action, name):
    from balsam import sharing

    if action == "add-user":
        token = sharing.add_user(db_path, name)
        click.echo(f"Authorized {name} for {db_path}. Give them this one-time token privately (it is their key; "
                   "it is not stored here):", err=True)
        click.echo(token)
        click.echo(f"They run: balsam login {db_path} TOKEN", err=True)
    elif action == "remove-user":
        sharing.remove_user(db_path, name)
        click.echo(f"Removed {name}: {db_path} refuses them from now on (their key, and on PostgreSQL their role "
                   "and open sessions)")
    else:
        users = sharing.list_users(db_path)
        for user, added in users:
            click.echo(f"{user}  (added {added})")
        if not users:
            click.echo(f"no collaborators are authorized for {db_path}")


def _postgres_rows(figures, started):
    return [
        ("address", figures["address"]),
        ("server", f"PostgreSQL {figures['version']}, pid {figures['pid']} on {figures['host']}"),
        ("watchdog pid", figures["watchdog_pid"]),
        ("uptime", f"{figures['uptime_sec']:.0f} s (since {started:%Y-%m-%d %H:%M:%S} UTC)"),
        ("connections", f"{figures['connections']} of at most {figures['max_connections']}"),
        ("DB size", f"{figures['db_bytes'] / 2**20:.1f} MiB"),
        ("restarts", figures["restarts"]),
    ]


COMMANDS = [dbserver]
