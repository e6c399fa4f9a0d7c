"""Schema history and undo.

Every schema operation writes one SchemaEvent in its own transaction: who,
when, what in words ("Renamed field Qty to Quantity in Orders"), and the
definitions of the tables it touched as they were before, so that the last
change of a table can be undone when that loses nothing.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils.translation import gettext as _

from mutant import catalogue
from mutant.errors import SchemaError
from mutant.models.definitions import FieldDefinition, ModelDefinition
from mutant.models.history import SchemaEvent

if TYPE_CHECKING:
    from mutant.schema import Plan, SchemaChange, TableState

_local = threading.local()


@contextlib.contextmanager
def actor(user: Any) -> Iterator[None]:
    """Record `user` as the author of the schema changes made inside."""
    previous = getattr(_local, "user", None)
    _local.user = user if getattr(user, "pk", None) else None
    try:
        yield
    finally:
        _local.user = previous


@contextlib.contextmanager
def undoing(event: SchemaEvent) -> Iterator[None]:
    previous = getattr(_local, "undoing", None)
    _local.undoing = event
    try:
        yield
    finally:
        _local.undoing = previous


def restoring() -> dict[int, str]:
    """{field pk: backup table} that the undo in progress brings values back from."""
    event = getattr(_local, "undoing", None)
    return {int(pk): table for pk, table in event.backups.items()} if event else {}


# -- recording ------------------------------------------------------------------


def _label(table: TableState) -> str:
    meta_name = table.meta[0]
    return meta_name or table.object_name


def describe(plan: Plan) -> tuple[list[str], str]:
    """The plan in sentences, and why it cannot be undone ("" if it can)."""
    lines: list[str] = []
    blockers: list[str] = []
    for table in plan.created:
        if table.pk in plan.restored_tables:
            lines.append(_("Restored table %(table)s from the trash") % {"table": _label(table)})
        else:
            lines.append(_("Created table %(table)s") % {"table": _label(table)})
    for table in plan.deleted:
        if table.pk in plan.trashed_tables:
            lines.append(_("Moved table %(table)s to the trash") % {"table": _label(table)})
        else:
            lines.append(_("Deleted table %(table)s") % {"table": _label(table)})
            blockers.append(_("a deleted table cannot come back"))
    for diff in plan.diffs:
        table = _label(diff.new)
        if diff.old.object_name != diff.new.object_name:
            lines.append(
                _("Renamed table %(old)s to %(new)s")
                % {"old": diff.old.object_name, "new": diff.new.object_name}
            )
        if diff.old.meta != diff.new.meta:
            lines.append(_("Changed the name or description of %(table)s") % {"table": table})
        for old in diff.removed:
            if old.pk in plan.trashed_fields:
                lines.append(
                    _("Moved field %(field)s of %(table)s to the trash")
                    % {"field": old.definition.label, "table": table}
                )
            else:
                lines.append(
                    _("Deleted field %(field)s from %(table)s")
                    % {"field": old.definition.label, "table": table}
                )
                blockers.append(_("a deleted field cannot come back"))
        for old, new in diff.renamed:
            lines.append(
                _("Renamed field %(old)s to %(new)s in %(table)s")
                % {"old": old.name, "new": new.name, "table": table}
            )
        for _old, new in diff.altered:
            lines.append(
                _("Changed the options of field %(field)s in %(table)s")
                % {"field": new.definition.label, "table": table}
            )
        for old, new in diff.retyped:
            lines.append(
                _("Changed field %(field)s in %(table)s from %(old)s to %(new)s")
                % {
                    "field": new.definition.label,
                    "table": table,
                    "old": old.definition._meta.verbose_name,
                    "new": new.definition._meta.verbose_name,
                }
            )
        for new in diff.added:
            if new.pk in plan.restored_fields:
                lines.append(
                    _("Restored field %(field)s of %(table)s from the trash")
                    % {"field": new.definition.label, "table": table}
                )
            else:
                lines.append(
                    _("Added %(type)s field %(field)s to %(table)s")
                    % {
                        "type": new.definition._meta.verbose_name,
                        "field": new.definition.label,
                        "table": table,
                    }
                )
        old_pks = diff.old.by_pk()
        kept = [f.pk for f in diff.new.fields if f.pk in old_pks]
        still = set(kept)
        if kept != [f.pk for f in diff.old.fields if f.pk in still]:
            lines.append(_("Reordered the fields of %(table)s") % {"table": table})
    return lines, "; ".join(dict.fromkeys(blockers))


def _serialize(instance: models.Model) -> dict[str, Any]:
    return {f.attname: f.value_from_object(instance) for f in instance._meta.concrete_fields}


def snapshot(before: dict[int, TableState], after: dict[int, TableState]) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    for pk in {*before, *after}:
        table = before.get(pk)
        if table is None:
            tables[str(pk)] = None
            continue
        tables[str(pk)] = {
            "object_name": table.object_name,
            "meta": list(table.meta),
            "fields": [
                _serialize(f.definition) | {"field_type": f.field_type} for f in table.fields
            ],
        }
    # Through JSON now, so that undo reads exactly what is stored.
    return json.loads(DjangoJSONEncoder().encode(tables))


def record(change: SchemaChange, plan: Plan) -> SchemaEvent | None:
    lines, blocker = describe(plan)
    if not lines:
        return None
    undone = getattr(_local, "undoing", None)
    description = "; ".join(lines)
    if undone is not None:
        description = _("Undid: %(what)s") % {"what": undone.description}
        blocker = _("an undo is not undone")
    tables = {**plan.before, **plan.after}
    event = SchemaEvent.objects.create(
        user=getattr(_local, "user", None),
        description=description,
        table_names=", ".join(sorted(_label(t) for t in tables.values()))[:500],
        snapshot=snapshot(plan.before, plan.after),
        backups={str(pk): table for pk, table in plan.backups.items()},
        undoable=not blocker,
        undo_blocker=blocker[:300],
    )
    existing = list(ModelDefinition.all_objects.filter(pk__in=list(tables)))
    event.tables.set(existing)
    if undone is not None:
        SchemaEvent.objects.filter(pk=undone.pk).update(undone_by=event)
    return event


# -- undo -----------------------------------------------------------------------


def undo(event: SchemaEvent) -> SchemaEvent:
    """Undo `event`, the last change of its tables, if that loses nothing."""
    event.refresh_from_db()
    if event.undone_by_id:
        raise SchemaError(_("This change was undone already."))
    if not event.undoable:
        raise SchemaError(_("This change cannot be undone: %(why)s.") % {"why": event.undo_blocker})
    later = SchemaEvent.objects.filter(pk__gt=event.pk, tables__in=event.tables.all())
    if later.exists():
        raise SchemaError(
            _("Later changes depend on this one: undo %(later)s first.")
            % {"later": later.order_by("pk").last().description}
        )
    pks = [int(pk) for pk in event.snapshot]
    anchor = ModelDefinition.all_objects.filter(pk__in=pks).order_by("pk").first()
    if anchor is None:
        raise SchemaError(_("The tables of this change are gone."))
    with undoing(event), anchor.batch(also=pks):
        for pk, table in sorted(event.snapshot.items()):
            _restore_table(int(pk), table)
    event.refresh_from_db()
    return event.undone_by


def _is_empty(model_def: ModelDefinition, field: FieldDefinition | None = None) -> bool:
    model = model_def.model_class()
    if field is None:
        return not model._base_manager.exists()
    if field.is_relation and field._meta.defined_field_class is models.ManyToManyField:
        through = model._meta.get_field(field.name).remote_field.through
        return not through._base_manager.exists()
    return not model._base_manager.filter(**{f"{field.name}__isnull": False}).exists()


def _swap_type(field: FieldDefinition, values: dict[str, Any]) -> FieldDefinition:
    """Give field its type from before: its values come back from the backup."""
    old_type = catalogue.field_type(values["field_type"])
    return field.replace_type_row(
        old_type(
            **{
                f.attname: values[f.attname]
                for f in old_type._meta.concrete_fields
                if f.attname in values
            }
        )
    )


def _restore_table(pk: int, table: dict[str, Any] | None) -> None:
    current = ModelDefinition.all_objects.filter(pk=pk).first()
    if table is None:
        # The change created this table: take it away if nothing was put in.
        if current is not None and not current.trashed_at:
            if not _is_empty(current):
                raise SchemaError(
                    _("%(table)s holds rows now: move it to the trash instead.")
                    % {"table": current}
                )
            current.delete(remove_links=True)
        return
    if current is None:
        raise SchemaError(_("A table of this change was purged."))
    verbose, plural, description = table["meta"]
    ModelDefinition.all_objects.filter(pk=pk).update(
        object_name=table["object_name"],
        verbose_name=verbose,
        verbose_name_plural=plural,
        description=description,
        trashed_at=None,
    )
    wanted = {field["id"]: field for field in table["fields"]}
    for field in FieldDefinition.all_objects.filter(model_def_id=pk):
        field = field.type_cast()
        if field.pk not in wanted:
            if field.trashed_at:
                continue
            # The change added this field: take it away if it holds nothing.
            if not _is_empty(current, field):
                raise SchemaError(
                    _("%(field)s holds values now: move it to the trash instead.")
                    % {"field": field.label}
                )
            field.delete()
            continue
        values = wanted.pop(field.pk)
        if values["field_type"] != field.field_type:
            field = _swap_type(field, values)
        own = {f.attname for f in type(field)._meta.local_concrete_fields} - {
            type(field)._meta.pk.attname
        }
        common = {
            f.attname
            for f in FieldDefinition._meta.concrete_fields
            if f.attname not in {"id", "model_def_id", "field_type"}
        }
        FieldDefinition.all_objects.filter(pk=field.pk).update(
            **{name: values[name] for name in common if name in values}
        )
        if own:
            type(field)._base_manager.filter(pk=field.pk).update(
                **{name: values[name] for name in own if name in values}
            )
    if wanted:
        raise SchemaError(_("A field of this change was purged."))
