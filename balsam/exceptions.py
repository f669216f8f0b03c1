"""Errors a user can act on.

Every message says what went wrong and, where possible, what to do next. The CLI
prints ``str(error)`` on one line and exits non-zero; tracebacks are shown only
with ``BALSAM_TRACEBACK=1``.
"""


class BalsamError(Exception):
    """Root of every error Balsam reports to a user."""

    exit_code = 1


class ConfigError(BalsamError):
    """A setting or the environment is wrong."""


class DBNotFound(BalsamError):
    """The selected path is not a Balsam DB directory."""


class InitError(BalsamError):
    """``balsam init`` refused the path."""


class ValidationError(BalsamError):
    """A field value, field name or argument is invalid."""


class NotFound(BalsamError):
    """No job or application matches."""


class AmbiguousId(BalsamError):
    """An id prefix or name matches more than one object."""


class InvalidStateTransition(BalsamError):
    """A state change the transition table does not allow."""


class DependencyError(BalsamError):
    """A dependency edge is a duplicate, a self-loop or would close a cycle."""


class DBServerUnavailable(BalsamError):
    """The write server could not be reached before the deadline."""


class DBDamaged(BalsamError):
    """The DB file fails SQLite's integrity check."""

    # What SQLite says of a damaged file (in exceptions raised anywhere).
    SIGNS = ("database disk image is malformed", "file is not a database")

    @classmethod
    def of(cls, db_file, detail):
        return cls(f"the DB file {db_file} is damaged ({detail}); restore it from a backup, or save what is "
                   f"readable with: sqlite3 {db_file} .recover | sqlite3 recovered.sqlite3")

    @classmethod
    def seen_in(cls, exc):
        """Does ``exc`` (any exception) say that the DB file is damaged?"""
        return any(sign in str(exc) for sign in cls.SIGNS)


class AccessDenied(BalsamError):
    """This user may read the DB but not change it (another user owns it)."""


class Interrupted(BalsamError):
    """The user pressed Ctrl-C; the message says what was done before."""

    exit_code = 130


# Errors are sent by name over the write protocol and raised again on the client.
ERRORS_BY_NAME = {
    cls.__name__: cls
    for cls in (
        BalsamError,
        ConfigError,
        DBNotFound,
        InitError,
        ValidationError,
        NotFound,
        AmbiguousId,
        InvalidStateTransition,
        DependencyError,
        DBServerUnavailable,
        AccessDenied,
    )
}
