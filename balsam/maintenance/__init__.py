"""Looking after a Balsam DB: ``balsam db stats``, ``check`` (and
``--repair``), ``backup`` and ``restore``. On the API's layer: the CLI calls it
after ``balsam.api.attach``; it reads through ``core.health``/``core.queries``
and writes only through the write client. Prints nothing."""
