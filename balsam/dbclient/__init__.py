"""The write path: one interface (``WriteClient``), chosen per process."""

from balsam.core import write_path


def reset_client(db_path, forced_mode=None):
    """Install the write client for the DB at ``db_path`` (called by ``django_config.activate``)."""
    from balsam.dbclient.direct import DirectClient

    client = DirectClient()
    write_path.install(client)
    return client


def get_client():
    return write_path.client()
