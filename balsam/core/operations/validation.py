"""Checking the values a write request carries, with the messages users see.

Every field value goes through ``clean`` before it is stored; the argument
checks shared by several operations (lease owners, state lists, positive
numbers) live here too. No writes.
"""

import json

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
    if value is not None:
        _check_range(name, value)
    if name in STRING_DICT_FIELDS:
        if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
            raise ValidationError(f"{name} must be an object of VARIABLE: value pairs")
        value = {k: str(v) for k, v in value.items()}
    if isinstance(field, models.JSONField):
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise ValidationError(f"{name} must be JSON-serialisable") from None
    return value


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


def positive_number(name, value, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (value == 0 and not allow_zero):
        raise ValidationError(f"{name} must be a positive number, not {value!r}")
    return value
