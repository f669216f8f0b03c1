"""Django's PostgreSQL backend, finding its server in the DB directory (see ``base``)."""
