"""Reading the database itself (introspection), for schema tests."""

from __future__ import annotations

from django.db import connection

from mutant.introspection import column_types


def table_exists(table: str) -> bool:
    with connection.cursor() as cursor:
        return table in connection.introspection.table_names(cursor)


def columns(table: str) -> dict[str, tuple[str, bool]]:
    """{column: (declared type, nullable)} from the database."""
    return column_types(connection, table)


def constraints(table: str) -> dict:
    with connection.cursor() as cursor:
        return connection.introspection.get_constraints(cursor, table)


def is_unique(table: str, column: str) -> bool:
    return any(c["unique"] and c["columns"] == [column] for c in constraints(table).values())


def is_indexed(table: str, column: str) -> bool:
    return any(
        (c["index"] or c["unique"]) and c["columns"] == [column]
        for c in constraints(table).values()
    )
