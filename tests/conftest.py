"""Shared fixtures: a database whose user tables are dropped after each test."""

from __future__ import annotations

import os

import pytest
from django.db import connection

from mutant import classes, locks


def drop_user_tables() -> None:
    """Drop every user table left in the test database and forget its class."""

    classes.forget_all()
    # Flushes reuse definition pks: nothing remembered about the old ones may last.
    locks.reset()
    with connection.constraint_checks_disabled(), connection.cursor() as cursor:
        names = [
            name
            for name in connection.introspection.table_names(cursor)
            if name.startswith("tables_")
        ]
        for name in names:
            suffix = " CASCADE" if connection.vendor == "postgresql" else ""
            cursor.execute(f"DROP TABLE IF EXISTS {connection.ops.quote_name(name)}{suffix}")


@pytest.fixture(scope="session", autouse=True)
def lock_sessions(django_db_setup):
    """Closes this process's lock sessions before the test database is dropped."""
    yield
    locks.reset()


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
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
    return env


class DjangoChild:
    """A running second process (tests/django_child.py) on the test database."""

    def __init__(self, env: dict[str, str]):
        import subprocess
        import sys

        self.process = subprocess.Popen(
            [sys.executable, "tests/django_child.py"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def run(self, code: str):
        import json

        self.process.stdin.write(json.dumps(code) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        if "error" in answer:
            raise AssertionError("child process failed:\n" + answer["error"])
        return answer["result"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture
def child(schema_db, db_env):
    """A second Django process on this test's database."""
    process = DjangoChild(db_env)
    yield process
    process.close()
