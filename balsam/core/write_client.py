"""The process's write client: where every write goes.

``django_config.activate`` installs it (a ``dbclient.AutoClient``); everything
that writes -- models, ``api``, the launcher, the service -- gets it with
``write_client.get()``, the one way to reach it. It lives in ``core`` so the
models can route writes without importing ``dbclient`` (imports flow one way:
``core`` <- ``dbclient``).
"""

_client = None


def install(client):
    """Make ``client`` the process's write client; returns the one it replaces (or None)."""
    global _client
    previous, _client = _client, client
    return previous


def get():
    if _client is None:
        raise RuntimeError("Balsam is not activated: call balsam.django_config.activate(db_path) first")
    return _client
