"""The catalogue of field types: every FieldDefinition subclass registers here.

Adding a field type is declaring one subclass with `Meta.defined_field_class`;
the builder's type picker, the admin and imports all read this catalogue.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from mutant.models import FieldDefinition

# The categories a person sees, in the order the type picker shows them.
TEXT = _("Text")
NUMBER = _("Number")
DATE_AND_TIME = _("Date and time")
YES_NO = _("Yes/no")
WEB = _("Web")
LINKS = _("Links")
OTHER = _("Other")
CATEGORIES = (TEXT, NUMBER, DATE_AND_TIME, YES_NO, WEB, LINKS, OTHER)

_types: OrderedDict[str, type[FieldDefinition]] = OrderedDict()


def register(definition: type[FieldDefinition]) -> None:
    _types[definition._meta.model_name] = definition


def field_types() -> list[type[FieldDefinition]]:
    """Every field type, in declaration order."""
    return list(_types.values())


def field_type(key: str) -> type[FieldDefinition]:
    """The field type stored under `key` (a definition's `field_type`)."""
    try:
        return _types[key]
    except KeyError:
        raise LookupError(f"Unknown field type {key!r}") from None


def by_category() -> list[tuple[str, list[type[FieldDefinition]]]]:
    """Field types grouped by category, for a type picker."""
    groups = []
    for category in CATEGORIES:
        members = [t for t in _types.values() if t._meta.defined_field_category == category]
        if members:
            groups.append((category, members))
    return groups
