"""PostgreSQL DB directories: the cluster in ``<DB>/balsamdb/`` (``cluster``)
and who may connect to it (``credentials``). No Django: ``dbdir``,
``dbserver`` and ``django_config`` build on it."""
