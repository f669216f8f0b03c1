"""How the ORM's writes reach the write path: ``RoutedQuerySet`` and
``TrackedModel`` send ``save()``, ``delete()``, ``update()`` and
``bulk_create()`` to the installed write client (``core.write_client``), which
applies them with ``core.operations`` -- directly, or through the dbserver --
sending only the fields that changed. ``ReadOnlyQuerySet``/``ReadOnlyModel``
are the tables that only their own write operations (or SQL triggers) write.
"""

import copy
import logging

from django.db import models
from django.db.models import signals

from balsam.core import write_client
from balsam.core.json_values import fields_to_wire
from balsam.wire.protocol import JOBS_PER_REQUEST
from balsam.exceptions import BalsamError

logger = logging.getLogger(__name__)

_COMPUTED = object()  # a default made per object (a callable)


class DirectWrites(models.QuerySet):
    """The plain ORM writes, for the write operations (``core.operations``)
    that apply what the routed or refused writes below hand them."""

    def _direct_update(self, **fields):
        return super().update(**fields)

    def _direct_bulk_create(self, objs, **kwargs):
        return super().bulk_create(objs, **kwargs)

    # Private methods are left off managers unless asked for; core.operations uses these.
    _direct_update.queryset_only = False
    _direct_bulk_create.queryset_only = False


class RoutedQuerySet(DirectWrites):
    """A queryset whose writes go through the write client.

    ``write_kind`` names the operations ("jobs" or "apps"); the ``_direct_*``
    methods are Django's own writes, for use by ``core.operations`` only.
    """

    write_kind = None

    def _ids(self):
        return [str(pk) for pk in self.values_list("pk", flat=True)]

    def update(self, **fields):
        ids = self._ids()
        if not ids:
            return 0
        return write_client.get().update(self.write_kind, ids, fields_to_wire(fields))

    update.alters_data = True

    def delete(self):
        ids = self._ids()
        if not ids:
            return 0, {}
        count = write_client.get().delete(self.write_kind, ids)
        return count, {self.model._meta.label: count}

    delete.alters_data = True

    def bulk_create(self, objs, batch_size=None, **kwargs):
        objs = list(objs)
        for start in range(0, len(objs), JOBS_PER_REQUEST):
            self.model._create_many(objs[start : start + JOBS_PER_REQUEST])
        return objs

    def bulk_update(self, objs, fields, batch_size=None):
        for obj in objs:
            values = {name: getattr(obj, name) for name in fields}
            write_client.get().update(self.write_kind, [str(obj.pk)], fields_to_wire(values))
        return len(objs)



def _init_listened(cls):
    return signals.pre_init.has_listeners(cls) or signals.post_init.has_listeners(cls)


class TrackedModel(models.Model):
    """Remembers the values loaded from the DB so ``save()`` sends only changes."""

    class Meta:
        abstract = True

    _mutable_fields = ()

    @classmethod
    def _field_plan(cls):
        """Per class, computed once: ``(name, attname, field, fixed, sent)`` for
        every concrete field. ``fixed`` is its default when that is a plain
        value, else ``_COMPUTED`` (made per object: ids, times, dicts);
        ``sent`` is the value a new row need not send (``_COMPUTED``: always send)."""
        plan = cls.__dict__.get("_field_plan_cache")
        if plan is None:
            plan = []
            for field in cls._meta.concrete_fields:
                if not field.has_default() or not callable(field.default):
                    fixed = sent = field.get_default()  # without a default: a constant None or ""
                elif field.default in (dict, list):
                    fixed, sent = _COMPUTED, field.default()
                else:
                    fixed = sent = _COMPUTED
                plan.append((field.name, field.attname, field, fixed, sent))
            plan = tuple(plan)
            cls._field_plan_cache = plan
        return plan

    @classmethod
    def _defaults(cls):
        """Per class, computed once: ``({attname: plain default}, [(attname, field)
        whose default is made per object], every field's attname)``."""
        cached = cls.__dict__.get("_defaults_cache")
        if cached is None:
            fixed, computed = {}, []
            for _, attname, field, value, _ in cls._field_plan():
                if value is _COMPUTED:
                    computed.append((attname, field))
                else:
                    fixed[attname] = value
            cached = cls._defaults_cache = (fixed, tuple(computed), frozenset(fixed) | {a for a, _ in computed})
        return cached

    def __init__(self, *args, **kwargs):
        """``Model(field=value, ...)``; with only plain field keywords (attribute
        names: what callers of the write path pass, and what users write) the
        defaults are filled in from the per-class plan instead of Django's
        per-field ``__init__`` work: the same object at a fraction of the
        cost (Django's 75 us a job was a third of submitting a thousand jobs
        with ``bulk_create``). Anything else -- positional values (rows
        loaded from the DB), related objects, unknown names, ``pre_init`` or
        ``post_init`` listeners -- takes Django's own path."""
        cls = type(self)
        fixed, computed, attnames = cls._defaults()
        if args or not attnames.issuperset(kwargs) or _init_listened(cls):
            super().__init__(*args, **kwargs)
            return
        self._state = models.base.ModelState()
        values = self.__dict__
        values.update(fixed)
        for attname, field in computed:
            if attname not in kwargs:
                values[attname] = field.get_default()
        values.update(kwargs)

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._remember_loaded()
        return instance

    def _remember_loaded(self):
        # A C-level copy of the instance dict; extra keys are harmless
        # (changed_fields looks only at fields), but the previous snapshot
        # must not be kept alive through it.
        loaded = self.__dict__.copy()
        loaded.pop("_loaded_values", None)
        loaded.pop("_state", None)
        for name in self._mutable_fields:  # dicts or lists the caller may change in place
            value = loaded.get(name)
            if value is not None:
                loaded[name] = copy.deepcopy(value) if value else type(value)()
        self._loaded_values = loaded

    def refresh_from_db(self, *args, **kwargs):
        super().refresh_from_db(*args, **kwargs)
        self._remember_loaded()

    def changed_fields(self):
        loaded = getattr(self, "_loaded_values", {})
        values = self.__dict__
        changed = {}
        pk_attname = self._meta.pk.attname
        for name, attname, _, _, _ in self._field_plan():
            if attname == pk_attname or attname not in loaded:
                continue
            value = values.get(attname, loaded[attname])
            if value != loaded[attname]:
                changed[name] = value
        return changed

    def wire_row(self):
        """The field values to insert this object: only those that differ
        from their defaults (the writer fills in the rest)."""
        row = {}
        values = self.__dict__
        for name, attname, _, _, sent in self._field_plan():
            value = values.get(attname)
            if sent is _COMPUTED or sent != value:
                row[name] = value
        return fields_to_wire(row)

    # Fields the writer sets itself when it inserts (ids, its clock).
    _writer_fields = ("id", "created_at")

    def _insert_row(self):
        """What goes over the wire to insert this object."""
        row = self.wire_row()
        for name in self._writer_fields:
            row.pop(name, None)
        return row

    @classmethod
    def _inserted_values(cls, result):
        """{attname: value} the writer's answer for one inserted row sets (its id)."""
        return {cls._meta.pk.attname: result}

    @classmethod
    def _create_many(cls, objs):
        """Insert ``objs`` through the write path; they get what it assigned (ids, times)."""
        results = write_client.get().create(cls.write_kind, [obj._insert_row() for obj in objs])
        for obj, result in zip(objs, results):
            obj.__dict__.update(cls._inserted_values(result))
            obj._state.adding = False
            obj._remember_loaded()

    def save(self, *args, **kwargs):
        if self._state.adding:
            self._create_many([self])  # also marks it saved and remembers its values
            return
        changed = self.changed_fields()
        if changed:
            write_client.get().update(self.write_kind, [str(self.pk)], fields_to_wire(changed))
            self._remember_loaded()

    save.alters_data = True

    def delete(self, *args, **kwargs):
        count = write_client.get().delete(self.write_kind, [str(self.pk)])
        return count, {self._meta.label: count}

    delete.alters_data = True


class ReadOnlyQuerySet(DirectWrites):
    """Rows written only by their own write operations (or SQL triggers):
    the ORM may read them, never change them."""

    refusal = "this table is written by Balsam itself"

    def update(self, **fields):
        raise BalsamError(self.refusal)

    def delete(self):
        raise BalsamError(self.refusal)

    def bulk_create(self, objs, **kwargs):
        raise BalsamError(self.refusal)


class ReadOnlyModel(models.Model):
    """A row the ORM may read, never save or delete (its queryset, a
    ``ReadOnlyQuerySet``, says who writes it)."""

    class Meta:
        abstract = True

    def _refuse(self):
        raise BalsamError(type(self)._default_manager.get_queryset().refusal)

    def save(self, *args, **kwargs):
        self._refuse()

    def delete(self, *args, **kwargs):
        self._refuse()
