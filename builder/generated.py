"""Forms and admins computed from a table's definitions, cached per (pk, version).

Like a hand-written ModelAdmin, a generated one is declarations
(`list_display`, `search_fields`, `list_filter`, ...), here derived from the
table's fields. A new version of the table (any schema change) gets new
declarations on its next use; nothing is registered anywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django import forms
from django.db import models

from builder.versioned import PerVersion

if TYPE_CHECKING:
    from builder.admin import TableAdmin
    from mutant.models import ModelDefinition

LIST_COLUMNS = 6
"""How many of a table's first fields its change list shows."""

TEXT_FIELDS = (models.CharField, models.TextField)
DATE_FIELDS = (models.DateField,)  # DateTimeField is a DateField
LINK_FIELDS = (models.ForeignKey, models.OneToOneField, models.ManyToManyField)

_forms: PerVersion[type[forms.ModelForm]] = PerVersion()
_admins: PerVersion[type[TableAdmin]] = PerVersion()


class TableForm(forms.ModelForm):
    """The base of every generated form: one place for what all of them share."""


def ordered_fields(model: type[models.Model]) -> list[models.Field]:
    """The table's own fields (links included, the id left out), in the table's order.

    The class factory creates the fields in the definitions' order, so their
    creation counters keep it across plain and many-to-many fields alike.
    """
    fields = [f for f in model._meta.fields if not f.primary_key] + list(model._meta.many_to_many)
    return sorted(fields, key=lambda f: f.creation_counter)


def _current(model: type[models.Model] | None, definition: ModelDefinition):
    model = model or definition.model_class()
    return model, (definition.pk, model._definition_version)


def model_form_for(
    definition: ModelDefinition, *, model: type[models.Model] | None = None
) -> type[forms.ModelForm]:
    """The ModelForm for a table's rows: its fields in order, with their help
    text and the validation their options declare.

    `model` is the table's class when the caller already has it (the request's
    subscription); otherwise the current class is looked up.
    """
    model, key = _current(model, definition)

    def build() -> type[forms.ModelForm]:
        names = [f.name for f in ordered_fields(model) if f.editable]
        return forms.modelform_factory(model, form=TableForm, fields=names)

    return _forms.get(*key, build)


def model_admin_for(
    definition: ModelDefinition, *, model: type[models.Model] | None = None
) -> type[TableAdmin]:
    """The ModelAdmin class for a table, declared from its fields."""
    from builder.admin import TableAdmin
    from builder.resources import resource_for

    model, key = _current(model, definition)

    def build() -> type[TableAdmin]:
        fields = ordered_fields(model)
        text = [f.name for f in fields if isinstance(f, TEXT_FIELDS) and not f.choices]
        dates = [f for f in fields if isinstance(f, DATE_FIELDS)]
        filters = [
            f.name
            for f in fields
            if isinstance(f, (models.BooleanField, *DATE_FIELDS, *LINK_FIELDS)) or f.choices
        ]
        shown = [f.name for f in fields if not f.many_to_many][:LIST_COLUMNS]
        attrs = {
            "__module__": __name__,
            "form": model_form_for(definition, model=model),
            "fields": [f.name for f in fields],
            "readonly_fields": [f.name for f in fields if not f.editable],
            "list_display": shown or ["__str__"],
            # Every table can be searched, so that links to it can autocomplete.
            "search_fields": text or ["id__exact"],
            "list_filter": filters,
            "date_hierarchy": dates[0].name if dates else None,
            "link_fields": [f.name for f in fields if isinstance(f, LINK_FIELDS)],
            "resource_classes": [resource_for(model)],
        }
        return type(f"{model.__name__}Admin", (TableAdmin,), attrs)

    return _admins.get(*key, build)
