"""Links between tables: ForeignKey, OneToOne and ManyToMany field types.

A link points at another user table (`to_definition`), at the same table, or
at an installed static model (`to_model`, e.g. "auth.User"). Links between
user tables get reverse accessors named `<table>_via_<field>` so they never
clash; links to static models get hidden ones, so the project's own models
never grow attributes.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from mutant.catalogue import LINKS
from mutant.models.definitions import APP_LABEL, FieldDefinition, ModelDefinition

ON_DELETE = {
    "CASCADE": models.CASCADE,
    "PROTECT": models.PROTECT,
    "RESTRICT": models.RESTRICT,
    "SET_NULL": models.SET_NULL,
    "SET_DEFAULT": models.SET_DEFAULT,
}
ON_DELETE_CHOICES = (
    ("CASCADE", _("delete the linking rows too")),
    ("PROTECT", _("refuse to delete a linked row")),
    ("RESTRICT", _("refuse, unless deleted along the way")),
    ("SET_NULL", _("empty the link")),
    ("SET_DEFAULT", _("set the link to its default")),
)


class RelationDefinition(FieldDefinition):
    """What every kind of link has: a target, a user table or a static model."""

    to_definition = models.ForeignKey(
        ModelDefinition,
        # Its own links may go with a table; other tables' links keep it.
        on_delete=models.RESTRICT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("linked table"),
    )
    to_model = models.CharField(
        _("linked model"),
        max_length=200,
        blank=True,
        help_text=_('An installed model, as "app_label.ModelName", e.g. auth.User.'),
    )

    class Meta:
        abstract = True

    is_relation = True
    related_rows = ("to_definition",)

    def target_label(self) -> str:
        if self.to_definition_id:
            return f"{APP_LABEL}.{self.to_definition.object_name}"
        return self.to_model

    def related_name(self) -> str:
        source = self.model_def.model_name
        if self.to_definition_id:
            return f"{source}_via_{self.name}"
        # Hidden, but unique: two hidden links must not clash either.
        return f"{source}_via_{self.name}+"

    def relation_kwargs(self) -> dict[str, Any]:
        return {"to": self.target_label(), "related_name": self.related_name()}

    def target_pks(self) -> set[int]:
        return {self.to_definition_id} if self.to_definition_id else set()

    def attnames(self) -> set[str]:
        return {self.name, f"{self.name}_id"}

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if bool(self.to_definition_id) == bool(self.to_model):
            errors["to_definition"] = [
                gettext("Choose the table this field links to (one table, or one model).")
            ]
        elif self.to_model:
            try:
                model = apps.get_model(self.to_model)
            except (LookupError, ValueError):
                errors["to_model"] = [
                    gettext("There is no model %(label)s.") % {"label": self.to_model}
                ]
            else:
                if model._meta.app_label == APP_LABEL:
                    errors["to_model"] = [gettext("Link to a user table by choosing its table.")]
                else:
                    self.to_model = model._meta.label
        if errors:
            raise ValidationError(errors)
        super().clean()

    def clean_values(self, errors: dict[str, list[str]]) -> None:
        if self.choices:
            errors["choices"] = [gettext("A link cannot have a list of choices.")]

    def plain_field(self) -> models.Field:
        # Values of a link are primary keys of the target.
        return models.BigIntegerField()


class LinkToOneDefinition(RelationDefinition):
    on_delete = models.CharField(
        _("when the linked row is deleted"),
        max_length=12,
        choices=ON_DELETE_CHOICES,
        default="PROTECT",
    )

    class Meta:
        abstract = True

    def field_kwargs(self) -> dict[str, Any]:
        kwargs = super().field_kwargs()
        kwargs.update(self.relation_kwargs())
        kwargs["on_delete"] = ON_DELETE[self.on_delete]
        kwargs.pop("choices", None)
        return kwargs

    def option_kwargs(self) -> dict[str, Any]:
        return {}

    def clean(self) -> None:
        if self.on_delete == "SET_NULL" and not self.null:
            raise ValidationError(
                {"on_delete": gettext("To empty the link, the field must allow empty values.")}
            )
        if self.on_delete == "SET_DEFAULT" and self.default is None:
            raise ValidationError(
                {"on_delete": gettext("To set the link to its default, give a default.")}
            )
        super().clean()


class ForeignKeyDefinition(LinkToOneDefinition):
    class Meta:
        app_label = "mutant"
        verbose_name = _("link to one row")
        defined_field_class = models.ForeignKey
        defined_field_options = ("to_definition", "to_model", "on_delete")
        defined_field_category = LINKS
        defined_field_description = _(
            "Each row links to one row of another table (many orders, one customer)."
        )


class OneToOneFieldDefinition(LinkToOneDefinition):
    class Meta:
        app_label = "mutant"
        verbose_name = _("one-to-one link")
        defined_field_class = models.OneToOneField
        defined_field_options = ("to_definition", "to_model", "on_delete")
        defined_field_category = LINKS
        defined_field_description = _(
            "Each row links to one row of another table, which no other row links to."
        )


class ManyToManyFieldDefinition(RelationDefinition):
    class Meta:
        app_label = "mutant"
        verbose_name = _("links to many rows")
        defined_field_class = models.ManyToManyField
        defined_field_options = ("to_definition", "to_model")
        defined_field_category = LINKS
        defined_field_description = _(
            "Each row links to any number of rows of another table (products in orders)."
        )

    def field_kwargs(self) -> dict[str, Any]:
        kwargs = {
            # Without a label, Django derives one from the name.
            "verbose_name": self.verbose_name or None,
            "help_text": self.help_text,
            "blank": True,
        }
        kwargs.update(self.relation_kwargs())
        return kwargs

    def option_kwargs(self) -> dict[str, Any]:
        return {}

    def attnames(self) -> set[str]:
        return {self.name}

    def clean(self) -> None:
        if self.unique or self.db_index or self.default is not None:
            raise ValidationError(
                gettext("Links to many rows cannot be unique, indexed or have a default.")
            )
        self.null = False
        super().clean()
