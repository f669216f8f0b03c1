"""``balsam init``, ``balsam which`` and ``balsam db ...`` (looking after a DB)."""

import json
import shlex

import click

from balsam.cli.common import attach
from balsam.cli.prefixes import PrefixGroup


@click.command()
@click.argument("path", type=click.Path(file_okay=True, dir_okay=True))
@click.option(
    "--db-type",
    type=click.Choice(["sqlite3", "postgres"]),
    default=None,
    help="Database backend: sqlite3 (the embedded SQLite file; the default for a new DB) or postgres "
    "(a PostgreSQL cluster in balsamdb/, served by `balsam dbserver`). An existing DB keeps its type.",
)
@click.option("--group", metavar="GROUP", help="Share the DB with this UNIX group (as balsam share does).")
def init(path, db_type, group):
    """Create a Balsam DB directory at PATH, or refresh the schema of an existing one (keeps all data)."""
    from balsam.dbdir import init_db

    def backed_up(copy, size):
        click.echo(f"Backed up the DB before migrating it: {copy}  ({_size(size)})")

    def migrating(names):
        click.echo(f"Updating the schema ({len(names)} update(s): {', '.join(n.partition('.')[2] for n in names)}); "
                   "on a DB of millions of jobs this can take minutes")

    db_path, created = init_db(path, db_type, on_backup=backed_up, on_migrate=migrating)
    if created:
        click.echo(f"Created Balsam DB at {db_path}")
    else:
        click.echo(f"Balsam DB at {db_path} is up to date (schema refreshed, data kept)")
    if group:
        from balsam import sharing

        sharing.share(db_path, group)
        click.echo(f"Shared with group {group}; authorize collaborators with: balsam dbserver --path {db_path} --add-user NAME")
    click.echo(f"Use it with: export BALSAM_DB_PATH={shlex.quote(str(db_path))}")


def _backend(path, sqlite_name):
    from balsam.postgres.cluster import is_postgres_dir, pg_dir
    from balsam.wire.serverinfo import ServerInfo

    if not is_postgres_dir(path):
        return f"sqlite3  ({path / sqlite_name})"
    address = ServerInfo(path).read().get("address")
    return f"postgres  ({pg_dir(path)}; server {address or 'not running'})"


WHICH_CHECK_SEC = 0.2  # `which` is a quick look: a large DB is checked in part, at a bounded cost


@click.command()
@click.option("--list", "list_used", is_flag=True, help="List the DBs you have used (the active one marked *).")
@click.option("--activate", metavar="NAME", hidden=True, help="For balsamactivate: shell assignments for PATH-or-NAME.")
@click.pass_context
def which(ctx, list_used, activate):
    """Show the active Balsam DB: path, what selected it, backend, write mode and job counts."""
    if activate is not None:
        from balsam.activation import shell_lines

        click.echo(shell_lines(activate))
        return
    if list_used:
        _list_used(ctx)
        return
    from balsam import api
    from balsam.config import SQLITE_NAME
    from balsam.core import states

    selection = attach(ctx, current_schema=False)
    integrity = api.integrity(WHICH_CHECK_SEC)
    counts = api.state_counts()
    total = sum(counts.values())
    summary = ", ".join(f"{counts[s]} {s}" for s in states.ALL_STATES if counts.get(s))
    click.echo(f"Balsam DB:   {selection.path}  (selected by {selection.source})")
    click.echo(f"Backend:     {_backend(selection.path, SQLITE_NAME)}")
    click.echo(f"Integrity:   {integrity}")
    click.echo(f"Write mode:  {api.write_path_description()}")
    click.echo(f"Jobs:        {total}" + (f"  ({summary})" if summary else ""))


def _list_used(ctx):
    from balsam import config, used_dbs
    from balsam.exceptions import BalsamError

    root = ctx.find_root()
    try:
        active = str(config.select_db(root.obj.get("db_path") if root.obj else None).path)
    except BalsamError:  # listing must work whatever is (mis)selected
        active = None
    paths = used_dbs.used()
    for path in reversed(paths):
        mark = "*" if path == active else " "
        click.echo(f"{mark} {path}" + ("" if config.is_balsam_db(path) else "  (no longer a Balsam DB)"))
    if not paths:
        click.echo("no DBs used yet")


@click.group(cls=PrefixGroup)
def db():
    """Look after the DB: stats, check (and repair), backup, restore."""


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024


@db.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@click.pass_context
def stats(ctx, as_json):
    """What the DB holds and how big it is: jobs by state and workflow, events, files, pages, recent activity."""
    selection = attach(ctx)
    from balsam.maintenance.stats import db_stats  # Django models: only once attached

    found = db_stats(selection.path)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    pages = found["pages"]
    lines = [
        f"DB:            {found['db_file']}",
        f"File:          {_size(found['db_bytes'])}  (WAL {_size(found['wal_bytes'])})",
    ]
    if pages:
        lines.append(f"Pages:         {pages['used_pages']:,} in use of {pages['pages']:,} ({pages['used_percent']}%), "
                     f"{pages['free_pages']:,} free ({_size(pages['free_bytes'])} reclaimable), "
                     f"{pages['page_size']:,} B each")
    lines += [
        f"Jobs:          {found['jobs']:,}" + (f"  (oldest {found['oldest_job']}, newest {found['newest_job']})"
                                                 if found["jobs"] else ""),
        f"Events:        {found['events']:,}  ({found['state_changes_last_hour']:,} in the last hour)",
        f"Dependencies:  {found['dependencies']:,}",
        f"Applications:  {found['applications']:,}",
        f"Launches:      {found['launches']:,}",
        f"Applied ids:   {found['applied_requests']:,}",
    ]
    if found["jobs_by_state"]:
        width = max(len(s) for s in found["jobs_by_state"])
        lines += ["", "Jobs by state:"] + [f"  {s.ljust(width)}  {n:>12,}" for s, n in found["jobs_by_state"].items()]
    if found["jobs_by_workflow"]:
        width = max(len(w or "(none)") for w in found["jobs_by_workflow"])
        lines += ["", "Jobs by workflow:"]
        for wf, item in found["jobs_by_workflow"].items():
            summary = ", ".join(f"{n:,} {s}" for s, n in item["by_state"].items())
            lines.append(f"  {(wf or '(none)').ljust(width)}  {item['jobs']:>12,}  ({summary})")
    click.echo("\n".join(lines))


@db.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@click.option("--full", is_flag=True, help="SQLite's integrity_check and foreign_key_check (every index against "
              "its table; slower) instead of its quick_check; PostgreSQL: every row checked to be in each index.")
@click.option("--repair", is_flag=True, help="Fix what is safe to fix (lapsed leases, children of dead parents, "
              "old applied-request ids) through the write path; never touches files.")
@click.pass_context
def check(ctx, as_json, full, repair):
    """Check the DB: SQLite's integrity and foreign keys (PostgreSQL: its indexes against their tables),
    then Balsam's invariants. Exit 0 when healthy, 1 with one line per problem otherwise."""
    from balsam import api
    from balsam.config import load_settings

    selection = attach(ctx)
    from balsam.maintenance import check as checks  # Django models: only once attached

    lease_expiry = load_settings().launcher_lease_expiry_sec
    report = checks.check(selection.path, lease_expiry, full)
    repaired, after = [], report
    if repair and any(p.repairable for p in report.problems):
        api.require_writable("repair it")
        repaired = checks.repair(report, lease_expiry)
        after = checks.check(selection.path, lease_expiry, full)
    if as_json:
        result = report.as_dict()
        if repair:
            result.update(repaired=repaired, after_repair=after.as_dict())
        click.echo(json.dumps(result, indent=2))
    else:
        for problem in report.problems:
            click.echo(problem.line())
        for line in repaired:
            click.echo(f"repaired: {line}")
        if repaired:
            for problem in after.problems:
                click.echo(f"left: {problem.line()}")
        for note in report.notes:
            click.echo(f"note: {note}", err=True)
    ctx.exit(0 if after.healthy else 1)


@db.command()
@click.option("--to", "target", type=click.Path(dir_okay=False), metavar="FILE",
              help="Where to write the copy (default: backups/<UTC time>.sqlite3 in the DB directory; "
              "a PostgreSQL DB: a pg_dump, backups/<UTC time>.pgdump).")
@click.pass_context
def backup(ctx, target):
    """Copy the DB while it is in use (writers keep going), verify the copy and print its path and size."""
    selection = attach(ctx, current_schema=False)
    from balsam.maintenance import backup as backups  # Django models: only once attached

    path, size = backups.backup(selection.path, target)
    click.echo(f"Backed up to {path}  ({_size(size)}, integrity ok)")


@db.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_context
def restore(ctx, file):
    """Put the backup FILE in place of the DB; refused while a dbserver, service or launcher is active
    (PostgreSQL: while anyone else is connected). The current DB is kept as db.sqlite3.before-restore-<UTC time>
    (PostgreSQL: backups/before-restore-<UTC time>.pgdump)."""
    from balsam import api

    selection = attach(ctx, current_schema=False)
    api.require_writable("restore it")
    from balsam.maintenance import backup as backups  # Django models: only once attached

    kept = backups.restore(selection.path, file)
    click.echo(f"Restored {selection.path} from {file}")
    click.echo(f"The previous DB is kept as {kept}")


@db.command()
@click.option("--events-older-than", "age", metavar="AGE",
              help="Remove events older than AGE (e.g. 30d, 12h, 2w) of jobs in an end state, keeping each job's newest.")
@click.option("--finished-workflows", is_flag=True,
              help="Remove every workflow whose jobs have all ended, with their rows (their files stay).")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; change nothing.")
@click.pass_context
def compact(ctx, age, finished_workflows, dry_run):
    """Prune what you choose (and applied-request ids past retention), then shrink the file; prints the gain."""
    from balsam import api

    selection = attach(ctx)
    from balsam.maintenance import compact as compaction  # Django models: only once attached

    older = compaction.parse_age(age) if age is not None else None
    if not dry_run:
        api.require_writable("compact it")
    done = compaction.compact(selection.path, older, finished_workflows, dry_run)
    workflows = done["workflows"]
    wf_jobs = sum(workflows.values())
    if dry_run:
        click.echo("Would remove: " + ", ".join([
            f"{done['events']:,} events" + (f" older than {done['before']:%Y-%m-%d %H:%M} UTC" if done["before"] else ""),
            f"{len(workflows)} finished workflow(s) ({wf_jobs:,} jobs)",
            f"{done['applied_requests']:,} applied-request ids"]))
        for name, jobs in sorted(workflows.items()):
            click.echo(f"  workflow {name or '(none)'}: {jobs:,} jobs")
        click.echo(f"DB now {done['size_before']:,} bytes (nothing changed: --dry-run)")
        return
    removed = done["removed"]
    click.echo(f"Removed: {removed['events']:,} events, {removed['jobs']:,} jobs of {len(workflows)} finished "
               f"workflow(s), {removed['applied_requests']:,} applied-request ids")
    if done["shrunk_by"] == "steps":
        click.echo(f"Gave back {done['reclaimed_pages']:,} free page(s) in {done['steps']:,} step(s) while the DB "
                   "is in use (incremental vacuum)")
    elif done["shrunk_by"] == "plain-vacuum":
        click.echo("PostgreSQL VACUUM while the DB is in use by " + "; ".join(done["not_vacuumed"])
                   + ": the freed space is reused by new rows; run compact when nobody is connected for "
                   "VACUUM FULL, which gives it back to the file system")
    elif done.get("not_vacuumed"):
        click.echo("Not shrunk: the DB is in use by " + "; ".join(done["not_vacuumed"])
                   + ", and it was made before Balsam shrank DBs in use: run compact once when it is idle "
                   "(the freed pages are reused by new rows meanwhile)")
    before, after = done["size_before"], done["size_after"]
    click.echo(f"{before} -> {after} bytes (gain={before / after if after else 1:.2f}x)")


COMMANDS = [init, which, db]
