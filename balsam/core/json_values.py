"""Model values <-> JSON-able values for write requests (the same for every client), and job ids from text."""

import datetime
import uuid

from django.db.models import Expression


_PLAIN = (str, int, float, bool, type(None))


def to_wire(value):
    if type(value) in _PLAIN:  # most values: nothing to check or convert
        return value
    if isinstance(value, Expression) or hasattr(value, "resolve_expression"):
        from balsam.exceptions import ValidationError

        raise ValidationError("query expressions cannot be sent through the write path; pass plain values")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return value


def fields_to_wire(fields):
    return {name: to_wire(value) for name, value in fields.items()}


def id_text(stored):
    """A job id as a backend returns it -- a ``UUID``, or SQLite's 32 hex
    digits -- as the canonical text a request carries, without making a
    ``UUID`` (a claim returns hundreds a second)."""
    if isinstance(stored, uuid.UUID):
        return str(stored)
    return f"{stored[:8]}-{stored[8:12]}-{stored[12:16]}-{stored[16:20]}-{stored[20:]}"


def job_id(value):
    """A job id from a request or a user (a UUID, or its text with or without
    dashes) as a ``UUID``; one clear error otherwise."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        from balsam.exceptions import ValidationError

        raise ValidationError(f"{value!r} is not a job id") from None
