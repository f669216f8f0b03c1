"""Checking the values a write request carries, with the messages users see.

Every field value goes through ``clean`` before it is stored; the argument
checks shared by several operations (lease owners, state lists, positive
numbers) live here too. No writes.
"""

import json
import math

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models

from balsam.core import states
from balsam.core.models import ApplicationDefinition, BalsamJob, QueuedLaunch
from balsam.exceptions import ValidationError

# Fields a job's creator may set; everything else belongs to Balsam.
JOB_CREATE_FIELDS = {f.name for f in BalsamJob._meta.concrete_fields} - BalsamJob.SYSTEM_FIELDS
JOB_UPDATE_FIELDS = (JOB_CREATE_FIELDS - {"job_id"}) | {"state", "runtime_seconds", "timeout_retries"}
APP_FIELDS = {f.name for f in ApplicationDefinition._meta.concrete_fields} - {"id"}
LAUNCH_FIELDS = {f.name for f in QueuedLaunch._meta.concrete_fields} - {"id", "created_at"}

POSITIVE_INT_FIELDS = {"num_nodes", "ranks_per_node", "threads_per_rank", "threads_per_core", "node_packing_count"}
NON_NEGATIVE_FIELDS = {"wall_time_minutes", "timeout_retries"}
STRING_DICT_FIELDS = {"environ_vars"}
# Every stored number lies within a 32-bit integer's range (Django's documented
# IntegerField range; larger counts are mistakes and overflow SQLite's binding
# of Python ints beyond 64 bits), and floats are finite (NaN breaks ordering and
# comparisons, infinity is not JSON).
MAX_NUMBER = 2**31 - 1
# Deeper values would be refused by JSON readers (the server's, Python's
# recursion limit) after a row was stored; no job needs more.
MAX_JSON_DEPTH = 100


def _text_fields(model):
    """Names of plain text fields with their length limit (their values need no conversion)."""
    return {
        f.name: f.max_length or 0
        for f in model._meta.concrete_fields
        if isinstance(f, (models.CharField, models.TextField)) and not f.choices
    }


TEXT_FIELDS = {model: _text_fields(model) for model in (BalsamJob, ApplicationDefinition, QueuedLaunch)}
_NUMBER_FIELDS = {
    model: {
        f.name: int if isinstance(f, models.IntegerField) else float
        for f in model._meta.concrete_fields
        if isinstance(f, (models.IntegerField, models.FloatField)) and not f.primary_key
    }
    for model in (BalsamJob, ApplicationDefinition, QueuedLaunch)
}


def _check_range(name, value):
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(f"{name} must be a finite number, not {value}")
    if not -MAX_NUMBER <= value <= MAX_NUMBER:
        shown = f"{value:,}" if isinstance(value, int) else f"{value:g}"
        raise ValidationError(f"{name} must be between {-MAX_NUMBER:,} and {MAX_NUMBER:,}, not {shown}")
    if name in POSITIVE_INT_FIELDS and value < 1:
        raise ValidationError(f"{name} must be at least 1, not {value}")
    if name in NON_NEGATIVE_FIELDS and value < 0:
        raise ValidationError(f"{name} must not be negative, not {value}")


def clean(model, name, value, allowed):
    """``value`` as ``model.name`` stores it, or one clear ``ValidationError``."""
    if name not in allowed:
        raise ValidationError(
            f"unknown or read-only {model._meta.verbose_name} field {name!r}; "
            f"settable fields: {', '.join(sorted(allowed))}"
        )
    limit = TEXT_FIELDS[model].get(name)
    if limit is not None and type(value) is str:
        # The common case (names, args, paths) with no conversion to do.
        if limit and len(value) > limit:
            raise ValidationError(f"{name} is longer than {limit} characters")
        return value
    kind = _NUMBER_FIELDS[model].get(name)
    if kind is not None and type(value) in (int, float) and (kind is float or type(value) is int):
        _check_range(name, value)
        return kind(value)
    field = model._meta.get_field(name)
    if isinstance(field, models.BooleanField) and not isinstance(value, bool):
        raise ValidationError(f"{name} must be true or false, not {value!r}")
    if isinstance(field, (models.IntegerField, models.FloatField)) and isinstance(value, bool):
        raise ValidationError(f"{name} must be a number, not {value!r}")
    if isinstance(field, (models.CharField, models.TextField)) and not isinstance(value, str):
        raise ValidationError(f"{name} must be text, not {value!r}")
    if value is None and not field.null:
        raise ValidationError(f"{name} must not be empty (null)")
    try:
        value = field.to_python(value)
    except DjangoValidationError as exc:
        raise ValidationError(f"{name}: {' '.join(exc.messages)} (got {value!r})") from None
    if isinstance(field, models.CharField) and field.max_length and len(value) > field.max_length:
        raise ValidationError(f"{name} is longer than {field.max_length} characters")
    if value is not None and isinstance(field, (models.IntegerField, models.FloatField)):
        _check_range(name, value)
    if name in STRING_DICT_FIELDS:
        if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
            raise ValidationError(f"{name} must be an object of VARIABLE: value pairs")
        for key, item in value.items():
            if not isinstance(item, (str, int, float)) or isinstance(item, bool):
                raise ValidationError(f"{name}: the value of {key} must be text or a number, not {item!r}")
        value = {k: str(v) for k, v in value.items()}
    if isinstance(field, models.JSONField):
        if _nests_deeper(value, MAX_JSON_DEPTH):
            raise ValidationError(f"{name} nests deeper than {MAX_JSON_DEPTH} levels of lists and objects")
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise ValidationError(f"{name} must be JSON-serialisable") from None
    return value


def _nests_deeper(value, limit):
    """Do lists and dicts in ``value`` nest more than ``limit`` levels? (No
    recursion: the point is to refuse what would exhaust it later.)"""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list, tuple)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def clean_fields(model, fields, allowed):
    if not isinstance(fields, dict):
        raise ValidationError("fields must be an object of name: value pairs")
    return {name: clean(model, name, value, allowed) for name, value in fields.items()}


def owner(name):
    """A lease owner's name (``host:pid:tag``)."""
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise ValidationError("a lease owner must be a non-empty name of at most 255 characters")
    return name


def state_list(names):
    if not isinstance(names, list) or not names:
        raise ValidationError("states must be a non-empty list of state names")
    return [states.validate_state_name(name) for name in names]


JOB_MODES = ("serial", "mpi")  # how a launcher (and a launch) runs jobs


def job_mode(value):
    if value not in JOB_MODES:
        raise ValidationError(f"job mode must be serial or mpi, not {value!r}")
    return value


def text(name, value, max_length=255, allow_empty=False):
    """A short text argument: a string of at most ``max_length`` characters."""
    if not isinstance(value, str) or len(value) > max_length or not (allow_empty or value.strip()):
        raise ValidationError(f"{name} must be {'a' if allow_empty else 'a non-empty'} text of at most "
                              f"{max_length} characters")
    return value


MAX_ARGUMENT = 1e9  # larger counts or seconds are mistakes (and overflow date arithmetic)


def positive_number(name, value, allow_zero=False):
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0
            or (value == 0 and not allow_zero) or value > MAX_ARGUMENT):
        raise ValidationError(f"{name} must be a positive number up to {MAX_ARGUMENT:g}, not {value!r}")
    return value


def whole_number(name, value):
    """A positive whole number (ids, counts, pids)."""
    positive_number(name, value)
    if value != int(value):
        raise ValidationError(f"{name} must be a whole number, not {value!r}")
    return int(value)
