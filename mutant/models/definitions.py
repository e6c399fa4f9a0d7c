"""Definition models: a user table (ModelDefinition) and its columns (FieldDefinition).

Saving or deleting a definition changes the real table in the same
transaction: see `mutant.schema` for how the DDL is derived from the rows.
"""

from __future__ import annotations

import copy
import keyword
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.base import ModelBase
from django.utils import timezone
from django.utils.html import conditional_escape
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from mutant import catalogue
from mutant.errors import SchemaError

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from mutant.errors import ChangeReport
    from mutant.schema import SchemaChange

APP_LABEL = "tables"
"""The app label of every user table (`tables.Penguin`)."""

# ASCII identifiers only: they are column and table names on every backend,
# and a person's own spelling goes in the verbose name.
IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
MAX_FIELD_NAME = 63  # PostgreSQL's identifier limit
MAX_OBJECT_NAME = 50  # leaves room for the "tables_" table prefix

RESERVED_FIELD_NAMES = (
    {"id", "pk", "objects", "DoesNotExist", "MultipleObjectsReturned"}
    | set(keyword.kwlist)
    | set(keyword.softkwlist)
    | set(dir(models.Model))
)


def validate_identifier(value: str, max_length: int, what: str) -> None:
    if not value:
        raise ValidationError(gettext("The %(what)s cannot be empty.") % {"what": what})
    if len(value) > max_length:
        raise ValidationError(
            gettext("The %(what)s is too long: at most %(max)d characters.")
            % {"what": what, "max": max_length}
        )
    if not IDENTIFIER.match(value):
        raise ValidationError(
            gettext(
                "The %(what)s %(value)r may contain only letters A-Z, digits and "
                "underscores, and must start with a letter."
            )
            % {"what": what, "value": value}
        )
    if "__" in value or value.endswith("_"):
        raise ValidationError(
            gettext("The %(what)s %(value)r cannot contain a double underscore or end with one.")
            % {"what": what, "value": value}
        )
    if keyword.iskeyword(value) or keyword.issoftkeyword(value):
        raise ValidationError(gettext("%(value)r is a reserved word.") % {"value": value})


class DefinitionQuerySet(models.QuerySet):
    """Definitions; `objects` shows those in use, `all_objects` the trash too."""

    """Deletes one definition at a time, so that each deletion changes the schema."""

    def delete(self) -> tuple[int, dict[str, int]]:
        count = 0
        for obj in self:
            obj.delete()
            count += 1
        return count, {self.model._meta.label: count}


class ActiveManager(models.Manager.from_queryset(DefinitionQuerySet)):
    """Definitions in use: the trash is left out."""

    def get_queryset(self) -> DefinitionQuerySet:
        return super().get_queryset().filter(trashed_at__isnull=True)


class ModelDefinition(models.Model):
    """One user table."""

    object_name = models.CharField(
        _("name"),
        max_length=MAX_OBJECT_NAME,
        help_text=_("The model's class name, e.g. Penguin."),
    )
    verbose_name = models.CharField(_("verbose name"), max_length=255, blank=True)
    verbose_name_plural = models.CharField(_("verbose name plural"), max_length=255, blank=True)
    description = models.TextField(_("description"), blank=True)
    version = models.PositiveIntegerField(_("version"), default=0, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("changed"), auto_now=True)

    trashed_at = models.DateTimeField(_("moved to the trash"), null=True, blank=True)

    objects = ActiveManager()
    all_objects = DefinitionQuerySet.as_manager()

    class Meta:
        app_label = "mutant"
        base_manager_name = "all_objects"
        ordering = ("object_name",)
        verbose_name = _("table definition")
        verbose_name_plural = _("table definitions")

    def __str__(self) -> str:
        return self.verbose_name or self.object_name

    app_label = APP_LABEL

    @property
    def model_name(self) -> str:
        return self.object_name.lower()

    @property
    def label(self) -> str:
        return f"{APP_LABEL}.{self.object_name}"

    @property
    def db_table(self) -> str:
        return f"{APP_LABEL}_{self.model_name}"

    def clean(self) -> None:
        try:
            validate_identifier(self.object_name, MAX_OBJECT_NAME, gettext("table name"))
        except ValidationError as error:
            raise ValidationError({"object_name": error.messages}) from None
        clash = ModelDefinition.objects.filter(object_name__iexact=self.object_name)
        if self.trashed_at:
            return
        if self.pk:
            clash = clash.exclude(pk=self.pk)
        if clash.exists():
            raise ValidationError(
                {
                    "object_name": gettext("A table named %(name)s already exists.")
                    % {"name": self.object_name}
                }
            )

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.full_clean(validate_unique=False)
        if self.pk and not kwargs.get("force_insert"):
            # The version belongs to the schema change, never to a stale copy.
            kwargs.setdefault(
                "update_fields",
                [
                    f.name
                    for f in self._meta.concrete_fields
                    if not f.primary_key and f.name != "version"
                ],
            )
        with self.batch():
            super().save(*args, **kwargs)

    def delete(self, *args: Any, remove_links: bool = False, **kwargs: Any):
        """Drop the table. Refused while other tables link to it, unless
        `remove_links`, which removes those links in the same operation."""
        links = self.linking_fields()
        if links and not remove_links:
            raise SchemaError(self._linked_message(links))
        with self.batch(also={link.model_def_id for link in links}):
            for link in links:
                link.delete()
            return super().delete(*args, **kwargs)

    def trash(self, *, remove_links: bool = False) -> None:
        """Move the table, with its rows, to the trash; its name becomes free.

        Links from other tables are refused, unless `remove_links`, which
        moves them to the trash too; the table's own links go with it.
        """
        links = self.linking_fields()
        if links and not remove_links:
            raise SchemaError(self._linked_message(links))
        now = timezone.now()
        own = [f for f in self.field_definitions() if f.is_relation]
        targets = {pk for f in own for pk in f.target_pks()}
        with self.batch(also={link.model_def_id for link in links} | targets):
            FieldDefinition.objects.filter(pk__in=[f.pk for f in [*links, *own]]).update(
                trashed_at=now
            )
            ModelDefinition.objects.filter(pk=self.pk).update(trashed_at=now)
        self.trashed_at = now

    def restore(self, *, object_name: str | None = None) -> None:
        """Bring the table back from the trash, with its rows and the links
        that went to the trash with it (where their other end is in use)."""
        if not self.trashed_at:
            raise SchemaError(gettext("%(table)s is not in the trash.") % {"table": self})
        kept = self.object_name, self.trashed_at
        self.object_name = object_name or self.object_name
        self.trashed_at = None
        try:
            self.full_clean(validate_unique=False)
        except ValidationError as error:
            self.object_name, self.trashed_at = kept
            raise ValidationError(
                {
                    "object_name": [
                        *error.message_dict.get("object_name", []),
                        gettext("Choose another name to restore it under."),
                    ]
                }
            ) from None
        # The links trashed in the same step as the table, whose other end
        # is in use (or is this table).
        in_use = set(ModelDefinition.objects.values_list("pk", flat=True)) | {self.pk}
        usable = [
            link
            for link in (
                f.type_cast() for f in FieldDefinition.all_objects.filter(trashed_at=kept[1])
            )
            if link.is_relation
            and self.pk in {link.model_def_id, link.to_definition_id}
            and link.model_def_id in in_use
            and (not link.to_definition_id or link.to_definition_id in in_use)
        ]
        others = {link.model_def_id for link in usable} | {
            pk for link in usable for pk in link.target_pks()
        }
        with self.batch(also=others - {self.pk}):
            ModelDefinition.all_objects.filter(pk=self.pk).update(
                trashed_at=None, object_name=self.object_name
            )
            FieldDefinition.all_objects.filter(pk__in=[link.pk for link in usable]).update(
                trashed_at=None
            )

    def purge(self) -> None:
        """Delete a trashed table and its data for good."""
        if not self.trashed_at:
            raise SchemaError(gettext("Only a table in the trash can be purged."))
        waiting = [
            link
            for kind in catalogue.field_types()
            if kind.is_relation
            for link in kind.all_objects.filter(to_definition_id=self.pk).exclude(
                model_def_id=self.pk
            )
        ]
        if waiting:
            raise SchemaError(
                gettext(
                    "%(table)s cannot be purged: %(links)s in the trash link to it. "
                    "Purge those first."
                )
                % {
                    "table": self,
                    "links": ", ".join(f"{link.model_def}.{link.label}" for link in waiting),
                }
            )
        from mutant import trash

        with self.batch() as change:
            trash.drop_table(change.editor, self.pk)
            for field in FieldDefinition.all_objects.filter(model_def_id=self.pk):
                trash.drop_field(change.editor, field.pk)
            ModelDefinition.all_objects.filter(pk=self.pk).delete()

    def _linked_message(self, links: list[FieldDefinition]) -> str:
        return gettext(
            "%(table)s cannot be deleted: %(links)s link to it. "
            "Remove those links first, or delete them with the table."
        ) % {
            "table": self,
            "links": ", ".join(f"{link.model_def}.{link.label}" for link in links),
        }

    def batch(self, *, dry_run: bool = False, also: Iterable[int] = ()) -> SchemaChange:
        """Group changes to this table into one schema operation.

        Saves and deletions of the table's definitions inside the block are
        applied to the database together when it exits, with one version bump.
        With `dry_run`, nothing changes and the block's `report` tells what
        would happen to the stored values. `also` names other tables (pks)
        the block will link to, so that they are changed together.
        """
        from mutant.schema import SchemaChange

        return SchemaChange.for_definition(self, dry_run=dry_run, also=also)

    def linking_fields(self) -> list[FieldDefinition]:
        """Fields of other tables that link to this one."""
        if not self.pk:
            return []
        found = []
        for kind in catalogue.field_types():
            if kind.is_relation:
                found += (
                    kind.objects.filter(to_definition_id=self.pk)
                    .exclude(model_def_id=self.pk)
                    .select_related("model_def")
                )
        return found

    def field_definitions(self) -> list[FieldDefinition]:
        """This table's fields, each as its own type, in order."""
        if not self.pk:
            return []
        # One query per type present: a join over every type's table would
        # take PostgreSQL's planner longer than the query itself.
        keys = (
            FieldDefinition.objects.filter(model_def_id=self.pk)
            .order_by("position", "pk")
            .values_list("pk", "field_type")
        )
        pks_by_type: dict[str, list[int]] = {}
        order = []
        for pk, key in keys:
            pks_by_type.setdefault(key, []).append(pk)
            order.append(pk)
        typed = {}
        for key, pks in pks_by_type.items():
            kind = catalogue.field_type(key)
            for definition in kind.objects.filter(pk__in=pks).select_related(*kind.related_rows):
                definition.model_def = self
                typed[definition.pk] = definition
        return [typed[pk] for pk in order if pk in typed]

    def model_class(self) -> type[models.Model]:
        """The current model class for this table, built or taken from the cache."""
        from mutant import classes

        return classes.for_definition(self.pk)

    def subscribe(
        self, *, timeout: float | None = None
    ) -> AbstractContextManager[type[models.Model]]:
        """Use this table: `with md.subscribe() as Model:` gives its current
        class and keeps schema changes out until the block ends."""
        from mutant import locks

        return locks.Subscription(self, timeout=timeout)

    def modify(self, *, timeout: float | None = None) -> AbstractContextManager[ModelDefinition]:
        """Hold this table alone: `with md.modify():` groups changes under one lock."""
        from mutant import locks

        return locks.modification(self, timeout=timeout)


class FieldDefinitionBase(ModelBase):
    """Takes the `defined_field_*` declarations off Meta and registers the type."""

    DECLARATIONS = (
        "defined_field_class",
        "defined_field_options",
        "defined_field_category",
        "defined_field_description",
    )

    def __new__(mcs, name, bases, attrs, **kwargs):
        meta = attrs.get("Meta")
        declared = {}
        if meta is not None:
            for key in mcs.DECLARATIONS:
                if key in meta.__dict__:
                    declared[key] = meta.__dict__[key]
                    delattr(meta, key)
        cls = super().__new__(mcs, name, bases, attrs, **kwargs)
        # Each field type declares its own: nothing is inherited.
        for key in mcs.DECLARATIONS:
            setattr(cls._meta, key, declared.get(key))
        if cls._meta.defined_field_options is None:
            cls._meta.defined_field_options = ()
        if cls._meta.defined_field_class is not None and not cls._meta.abstract:
            catalogue.register(cls)
        return cls


class FieldDefinition(models.Model, metaclass=FieldDefinitionBase):
    """One column of a user table; each field type is a subclass."""

    model_def = models.ForeignKey(
        ModelDefinition,
        on_delete=models.CASCADE,
        related_name="field_defs",
        verbose_name=_("table"),
    )
    field_type = models.CharField(_("type"), max_length=100, editable=False)
    name = models.CharField(
        _("name"),
        max_length=MAX_FIELD_NAME,
        help_text=_("The attribute and column name, e.g. species."),
    )
    verbose_name = models.CharField(_("label"), max_length=255, blank=True)
    help_text = models.TextField(_("help text"), blank=True)
    null = models.BooleanField(_("may be empty in the database"), default=False)
    blank = models.BooleanField(_("may be left blank"), default=False)
    default = models.TextField(
        _("default"),
        null=True,
        blank=True,
        help_text=_("Written as text; converted to the field's type."),
    )
    unique = models.BooleanField(_("unique"), default=False)
    db_index = models.BooleanField(_("indexed"), default=False)
    choices = models.JSONField(
        _("choices"),
        default=list,
        blank=True,
        help_text=_("A list of [value, label] pairs."),
    )
    position = models.PositiveIntegerField(_("position"), default=0)

    trashed_at = models.DateTimeField(_("moved to the trash"), null=True, blank=True)

    objects = ActiveManager()
    all_objects = DefinitionQuerySet.as_manager()

    class Meta:
        app_label = "mutant"
        base_manager_name = "all_objects"
        ordering = ("position", "pk")
        verbose_name = _("field definition")
        verbose_name_plural = _("field definitions")
        constraints = [
            models.UniqueConstraint(
                fields=("model_def", "name"),
                condition=models.Q(trashed_at__isnull=True),
                name="mutant_field_name_unique",
            )
        ]

    def __str__(self) -> str:
        return self.verbose_name or self.name

    # -- the field type --------------------------------------------------------

    is_relation = False
    # Rows to fetch with the definition (a link's target).
    related_rows: tuple[str, ...] = ()

    def attnames(self) -> set[str]:
        """The attribute and column names this field takes in its table."""
        return {self.name}

    def target_pks(self) -> set[int]:
        """The user tables this field links to."""
        return set()

    def type_cast(self) -> FieldDefinition:
        """This definition as an instance of its own field type."""
        if self._meta.defined_field_class is not None:
            return self
        return getattr(self, self.field_type)

    @property
    def definition_type(self) -> type[FieldDefinition]:
        return catalogue.field_type(self.field_type) if self.field_type else type(self)

    @property
    def label(self) -> str:
        return self.verbose_name or self.name

    def option_kwargs(self) -> dict[str, Any]:
        """The type-specific options, as keyword arguments of the Django field."""
        return {name: getattr(self, name) for name in self._meta.defined_field_options}

    def plain_field(self) -> models.Field:
        """The Django field with only the type's options: converts values."""
        return self._meta.defined_field_class(**self.option_kwargs())

    def field_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            # Without a label, Django derives one from the name.
            "verbose_name": self.verbose_name or None,
            "help_text": self.help_text,
            "null": self.null,
            "blank": self.blank,
            "unique": self.unique,
            "db_index": self.db_index,
        }
        if self.choices:
            kwargs["choices"] = [
                (self.parse_value(value), str(label)) for value, label in self.choices
            ]
        if self.default is not None:
            kwargs["default"] = self.parse_value(self.default)
        kwargs.update(self.option_kwargs())
        return kwargs

    def construct_field(self) -> models.Field:
        """A new, unbound Django field built from this definition."""
        kwargs = self.field_kwargs()
        # Django prints help texts as HTML (forms, the admin); a person wrote this one.
        kwargs["help_text"] = conditional_escape(kwargs.get("help_text", ""))
        return self._meta.defined_field_class(**kwargs)

    def frozen(self) -> FieldDefinition:
        """A copy that builds its Django fields once, for converting many values.

        parse_value and clean_stored_value build a field per call, which is
        most of their cost. Do not change the copy's options afterwards.
        """
        frozen = copy.copy(self)
        plain = frozen.plain_field()
        frozen.plain_field = lambda: plain
        full = frozen.construct_field()
        frozen.construct_field = lambda: full
        return frozen

    # -- values ----------------------------------------------------------------

    @property
    def holds_text(self) -> bool:
        return issubclass(self._meta.defined_field_class, (models.CharField, models.TextField))

    def parse_value(self, text: Any) -> Any:
        """Convert a value written by a person (default, choice, cell) to Python."""
        if isinstance(text, str):
            if not self.holds_text:
                text = text.strip()
                if text == "":
                    return None
        return self.plain_field().to_python(text)

    def value_to_text(self, value: Any) -> str:
        """The text form of a stored value, which parse_value reads back."""
        return str(value)

    def convert_value(self, value: Any, source: FieldDefinition) -> Any:
        """Convert a value stored by `source` to this type without losing it.

        Raises ValidationError when the value cannot be converted, would lose
        information, or is not valid for this field's options.
        """
        if value is not None:
            if self.holds_text or source.holds_text:
                value = self.parse_value(source.value_to_text(value))
            else:
                value = self._convert_losslessly(value, source)
        if value is None and not self.null and self.default is not None:
            value = self.parse_value(self.default)
        return self.clean_stored_value(value)

    def clean_stored_value(self, value: Any) -> Any:
        """Check a value for storage in this field, as the database and the
        field's validators see it: an empty value is fine where null is."""
        field = self.construct_field()
        value = field.to_python(value)
        if value is None:
            if not field.null:
                raise ValidationError(field.error_messages["null"], code="null")
            return None
        if value not in field.empty_values:
            # "Blank" is for forms: the database keeps an empty text as it is.
            field.validate(value, None)
        field.run_validators(value)
        return value

    def _convert_losslessly(self, value: Any, source: FieldDefinition) -> Any:
        try:
            converted = self.parse_value(value)
            if source.plain_field().to_python(converted) == value:
                return converted
        except (ValidationError, TypeError, ValueError, ArithmeticError):
            pass
        # Through text, which either parses exactly or says why it does not.
        converted = self.parse_value(source.value_to_text(value))
        try:
            same = source.plain_field().to_python(converted) == value
        except (ValidationError, TypeError, ValueError, ArithmeticError):
            same = False
        if not same:
            raise ValidationError(
                gettext("%(value)s would change to %(converted)s.")
                % {"value": value, "converted": converted}
            )
        return converted

    # -- validation and saving -----------------------------------------------

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        try:
            validate_identifier(self.name, MAX_FIELD_NAME, gettext("field name"))
            if self.name in RESERVED_FIELD_NAMES or self.name.lower() in {"id", "pk"}:
                raise ValidationError(
                    gettext("%(name)r is reserved; choose another name.") % {"name": self.name}
                )
        except ValidationError as error:
            errors["name"] = error.messages
        if "name" not in errors and "_via_" in self.name:
            errors["name"] = [gettext("Names containing _via_ are kept for links.")]
        if "name" not in errors and self.model_def_id:
            mine = {name.lower() for name in self.attnames()}
            for sibling in self.model_def.field_definitions():
                if sibling.pk != self.pk and mine & {n.lower() for n in sibling.attnames()}:
                    errors["name"] = [
                        gettext("This table already has a field named %(name)s.")
                        % {"name": sibling.name}
                    ]
                    break
        self.clean_values(errors)
        if errors:
            raise ValidationError(errors)

    def clean_values(self, errors: dict[str, list[str]]) -> None:
        """Check the default and the choices against the field's own type."""
        if not isinstance(self.choices, list) or not all(
            isinstance(c, (list, tuple)) and len(c) == 2 for c in self.choices
        ):
            errors["choices"] = [gettext("Choices must be a list of [value, label] pairs.")]
            return
        try:
            values = [self.parse_value(value) for value, _label in self.choices]
            if len(set(map(repr, values))) != len(values):
                raise ValidationError(gettext("Two choices have the same value."))
        except ValidationError as error:
            errors["choices"] = error.messages
            return
        except (TypeError, ValueError, ArithmeticError):
            errors["choices"] = [gettext("A choice's value is not valid for this type.")]
            return
        if self.default is not None:
            try:
                self.clean_stored_value(self.parse_value(self.default))
            except ValidationError as error:
                errors["default"] = error.messages
            except (TypeError, ValueError, ArithmeticError):
                errors["default"] = [gettext("The default is not valid for this type.")]

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._meta.defined_field_class is not None:
            self.field_type = self._meta.model_name
        if self._state.adding and not self.position:
            last = (
                FieldDefinition.objects.filter(model_def_id=self.model_def_id)
                .order_by("-position")
                .values_list("position", flat=True)
                .first()
            )
            self.position = (last or 0) + 1
        self.full_clean(validate_constraints=False)
        with self.model_def.batch(also=self.target_pks() | self._stored_target_pks()):
            super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        with self.model_def.batch(also=self._stored_target_pks()):
            return super().delete(*args, **kwargs)

    def _stored_target_pks(self) -> set[int]:
        if not self.pk or not self.is_relation:
            return set()
        stored = type(self)._base_manager.filter(pk=self.pk).first()
        return stored.target_pks() if stored else set()

    def trash(self) -> None:
        """Move this field, with its values, to the trash; its name becomes free."""
        now = timezone.now()
        with self.model_def.batch(also=self.target_pks()):
            FieldDefinition.objects.filter(pk=self.pk).update(trashed_at=now)
        self.trashed_at = now

    def restore(self, *, name: str | None = None) -> None:
        """Bring this field back with its values; give `name` if its own is taken."""
        if not self.trashed_at:
            raise SchemaError(gettext("%(field)s is not in the trash.") % {"field": self})
        if self.model_def.trashed_at:
            raise SchemaError(gettext("Restore its table first."))
        for pk in self.target_pks():
            if not ModelDefinition.objects.filter(pk=pk).exists():
                raise SchemaError(gettext("The table it links to is in the trash."))
        kept = self.name, self.trashed_at
        self.name = name or self.name
        self.trashed_at = None
        try:
            self.full_clean(validate_constraints=False)
        except ValidationError as error:
            self.name, self.trashed_at = kept
            messages = error.message_dict
            if "name" in messages:
                messages["name"].append(gettext("Choose another name to restore it under."))
            raise ValidationError(messages) from None
        with self.model_def.batch(also=self.target_pks()):
            FieldDefinition.all_objects.filter(pk=self.pk).update(trashed_at=None, name=self.name)

    def purge(self) -> None:
        """Delete a trashed field and its values for good."""
        if not self.trashed_at:
            raise SchemaError(gettext("Only a field in the trash can be purged."))
        from mutant import trash

        with self.model_def.batch() as change:
            trash.drop_field(change.editor, self.pk)
            FieldDefinition.all_objects.filter(pk=self.pk).delete()

    def change_type(
        self,
        new_type: type[FieldDefinition],
        *,
        dry_run: bool = False,
        **options: Any,
    ) -> ChangeReport:
        """Turn this field into another type, converting every stored value.

        Refused with DataLossError (nothing changed) if any value cannot be
        converted; with `dry_run`, only reports what would happen.
        """
        common = {
            f.attname: getattr(self, f.attname) for f in FieldDefinition._meta.concrete_fields
        }
        common.update({k: v for k, v in options.items() if k in common})
        new = new_type(**common)
        for key, value in options.items():
            if key not in common:
                setattr(new, key, value)
        new.field_type = new_type._meta.model_name
        setattr(new, new._meta.pk.attname, self.pk)
        new.full_clean(validate_unique=False, validate_constraints=False)
        with self.model_def.batch(dry_run=dry_run) as change:
            FieldDefinition._base_manager.filter(pk=self.pk).update(
                **{k: v for k, v in common.items() if k not in {"id", "field_type"}}
            )
            self.replace_type_row(new)
        return change.report

    def replace_type_row(self, new: FieldDefinition) -> FieldDefinition:
        """Swap this field's own-type row for `new`'s (same id, another type).

        The common row keeps its id, so the schema change sees the same field
        with another type. Call it inside the table's batch.
        """
        self.definition_type._base_manager.filter(pk=self.pk)._raw_delete(self._state.db)
        FieldDefinition._base_manager.filter(pk=self.pk).update(
            field_type=type(new)._meta.model_name
        )
        setattr(new, type(new)._meta.pk.attname, self.pk)
        new.save_base(raw=True, force_insert=True)
        return new
