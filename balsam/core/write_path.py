"""Where model writes go: the write client installed by ``django_config.activate``.

Kept in ``core`` so the models can route writes without importing ``dbclient``
(imports flow one way: core <- dbclient).
"""

_client = None


def install(client):
    global _client
    _client = client


def client():
    if _client is None:
        raise RuntimeError("Balsam is not activated: call balsam.django_config.activate(db_path) first")
    return _client
