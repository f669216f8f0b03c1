"""Write operations on applications, and the check that jobs name one that exists."""

from django.db import models

from balsam.core import states
from balsam.core.models import ApplicationDefinition, BalsamJob
from balsam.core.operations.validation import APP_FIELDS, clean_fields
from balsam.exceptions import NotFound, ValidationError


def create_apps(rows):
    apps = []
    names = set()
    for row in rows:
        fields = clean_fields(ApplicationDefinition, row, APP_FIELDS)
        name = fields.get("name", "")
        if not name:
            raise ValidationError("an application needs a name")
        if not fields.get("executable"):
            raise ValidationError(f"application {name!r} needs an executable")
        if name in names or ApplicationDefinition.objects.filter(name=name).exists():
            raise ValidationError(f"an application named {name!r} already exists")
        names.add(name)
        apps.append(ApplicationDefinition(**fields))
    created = ApplicationDefinition.objects._direct_bulk_create(apps)
    return [app.pk for app in created]


def update_apps(ids, fields):
    fields = clean_fields(ApplicationDefinition, fields, APP_FIELDS)
    qs = ApplicationDefinition.objects.filter(pk__in=ids)
    if qs.count() != len(set(ids)):
        raise NotFound("no application with that id")
    _AppNameCache.forget()
    if "executable" in fields and not fields["executable"].strip():
        raise ValidationError("an application needs an executable")
    if "name" in fields:
        if not fields["name"].strip():
            raise ValidationError("an application needs a name")
        if len(ids) != 1:
            raise ValidationError("only one application can be renamed at a time")
        if ApplicationDefinition.objects.filter(name=fields["name"]).exclude(pk__in=ids).exists():
            raise ValidationError(f"an application named {fields['name']!r} already exists")
        old = qs.get().name
        # Jobs refer to their application by name: keep them pointing at it.
        BalsamJob.objects.filter(application=old)._direct_update(application=fields["name"])
    return qs._direct_update(**fields)


def delete_apps(ids):
    _AppNameCache.forget()
    names = list(ApplicationDefinition.objects.filter(pk__in=ids).values_list("name", flat=True))
    busy = BalsamJob.objects.filter(application__in=names).exclude(state__in=states.END_STATES)
    count = busy.count()
    if count:
        raise ValidationError(
            f"{count} unfinished job(s) use application {names[0]!r}; remove or kill them first"
        )
    deleted, _ = models.QuerySet.delete(ApplicationDefinition.objects.filter(pk__in=ids))
    return deleted


class _AppNameCache:
    """Application names known to exist. Only the dbserver enables it: as the
    one writer it sees every change to applications and clears it then."""

    enabled = False
    names = set()

    @classmethod
    def forget(cls):
        cls.names = set()


def enable_app_name_cache():
    _AppNameCache.enabled = True
    _AppNameCache.forget()


def require_apps(names):
    """Raise unless every application in ``names`` exists."""
    names = set(names) - _AppNameCache.names
    if not names:
        return
    known = set(ApplicationDefinition.objects.filter(name__in=names).values_list("name", flat=True))
    if _AppNameCache.enabled:
        _AppNameCache.names |= known
    unknown = sorted(names - known)
    if unknown:
        raise ValidationError(
            f"application {unknown[0]!r} does not exist; add it with: balsam app --name {unknown[0]} --executable ..."
        )


OPERATIONS = {
    "create_apps": create_apps,
    "update_apps": update_apps,
    "delete_apps": delete_apps,
}
