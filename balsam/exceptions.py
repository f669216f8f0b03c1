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
    )
}
