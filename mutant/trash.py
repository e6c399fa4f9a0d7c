"""The trash: where deleted fields' values and deleted tables wait.

A trashed field's values move to a table of their own (the row id and the
value, or the linked ids for a many-to-many field) and its column goes, so
the user table stays exactly what its definitions say. A trashed table is
renamed out of the way, after its links went to the trash field by field.
Restoring reverses both; purging drops what waits here. Every step runs in
the schema change's transaction.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.apps.registry import Apps
from django.db import models

if TYPE_CHECKING:
    from django.db.backends.base.schema import BaseDatabaseSchemaEditor


def field_table(pk: int) -> str:
    return f"mutant_trash_field_{pk}"


def table_name(pk: int) -> str:
    return f"mutant_trash_table_{pk}"


def backup_table(pk: int) -> str:
    """A new table name for the old values of field `pk` before a change of type."""
    return f"mutant_backup_{pk}_{uuid.uuid4().hex[:12]}"


def backed_up_rows(editor: BaseDatabaseSchemaEditor, name: str) -> set[int]:
    qn = editor.connection.ops.quote_name
    with editor.connection.cursor() as cursor:
        cursor.execute(f"SELECT {qn('row_id')} FROM {qn(name)}")  # noqa: S608
        return {row for (row,) in cursor.fetchall()}


def exists(editor: BaseDatabaseSchemaEditor, name: str) -> bool:
    with editor.connection.cursor() as cursor:
        return name in editor.connection.introspection.table_names(cursor)


def loose(field: models.Field) -> models.Field:
    """The same kind of column, accepting anything the original held."""
    if field.is_relation:
        return models.BigIntegerField(null=True)
    _name, _path, args, kwargs = field.deconstruct()
    kwargs.update(null=True, unique=False, db_index=False, primary_key=False)
    kwargs.pop("default", None)
    return type(field)(*args, **kwargs)


def _holder(name: str, columns: dict[str, models.Field]) -> type[models.Model]:
    # A model in a registry of its own: it never meets the project's apps.
    meta = type("Meta", (), {"app_label": "mutant_trash", "db_table": name, "apps": Apps()})
    attrs = {"__module__": __name__, "Meta": meta, **columns}
    return type(f"Trash_{name}", (models.Model,), attrs)


def _holder_for(name: str, field: models.Field) -> type[models.Model]:
    if field.many_to_many:
        columns = {"row_id": models.BigIntegerField(), "target_id": models.BigIntegerField()}
    else:
        columns = {"row_id": models.BigIntegerField(), "value": loose(field)}
    return _holder(name, columns)


def _m2m_columns(field: models.ManyToManyField) -> tuple[str, str, str]:
    through = field.remote_field.through._meta
    return (
        through.db_table,
        through.get_field(field.m2m_field_name()).column,
        through.get_field(field.m2m_reverse_field_name()).column,
    )


def copy_out(
    editor: BaseDatabaseSchemaEditor,
    model: type[models.Model],
    name: str,
    pk: int,
    into: str | None = None,
) -> None:
    """Keep the values of `model.name` in the trash (before its column goes),
    or in the table `into` (a backup)."""
    field = model._meta.get_field(name)
    holder = _holder_for(into or field_table(pk), field)
    editor.create_model(holder)
    qn = editor.connection.ops.quote_name
    trash = qn(holder._meta.db_table)
    if field.many_to_many:
        through, source, target = map(qn, _m2m_columns(field))
        editor.execute(
            f"INSERT INTO {trash} ({qn('row_id')}, {qn('target_id')}) "  # noqa: S608
            f"SELECT {source}, {target} FROM {through}"
        )
    else:
        editor.execute(
            f"INSERT INTO {trash} ({qn('row_id')}, {qn('value')}) "  # noqa: S608
            f"SELECT {qn(model._meta.pk.column)}, {qn(field.column)} "
            f"FROM {qn(model._meta.db_table)}"
        )


def copy_in(
    editor: BaseDatabaseSchemaEditor,
    model: type[models.Model],
    name: str,
    source: int | str,
    drop: bool = True,
) -> None:
    """Put the trashed values of field `source` (or those of the backup table
    named `source`) back into `model.name`, then drop them.

    Links whose target row is gone meanwhile stay empty.
    """
    field = model._meta.get_field(name)
    qn = editor.connection.ops.quote_name
    source_table = field_table(source) if isinstance(source, int) else source
    trash = qn(source_table)
    row_pk = f"{qn(model._meta.db_table)}.{qn(model._meta.pk.column)}"
    if field.many_to_many:
        through, source, target = map(qn, _m2m_columns(field))
        target_model = field.related_model._meta
        editor.execute(
            f"INSERT INTO {through} ({source}, {target}) "  # noqa: S608
            f"SELECT {qn('row_id')}, {qn('target_id')} FROM {trash} "
            f"WHERE {qn('row_id')} IN (SELECT {qn(model._meta.pk.column)} "
            f"FROM {qn(model._meta.db_table)}) "
            f"AND {qn('target_id')} IN (SELECT {qn(target_model.pk.column)} "
            f"FROM {qn(target_model.db_table)})"
        )
    else:
        value = f"SELECT {qn('value')} FROM {trash} WHERE {qn('row_id')} = {row_pk}"  # noqa: S608
        if field.is_relation:
            target_model = field.related_model._meta
            value += (
                f" AND {qn('value')} IN (SELECT {qn(target_model.pk.column)} "  # noqa: S608
                f"FROM {qn(target_model.db_table)})"
            )
        editor.execute(
            f"UPDATE {qn(model._meta.db_table)} SET {qn(field.column)} = ({value}) "  # noqa: S608
            f"WHERE {row_pk} IN (SELECT {qn('row_id')} FROM {trash})"
        )
    if drop:
        editor.execute(f"DROP TABLE {trash}")


def drop_field(editor: BaseDatabaseSchemaEditor, pk: int) -> None:
    if exists(editor, field_table(pk)):
        editor.execute(f"DROP TABLE {editor.connection.ops.quote_name(field_table(pk))}")


def drop_table(editor: BaseDatabaseSchemaEditor, pk: int) -> None:
    if exists(editor, table_name(pk)):
        editor.execute(f"DROP TABLE {editor.connection.ops.quote_name(table_name(pk))}")
