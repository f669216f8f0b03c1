"""Model values <-> JSON-able values for write requests (the same for every client)."""

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
