"""``balsam web``: the Django admin and the live dashboard of one Balsam DB.

A Django app (label ``balsam_web``) loaded only with ``activate(admin=True)``.
Importing this package does nothing: Django imports it while it starts, and
the CLI imports its modules only inside the ``web`` commands.

- ``server``: attaching, checks, the waitress WSGI server, signals.
- ``accounts``: logins (``adduser``, ``passwd``) and the read-only login backend.
- ``admin``, ``job_page``, ``job_actions``: the admin pages, whose writes go
  through the write client and the state machine.
- ``views``, ``urls``: the dashboard and its JSON and plot endpoints.
"""
