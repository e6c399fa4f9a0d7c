"""Model classes built from definitions, cached per process under the version.

A class is never trusted beyond the version it was built for: every lookup
reads the definition's version from the database (one indexed query, none
inside a subscription to the table, which knows it) and rebuilds when another
process has changed the table since.
"""

from __future__ import annotations

import logging
import threading

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections, models

from mutant import graph, locks
from mutant.models.definitions import APP_LABEL, ModelDefinition

logger = logging.getLogger(__name__)

_classes: dict[int, type[models.Model]] = {}
# Builds and evictions touch the global app registry: one at a time.
_lock = threading.RLock()


def for_definition(pk: int, version: int | None = None) -> type[models.Model]:
    """The class of table `pk`, fresh for `version` (read from the database if None)."""
    if version is None:
        version = current_version(pk)
        if version is None:
            forget(pk)
            raise ModelDefinition.DoesNotExist(f"No table definition with id {pk}.")
    cached = _classes.get(pk)
    if cached is not None and cached._definition_version == version:
        return cached
    with _lock:
        cached = _classes.get(pk)
        if cached is not None and cached._definition_version == version:
            return cached
        _build_group(pk)
        return _classes[pk]


def is_current(model: type[models.Model], using: str = DEFAULT_DB_ALIAS) -> bool:
    """True if `model` is its table's current class, known without asking.

    So it is while this thread subscribes to a table of its linked group: a
    change to any of them locks them all, and classes are built per group.
    """
    if _classes.get(model._definition_id) is not model:
        return False
    return any(
        locks.held_version(member, using=using) == _classes[member]._definition_version
        for member in model._definition_group
        if member in _classes
    )


def current_version(pk: int, using: str = DEFAULT_DB_ALIAS) -> int | None:
    """The table's version as committed (or as this transaction sees it)."""
    # Known without asking while this thread subscribes to the table.
    version = locks.held_version(pk, using=using)
    if version is not None:
        return version
    # Plain SQL: this runs before every use of a table, and the ORM's query
    # compilation would cost more than the query itself.
    connection = connections[using]
    meta = ModelDefinition._meta
    qn = connection.ops.quote_name
    sql = (
        f"SELECT {qn(meta.get_field('version').column)} FROM {qn(meta.db_table)} "  # noqa: S608
        f"WHERE {qn(meta.pk.column)} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [pk])
        row = cursor.fetchone()
    return row[0] if row else None


def _build_group(pk: int) -> None:
    """Build table `pk` and every table linked to it, together.

    Each class holds the classes it links to, and reverse accessors live on
    the targets, so a group is only consistent when built as one. Links name
    their targets by label; Django resolves them as each class registers.
    """
    group = set(graph.linked_group([pk]))
    # With the classes built beside them before (the group may have split).
    stale = group | {member for member, c in _classes.items() if c._definition_group & group}
    for member in stale:
        forget(member)
    definitions = list(ModelDefinition.objects.filter(pk__in=group).order_by("pk"))
    for definition in definitions:
        _build(definition, frozenset(group))
    _drop_pending()


def _build(definition: ModelDefinition, group: frozenset[int]) -> type[models.Model]:
    fields = definition.field_definitions()
    _evict(definition.model_name)
    meta = type(
        "Meta",
        (),
        {
            "app_label": APP_LABEL,
            "db_table": definition.db_table,
            "managed": False,
            "verbose_name": definition.verbose_name or definition.object_name,
            "verbose_name_plural": definition.verbose_name_plural
            or f"{definition.verbose_name or definition.object_name}s",
        },
    )
    attrs = {
        "__module__": "mutant.tables.models",
        "__str__": _row_str,
        "Meta": meta,
        "_definition_id": definition.pk,
        "_definition_version": definition.version,
        "_definition_group": group,
    }
    for field_def in fields:
        attrs[field_def.name] = field_def.construct_field()
    model = type(definition.object_name, (models.Model,), attrs)
    _classes[definition.pk] = model
    logger.debug("Built %s at version %s", model._meta.label, definition.version)
    return model


def _drop_pending() -> None:
    """Forget links still waiting for a user table that was not built.

    A link names its target by label; if the target vanished meanwhile (another
    process deleted it), Django would keep the waiting operation forever.
    """
    with apps._lock:
        for key in list(apps._pending_operations):
            if key[0] == APP_LABEL and key[1] not in apps.all_models[APP_LABEL]:
                del apps._pending_operations[key]


def _row_str(row: models.Model) -> str:
    for field in row._meta.concrete_fields:
        if not field.primary_key and isinstance(field, models.CharField):
            value = getattr(row, field.attname)
            if value:
                return str(value)
    return f"{row._meta.verbose_name} #{row.pk}"


def forget(pk: int) -> None:
    """Drop this process's class for table `pk` (after a change or a deletion)."""
    with _lock:
        model = _classes.pop(pk, None)
        if model is not None:
            _evict(model._meta.model_name)


def forget_name(model_name: str) -> None:
    """Drop whatever class is registered under `model_name` (a table gone elsewhere)."""
    with _lock:
        for pk, model in list(_classes.items()):
            if model._meta.model_name == model_name.lower():
                del _classes[pk]
        _evict(model_name.lower())


def _evict(model_name: str) -> None:
    with apps._lock:
        registered = apps.all_models[APP_LABEL]
        model = registered.pop(model_name, None)
        if model is None:
            return
        # Auto-created many-to-many "through" models go with their model.
        for field in model._meta.local_many_to_many:
            through = field.remote_field.through
            if not isinstance(through, str) and through._meta.auto_created:
                registered.pop(through._meta.model_name, None)
        apps.clear_cache()


def cached_class(pk: int) -> type[models.Model] | None:
    """This process's class for `pk`, without asking the database (may be stale)."""
    return _classes.get(pk)


def forget_all() -> None:
    """Drop every class this process built (tests, and a process that restarts its work)."""
    with _lock:
        for pk in list(_classes):
            forget(pk)
