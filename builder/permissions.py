"""Each user table's ContentType and its add/change/delete/view permissions.

They follow the table: created with it, renamed with it (so that the rights
already granted stay granted), removed with it. The receivers run inside the
schema change's transaction, so a failed change leaves them as they were.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import DEFAULT_DB_ALIAS

from mutant.models import ModelDefinition
from mutant.models.definitions import APP_LABEL

logger = logging.getLogger(__name__)

ACTIONS = ("add", "change", "delete", "view")


def _using(definition: ModelDefinition | None) -> str:
    return (definition._state.db if definition is not None else None) or DEFAULT_DB_ALIAS


def _verbose_name(definition: ModelDefinition) -> str:
    return definition.verbose_name or definition.object_name


def sync_table(definition: ModelDefinition) -> ContentType:
    """Make the table's content type and permissions exist, named after it."""
    using = _using(definition)
    content_type, _created = ContentType.objects.using(using).get_or_create(
        app_label=APP_LABEL, model=definition.model_name
    )
    existing = {
        p.codename: p for p in Permission.objects.using(using).filter(content_type=content_type)
    }
    for action in ACTIONS:
        codename = f"{action}_{definition.model_name}"
        # Django's own wording, so the permission lists read alike.
        name = f"Can {action} {_verbose_name(definition)}"[:255]
        permission = existing.get(codename)
        if permission is None:
            Permission.objects.using(using).create(
                content_type=content_type, codename=codename, name=name
            )
        elif permission.name != name:
            permission.name = name
            permission.save(using=using, update_fields=["name"])
    return content_type


def trashed_name(pk: int) -> str:
    """The content type's name while its table is in the trash."""
    return f"trashed_{pk}"


def _move(content_type: ContentType, old: str, new: str, using: str) -> None:
    """Rename a table's content type and its permissions' codenames."""
    content_type.model = new
    content_type.save(using=using, update_fields=["model"])
    for permission in Permission.objects.using(using).filter(content_type=content_type):
        action, _sep, rest = permission.codename.partition("_")
        if action in ACTIONS and rest == old:
            permission.codename = f"{action}_{new}"
            permission.save(using=using, update_fields=["codename"])


def on_table_created(sender: Any, definition: ModelDefinition, **kwargs: Any) -> None:
    using = _using(definition)
    types = ContentType.objects.using(using)
    trashed = types.filter(app_label=APP_LABEL, model=trashed_name(definition.pk)).first()
    if trashed is not None:
        # Back from the trash: the rights granted before come back with it.
        types.filter(app_label=APP_LABEL, model=definition.model_name).delete()
        _move(trashed, trashed_name(definition.pk), definition.model_name, using)
        ContentType.objects.clear_cache()
    sync_table(definition)


def on_table_renamed(
    sender: Any, definition: ModelDefinition, old_object_name: str, **kwargs: Any
) -> None:
    using = _using(definition)
    old, new = old_object_name.lower(), definition.model_name
    types = ContentType.objects.using(using)
    if old != new:
        # A content type left behind by an earlier table of the new name
        # would block the move; it grants nothing that exists any more.
        types.filter(app_label=APP_LABEL, model=new).delete()
    content_type = types.filter(app_label=APP_LABEL, model=old).first()
    if content_type is not None and old != new:
        _move(content_type, old, new, using)
    ContentType.objects.clear_cache()
    sync_table(definition)


def on_table_changed(sender: Any, definition: ModelDefinition, **kwargs: Any) -> None:
    # The verbose name may have changed; a table made before these receivers
    # existed gets its permissions on its next change.
    sync_table(definition)


def on_table_deleted(sender: Any, pk: int, object_name: str, **kwargs: Any) -> None:
    name = object_name.lower()
    content_type = ContentType.objects.filter(app_label=APP_LABEL, model=name).first()
    if content_type is not None:
        if ModelDefinition.all_objects.filter(pk=pk, trashed_at__isnull=False).exists():
            # In the trash, its name is free for a new table, which must not
            # inherit these rights; a restore takes them back (see above).
            _move(content_type, name, trashed_name(pk), content_type._state.db)
        else:
            # Deleting the content type deletes its permissions (and the grants).
            content_type.delete()
    ContentType.objects.clear_cache()
    from builder import versioned

    versioned.forget(pk)


def on_definition_deleted(sender: Any, instance: ModelDefinition, **kwargs: Any) -> None:
    """A table purged from the trash takes its rights with it."""
    ContentType.objects.filter(app_label=APP_LABEL, model=trashed_name(instance.pk)).delete()


def sync_all(using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """Give every table its content type and permissions (after `migrate`)."""
    for definition in ModelDefinition.objects.using(using):
        sync_table(definition)


def forget_cached_content_type(model_name: str) -> None:
    """Drop this process's cached content type of a table.

    Another process may have deleted and recreated the table (a new content
    type id) or renamed it; the cache would otherwise keep the old id.
    """
    for cache in ContentType.objects._cache.values():
        stale = cache.pop((APP_LABEL, model_name), None)
        if stale is not None:
            cache.pop(stale.id, None)
