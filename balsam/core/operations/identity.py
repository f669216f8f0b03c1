"""The DB's identity (see ``models.DBIdentity``): a copy of a DB directory
takes a new one when it is first reset or re-initialised, so it is a DB of
its own from then on."""

import uuid

from balsam.core.models import DBIdentity


def renew_db_identity():
    """Give this DB a new random id; returns it."""
    new = uuid.uuid4().hex
    if not DBIdentity.objects.update(db_id=new):
        DBIdentity.objects.create(db_id=new)
    return new


OPERATIONS = {
    "renew_db_identity": renew_db_identity,
}
