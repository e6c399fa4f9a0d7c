"""Compare what the definitions say with what the database holds (drift)."""

from __future__ import annotations

import re

from django.db import connections

from mutant.models import APP_LABEL, ModelDefinition

_SYNONYMS = (
    ("charactervarying", "varchar"),
    ("timewithouttimezone", "time"),
    ("character(", "char("),
)


def _normal(db_type: str) -> str:
    text = re.sub(r"\s+", "", db_type.lower())
    for long, short in _SYNONYMS:
        text = text.replace(long, short)
    return text


def column_types(connection, table: str) -> dict[str, tuple[str, bool]]:
    """{column: (declared type, nullable)} as the database reports them."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                """
                SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
                FROM pg_attribute a
                WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
                """,
                [connection.ops.quote_name(table)],
            )
            return {name: (kind, nullable) for name, kind, nullable in cursor.fetchall()}
        description = connection.introspection.get_table_description(cursor, table)
        return {info.name: (str(info.type_code), bool(info.null_ok)) for info in description}


def drift(using: str = "default") -> list[str]:
    """Every difference between the definitions and the database, in words."""
    connection = connections[using]
    problems: list[str] = []
    with connection.cursor() as cursor:
        tables = set(connection.introspection.table_names(cursor))
    defined = set()
    for definition in ModelDefinition.objects.using(using).order_by("pk"):
        model = definition.model_class()
        table = model._meta.db_table
        defined.add(table)
        defined.update(f.m2m_db_table() for f in model._meta.local_many_to_many)
        if table not in tables:
            problems.append(f"{definition.label}: table {table} is missing")
            continue
        actual = column_types(connection, table)
        expected = {f.column: f for f in model._meta.local_concrete_fields}
        for column, field in expected.items():
            if column not in actual:
                problems.append(f"{definition.label}: column {column} is missing")
                continue
            kind, nullable = actual[column]
            want = field.db_type(connection) or ""
            if _normal(want) != _normal(kind):
                problems.append(
                    f"{definition.label}: column {column} is {kind}, the definition says {want}"
                )
            if not field.primary_key and nullable != field.null:
                problems.append(
                    f"{definition.label}: column {column} "
                    f"{'allows' if nullable else 'refuses'} NULL, the definition says "
                    f"{'allow' if field.null else 'refuse'}"
                )
        for column in sorted(set(actual) - set(expected)):
            problems.append(f"{definition.label}: column {column} is not defined")
    for table in sorted(tables):
        if table.startswith(f"{APP_LABEL}_") and table not in defined:
            problems.append(f"table {table} has no definition")
    return problems
