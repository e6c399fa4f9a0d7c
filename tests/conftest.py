"""Shared fixtures: a database whose user tables are dropped after each test."""

from __future__ import annotations

import os

import pytest
from django.db import connection

from mutant import classes


def drop_user_tables() -> None:
    """Drop every user table left in the test database and forget its class."""

    classes.forget_all()
    with connection.cursor() as cursor:
        names = [
            name
            for name in connection.introspection.table_names(cursor)
            if name.startswith("tables_")
        ]
        for name in names:
            suffix = " CASCADE" if connection.vendor == "postgresql" else ""
            cursor.execute(f"DROP TABLE IF EXISTS {connection.ops.quote_name(name)}{suffix}")


@pytest.fixture
def schema_db(transactional_db):
    """A real-transaction database for schema changes; user tables are dropped after."""
    drop_user_tables()
    yield
    drop_user_tables()


@pytest.fixture
def db_env() -> dict[str, str]:
    """Environment for a child process that must use this test database."""
    settings_db = connection.settings_dict
    env = dict(os.environ)
    if connection.vendor == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{settings_db['NAME']}"
    else:
        env["DATABASE_URL"] = (
            f"postgres://{settings_db['USER']}@{settings_db['HOST']}:{settings_db['PORT']}/"
            f"{settings_db['NAME']}"
        )
    env["PYTHONPATH"] = os.getcwd()
    return env
