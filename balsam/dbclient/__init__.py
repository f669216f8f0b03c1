"""The write path: one interface (``WriteClient``), chosen once per process."""

from balsam.core import write_path


def _choose_client():
    from balsam.dbclient.direct import DirectClient

    return DirectClient()


def reset_client():
    """Pick the client for the active DB (called by ``django_config.activate``)."""
    client = _choose_client()
    write_path.install(client)
    return client


def get_client():
    return write_path.client()
