"""The text forms ``postgres.prepared`` sends to libpq (no server needed: the
statements themselves run in tests/integration/test_write_contract.py on
PostgreSQL)."""

import datetime
import json
import uuid

import pytest
from psycopg.types.json import Jsonb

from balsam.postgres.prepared import as_text, numbered


def test_placeholders_are_numbered_in_order_and_a_double_percent_is_a_literal():
    assert numbered("INSERT INTO t (a, b) VALUES (%s::text, %s::int)") == "INSERT INTO t (a, b) VALUES ($1::text, $2::int)"
    assert numbered("SELECT %s, '100%%', %s") == "SELECT $1, '100%', $2"
    with pytest.raises(ValueError, match="unsupported %"):
        numbered("SELECT %d")


def test_each_parameter_type_has_postgresqls_text_form():
    stamp = datetime.datetime(2026, 11, 30, 15, 4, 5, 123456, tzinfo=datetime.timezone.utc)
    job_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert [as_text(v) for v in (None, "héllo", True, False, 7, 1.5, job_id, stamp)] == [
        None, "héllo".encode(), b"t", b"f", b"7", b"1.5", b"12345678-1234-5678-1234-567812345678",
        b"2026-11-30T15:04:05.123456+00:00"]
    assert json.loads(as_text(Jsonb({"A": "1", "k": [1, None]}))) == {"A": "1", "k": [1, None]}
    with pytest.raises(TypeError, match="naive"):
        as_text(datetime.datetime(2026, 1, 1))
    with pytest.raises(TypeError, match="no text form"):
        as_text(object())
