"""Collaborators' login roles in a DB's PostgreSQL cluster.

Each collaborator gets a login role named after their UNIX user (so
``current_user`` is the user name the job events record), with a random
password stored as a scram-sha-256 verifier (computed here: the server never
sees the password itself), no superuser, createrole, createdb or replication
right, and membership in one NOLOGIN group role, ``balsam_collaborators``,
which holds exactly what Balsam's processes need: connect to the DB, use the
``public`` schema, read and write the rows of its tables, use its sequences.
No DDL (they own nothing and may create nothing: PostgreSQL 15's ``public``
schema grants CREATE to nobody), no TRUNCATE.

The group's rights are re-granted on the existing tables at every
``--add-user``, and the owner's DEFAULT PRIVILEGES give it the same rights on
every table and sequence a later migration (run by the owner) creates.

Every function takes an autocommit psycopg connection of the owner (the
cluster's superuser).
"""

import base64
import hashlib
import hmac
import secrets

GROUP_ROLE = "balsam_collaborators"
# PBKDF2 rounds in the scram-sha-256 verifiers Balsam writes. PostgreSQL's
# default of 4096 stretches guessable passwords against an offline search; a
# Balsam password is a random 256-bit token, which no number of rounds makes
# any safer, while every client pays the rounds again at each connection
# (5.3 of its 11.5 ms of CPU per connection with 4096): a launcher or a
# dag script connects once per process, and thousands of them connect.
SCRAM_ROUNDS = 16
TABLE_RIGHTS = "SELECT, INSERT, UPDATE, DELETE"
SEQUENCE_RIGHTS = "USAGE, SELECT, UPDATE"


def _ident(name):
    from psycopg import sql

    return sql.Identifier(name)


def _run(conn, template, *names, params=None):
    from psycopg import sql

    conn.execute(sql.SQL(template).format(*(_ident(n) for n in names)), params)


def _exists(conn, role):
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone() is not None


def grant_group_rights(conn, owner, database):
    """The group role and its rights (idempotent)."""
    if not _exists(conn, GROUP_ROLE):
        _run(conn, "CREATE ROLE {} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION", GROUP_ROLE)
    _run(conn, "GRANT CONNECT ON DATABASE {} TO {}", database, GROUP_ROLE)
    _run(conn, "GRANT USAGE ON SCHEMA public TO {}", GROUP_ROLE)
    _run(conn, f"GRANT {TABLE_RIGHTS} ON ALL TABLES IN SCHEMA public TO {{}}", GROUP_ROLE)
    _run(conn, f"GRANT {SEQUENCE_RIGHTS} ON ALL SEQUENCES IN SCHEMA public TO {{}}", GROUP_ROLE)
    _run(conn, f"ALTER DEFAULT PRIVILEGES FOR ROLE {{}} IN SCHEMA public GRANT {TABLE_RIGHTS} ON TABLES TO {{}}",
         owner, GROUP_ROLE)
    _run(conn, f"ALTER DEFAULT PRIVILEGES FOR ROLE {{}} IN SCHEMA public GRANT {SEQUENCE_RIGHTS} ON SEQUENCES "
               "TO {}", owner, GROUP_ROLE)


def add_role(conn, role, owner, database):
    """Create (or replace the password of) ``role``; returns the new password."""
    from psycopg import sql

    grant_group_rights(conn, owner, database)
    password = secrets.token_urlsafe(32)
    verb = "ALTER" if _exists(conn, role) else "CREATE"
    # One statement: the role never exists without its password.
    conn.execute(sql.SQL(verb + " ROLE {} LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                                "NOBYPASSRLS {}").format(_ident(role), _password_clause(password)))
    _run(conn, "GRANT {} TO {}", GROUP_ROLE, role)
    return password


def scram_verifier(password, rounds=SCRAM_ROUNDS):
    """The scram-sha-256 verifier of ``password`` as PostgreSQL stores it
    (RFC 5802, RFC 7677; the format of PostgreSQL's ``scram_build_secret``),
    with ``rounds`` PBKDF2 iterations: the server asks each client for that
    many. The password is ASCII (``secrets.token_urlsafe``), which SASLprep
    leaves as it is."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, rounds)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    text = lambda data: base64.b64encode(data).decode()  # noqa: E731
    return f"SCRAM-SHA-256${rounds}:{text(salt)}${text(stored_key)}:{text(server_key)}"


def _password_clause(password):
    """``PASSWORD '<Balsam's verifier>'``: a utility statement takes no bound
    parameters, so the verifier goes in as a quoted literal."""
    from psycopg import sql

    return sql.SQL("PASSWORD {}").format(sql.Literal(scram_verifier(password)))


def set_password(conn, role, password):
    """Store ``password`` for the existing ``role`` as Balsam's verifier."""
    from psycopg import sql

    conn.execute(sql.SQL("ALTER ROLE {} {}").format(_ident(role), _password_clause(password)))


def drop_role(conn, role):
    """Cut ``role`` off at once: no new login, its open sessions ended, the role
    dropped. Returns the number of sessions ended; False if there was no role."""
    if not _exists(conn, role):
        return False
    _run(conn, "ALTER ROLE {} NOLOGIN", role)
    ended = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = %s",
                         [role]).fetchone()[0]
    _run(conn, "DROP ROLE {}", role)
    return ended


def collaborator_roles(conn):
    """Names of the roles in the group, sorted."""
    rows = conn.execute("SELECT r.rolname FROM pg_roles r JOIN pg_auth_members m ON m.member = r.oid "
                        "JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = %s ORDER BY 1", [GROUP_ROLE])
    return [row[0] for row in rows]
