"""Forms of the builder: what a person types, before it becomes a definition.

People write labels ("Customer orders", "Date of birth"); the names the
engine needs (an ASCII identifier per table and per field) are derived
from them here, and the engine's own validation has the last word.
"""

from __future__ import annotations

import keyword
import logging
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePath

import tablib
from django import forms
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from builder import formats, importing, inference
from mutant import catalogue
from mutant.models import FieldDefinition, ModelDefinition
from mutant.models.definitions import (
    MAX_FIELD_NAME,
    MAX_OBJECT_NAME,
    RESERVED_FIELD_NAMES,
    validate_identifier,
)

logger = logging.getLogger(__name__)

# -- names from labels ------------------------------------------------------------


def _words(label: str) -> list[str]:
    ascii_text = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    return re.findall(r"[A-Za-z0-9]+", ascii_text)


def _name_is_free(name: str, max_length: int, taken: set[str], reserved: set[str]) -> bool:
    try:
        validate_identifier(name, max_length, "name")
    except ValidationError:
        return False
    return name.lower() not in taken and name not in reserved and name.lower() not in {"id", "pk"}


def _first_free(base: str, joiner: str, max_length: int, taken: set[str], reserved: set[str]):
    base = base[:max_length].rstrip("_")
    candidate, number = base, 1
    while not _name_is_free(candidate, max_length, taken, reserved):
        number += 1
        suffix = f"{joiner}{number}"
        candidate = base[: max_length - len(suffix)].rstrip("_") + suffix
    return candidate


def table_name_from_label(label: str, taken: Iterable[str] = ()) -> str:
    """A free table name (CamelCase identifier) for a label: "Customer orders" -> CustomerOrders."""
    base = "".join(word[:1].upper() + word[1:] for word in _words(label))
    if not base[:1].isalpha():
        base = "Table" + base
    reserved = set(keyword.kwlist) | set(keyword.softkwlist)
    return _first_free(base, "", MAX_OBJECT_NAME, {t.lower() for t in taken}, reserved)


def field_name_from_label(label: str, taken: Iterable[str] = ()) -> str:
    """A free field name (snake_case identifier) for a label: "Date of birth" -> date_of_birth."""
    base = "_".join(word.lower() for word in _words(label))
    if not base[:1].isalpha():
        base = "field_" + base if base else "field"
    return _first_free(base, "_", MAX_FIELD_NAME, {t.lower() for t in taken}, RESERVED_FIELD_NAMES)


def table_title(definition: ModelDefinition) -> str:
    """What a person calls the table: its plural label, else its label, else its name."""
    return definition.verbose_name_plural or definition.verbose_name or definition.object_name


# -- tables -----------------------------------------------------------------------


class TableForm(forms.Form):
    """A table's name as people say it, and what it is for."""

    title = forms.CharField(
        label=_("Table name"),
        max_length=255,
        help_text=_("What the table holds, for example: Customer orders."),
    )
    record_name = forms.CharField(
        label=_("One record is called"),
        max_length=255,
        required=False,
        help_text=_("For example: customer order. Leave empty to use the table name."),
    )
    description = forms.CharField(
        label=_("Description"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Optional: what the table is for, who fills it in."),
    )

    # The engine's names for the errors it raises, as this form's inputs.
    error_fields = {
        "object_name": "title",
        "verbose_name_plural": "title",
        "verbose_name": "record_name",
    }

    def __init__(self, *args, instance: ModelDefinition | None = None, **kwargs):
        self.instance = instance
        if instance is not None:
            kwargs.setdefault(
                "initial",
                {
                    "title": table_title(instance),
                    "record_name": instance.verbose_name if instance.verbose_name_plural else "",
                    "description": instance.description,
                },
            )
        super().__init__(*args, **kwargs)

    def clean_title(self) -> str:
        title = self.cleaned_data["title"].strip()
        others = ModelDefinition.objects.all()
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        for other in others:
            if title.lower() in {table_title(other).lower(), other.object_name.lower()}:
                raise ValidationError(
                    _("A table called %(title)s already exists."), params={"title": title}
                )
        return title

    def apply_to(self, definition: ModelDefinition) -> ModelDefinition:
        """Set the definition's names from the form (a new name if the title changed)."""
        title = self.cleaned_data["title"]
        if not definition.object_name or title != table_title(definition):
            taken = ModelDefinition.objects.exclude(pk=definition.pk).values_list(
                "object_name", flat=True
            )
            derived = table_name_from_label(title, taken)
            if derived.lower() != (definition.object_name or "").lower():
                definition.object_name = derived
        definition.verbose_name_plural = title
        definition.verbose_name = self.cleaned_data["record_name"].strip() or title
        definition.description = self.cleaned_data["description"]
        return definition


class TableDeleteForm(forms.Form):
    """The confirmation; with links from other tables, whether they go too."""

    remove_links = forms.BooleanField(
        label=_("Also delete the fields of other tables that link here"), required=False
    )

    def __init__(self, *args, linked: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not linked:
            del self.fields["remove_links"]


class RestoreForm(forms.Form):
    """A name to restore under; the old one, unless it was taken meanwhile."""

    title = forms.CharField(
        label=_("Restore under the name"),
        max_length=255,
        help_text=_("Change it if a table or field with this name exists now."),
    )

    def __init__(self, *args, others: Iterable[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.others = {name.lower() for name in others}

    def clean_title(self) -> str:
        title = self.cleaned_data["title"].strip()
        if title.lower() in self.others:
            raise ValidationError(
                _("%(title)s is taken now: choose another name."), params={"title": title}
            )
        return title


# -- field types ------------------------------------------------------------------


@dataclass(frozen=True)
class TypeOffer:
    """One field type as the builder offers it: which common settings fit it."""

    field_type: type[FieldDefinition]

    @property
    def key(self) -> str:
        return self.field_type._meta.model_name

    @property
    def title(self) -> str:
        return str(self.field_type._meta.verbose_name)

    @property
    def description(self) -> str:
        return str(self.field_type._meta.defined_field_description or "")

    @property
    def _django_class(self) -> type[models.Field]:
        return self.field_type._meta.defined_field_class

    @property
    def _many(self) -> bool:
        return bool(getattr(self._django_class, "many_to_many", False))

    @property
    def _relation(self) -> bool:
        return self.field_type.is_relation

    @property
    def takes_choices(self) -> bool:
        return not self._relation and not issubclass(
            self._django_class, (models.BooleanField, models.JSONField)
        )

    @property
    def takes_unique(self) -> bool:
        return not self._many and not issubclass(
            self._django_class, (models.BooleanField, models.JSONField)
        )

    @property
    def takes_default(self) -> bool:
        return not self._relation

    @property
    def takes_required(self) -> bool:
        return not self._many

    @property
    def holds_text(self) -> bool:
        return issubclass(self._django_class, (models.CharField, models.TextField))


def type_offers() -> list[tuple[str, list[TypeOffer]]]:
    """The type picker: every registered type, grouped by category."""
    return [
        (str(category), [TypeOffer(t) for t in types])
        for category, types in catalogue.by_category()
    ]


def type_offer(key: str) -> TypeOffer | None:
    try:
        return TypeOffer(catalogue.field_type(key))
    except LookupError:
        return None


# Apps whose models a person has no reason to link to.
INTERNAL_APPS = {"admin", "contenttypes", "sessions", "mutant", "import_export", "tables"}


def static_model_choices() -> list[tuple[str, str]]:
    """The project's own models a link may point at, named the way the admin names them."""
    choices = [("", "---------")]
    for model in apps.get_models():
        opts = model._meta
        if opts.app_label in INTERNAL_APPS or opts.auto_created:
            continue
        name = f"{str(opts.verbose_name_plural).capitalize()} ({opts.app_config.verbose_name})"
        choices.append((opts.label, name))
    return choices


def option_formfields(field_type: type[FieldDefinition]) -> dict[str, forms.Field]:
    """The type's own options (max length, decimal places, link target...) as form fields."""
    fields = {}
    for name in field_type._meta.defined_field_options:
        model_field = field_type._meta.get_field(name)
        formfield = model_field.formfield()
        if formfield is None:
            continue
        if getattr(formfield, "queryset", None) is not None:
            if formfield.queryset.model is ModelDefinition:
                formfield.label_from_instance = table_title
        if name == "to_model":
            # Installed models, chosen from a list instead of typed as "app.Model".
            formfield = forms.TypedChoiceField(
                label=_("Or link to one of the project's own lists"),
                choices=static_model_choices(),
                required=False,
                empty_value="",
            )
        fields[name] = formfield
    return fields


# -- fields -----------------------------------------------------------------------


class FieldForm(forms.Form):
    """A field's label, help text and settings; the type's own options are added per type."""

    label = forms.CharField(
        label=_("Label"),
        max_length=255,
        help_text=_("What people see, for example: Date of birth."),
    )
    required = forms.BooleanField(
        label=_("Required: every record must have a value"), required=False
    )
    unique = forms.BooleanField(
        label=_("Unique: no two records may have the same value"), required=False
    )
    default = forms.CharField(
        label=_("Default value"),
        required=False,
        help_text=_("Filled in for new records, and for the records already in the table."),
    )
    help_text = forms.CharField(
        label=_("Help text"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("A hint shown under the input when people fill in a record."),
    )

    error_fields = {
        "name": "label",
        "verbose_name": "label",
        "null": "required",
        "blank": "required",
    }

    def __init__(
        self,
        *args,
        offer: TypeOffer,
        instance: FieldDefinition | None = None,
        other_labels: Iterable[str] = (),
        **kwargs,
    ):
        self.offer = offer
        self.instance = instance
        self.other_labels = {label.lower() for label in other_labels}
        if instance is not None:
            initial = {
                "label": instance.label,
                "required": not instance.blank,
                "unique": instance.unique,
                "default": instance.default or "",
                "help_text": instance.help_text,
            }
            for name in offer.field_type._meta.defined_field_options:
                initial[name] = getattr(instance, name)
            kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)
        options = option_formfields(offer.field_type)
        # The type's options come right after the label.
        ordered = {"label": self.fields.pop("label"), **options, **self.fields}
        self.fields = ordered
        if not offer.takes_unique:
            del self.fields["unique"]
        if not offer.takes_required:
            del self.fields["required"]
        if not offer.takes_default:
            del self.fields["default"]

    def clean_label(self) -> str:
        label = self.cleaned_data["label"].strip()
        if label.lower() in self.other_labels:
            raise ValidationError(
                _("This table already has a field called %(label)s."), params={"label": label}
            )
        return label

    def definition_values(self) -> dict:
        """The form's values as FieldDefinition attributes (name excluded)."""
        data = self.cleaned_data
        required = data.get("required", False)
        unique = data.get("unique", False)
        default = data.get("default", "")
        values = {
            "verbose_name": data["label"].strip(),
            "help_text": data["help_text"],
            "blank": not required,
            # Text keeps "" for "no value", unless it must be unique: then
            # empty values are NULL so that several records can leave it empty.
            "null": not required and (not self.offer.holds_text or unique),
            "unique": unique,
            "default": default if default != "" else None,
        }
        for name in self.offer.field_type._meta.defined_field_options:
            if name in data:
                values[name] = data[name]
        return values


class ChoiceForm(forms.Form):
    """One option of a choice list: what people see, and what is stored."""

    label = forms.CharField(label=_("Option"), max_length=255, required=False)
    value = forms.CharField(
        label=_("Stored as"),
        max_length=255,
        required=False,
        help_text=_("Leave empty to store the option itself."),
    )


class BaseChoiceFormSet(forms.BaseFormSet):
    def clean(self) -> None:
        if any(self.errors):
            return
        seen = set()
        for form in self.forms:
            if self.can_delete and self._should_delete_form(form):
                continue
            label = form.cleaned_data.get("label", "").strip()
            value = form.cleaned_data.get("value", "").strip()
            if not label and not value:
                continue
            key = (value or label).lower()
            if key in seen:
                raise ValidationError(
                    _("The option %(option)s is in the list twice."), params={"option": label}
                )
            seen.add(key)

    def choices(self) -> list[list[str]]:
        """The options as the engine stores them: [value, label] pairs, in order."""
        pairs = []
        for form in self.forms:
            if self.can_delete and self._should_delete_form(form):
                continue
            label = form.cleaned_data.get("label", "").strip()
            value = form.cleaned_data.get("value", "").strip()
            if label or value:
                pairs.append([value or label, label or value])
        return pairs


ChoiceFormSet = forms.formset_factory(
    ChoiceForm, formset=BaseChoiceFormSet, extra=2, can_delete=True
)


def choice_formset(
    data=None, instance: FieldDefinition | None = None, *, preset: bool = False
) -> BaseChoiceFormSet:
    initial = None
    if instance is not None and instance.choices:
        initial = [{"value": str(value), "label": str(label)} for value, label in instance.choices]
    formset = ChoiceFormSet(data, initial=initial, prefix="choices")
    if preset and data is None and initial is None:
        formset.extra = 3
    return formset


class ChangeTypeForm(forms.Form):
    """The options of the type a field is about to become."""

    def __init__(self, *args, offer: TypeOffer, **kwargs):
        super().__init__(*args, **kwargs)
        self.offer = offer
        self.fields.update(option_formfields(offer.field_type))


# -- records and spreadsheets -------------------------------------------------------


class SpreadsheetForm(forms.Form):
    file = forms.FileField(
        label=_("Spreadsheet"),
        help_text=_(
            "A CSV, Excel (.xlsx), TSV or JSON file; in a spreadsheet, the first row names "
            "the columns."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.xlsx,.tsv,.txt,.json"}),
    )
    title = forms.CharField(
        label=_("Table name"),
        max_length=255,
        required=False,
        help_text=_("Leave empty to name the table after the file."),
    )


def title_from_filename(filename: str) -> str:
    """ "customer_orders.csv" -> "Customer orders"."""
    stem = PurePath(filename).stem
    words = re.sub(r"[_\-.]+", " ", stem).strip()
    return (words[:1].upper() + words[1:]) or str(_("Imported table"))


class UnreadableFile(Exception):
    """A file that is not a spreadsheet the builder can read; str() says why."""


class ImportRefused(Exception):
    """Rows that cannot be stored: nothing was imported. `errors` lists them."""

    def __init__(self, message: str, errors: list[str]):
        super().__init__(message)
        self.errors = errors


def read_spreadsheet(content: bytes, filename: str) -> tablib.Dataset:
    """The file's rows, with its first row as headers (the import's own reader)."""
    try:
        dataset = formats.format_for(None, filename)().create_dataset(content)
    except formats.FileProblem as problem:
        raise UnreadableFile(str(problem)) from None
    except Exception as error:  # a reader failing its own way: one sentence for the person
        logger.warning("Could not read %s", filename, exc_info=True)
        raise UnreadableFile(
            _("This file cannot be read as a CSV, Excel (.xlsx), TSV or JSON file.")
        ) from error
    return dataset


@dataclass
class ProposedColumn:
    """A column of the file (by position) and the field proposed for it."""

    index: int
    header: str
    field_type: type[FieldDefinition]
    options: dict
    examples: list[str]

    def initial(self) -> dict:
        return {
            "column": self.index,
            "header": self.header,
            "include": True,
            "label": self.header,
            "field_type": self.field_type._meta.model_name,
        }


def propose_columns(dataset: tablib.Dataset) -> list[ProposedColumn]:
    """A field per column, with the narrowest type its values parse as."""
    headers = ["" if h is None else str(h).strip() for h in dataset.headers or []]
    rows = importing.rows_of(dataset)

    def has_values(index: int) -> bool:
        return any(str(row[index] or "").strip() for row in rows if index < len(row))

    proposal: list[ProposedColumn] = []
    used: set[int] = set()
    for proposed in inference.infer_fields(dataset):
        # Its column: the one with its label as header, or else (a made-up
        # label) the next unnamed column that has values.
        free = [i for i in range(len(headers)) if i not in used]
        named = [i for i in free if headers[i] == proposed.label]
        index = named[0] if named else next(i for i in free if not headers[i] and has_values(i))
        used.add(index)
        proposal.append(
            ProposedColumn(
                index,
                proposed.label,
                proposed.definition,
                proposed.options,
                proposed.examples,
            )
        )
    return proposal


def fill_table(definition: ModelDefinition, dataset: tablib.Dataset, columns: dict) -> None:
    """Import every row, or none: `columns` maps a column's position to its field's name."""
    kept = sorted(columns)
    rows = importing.rows_of(dataset)
    renamed = tablib.Dataset(headers=[columns[i] for i in kept])
    renamed._data = [
        tablib.core.Row([row[i] if i < len(row) else None for i in kept]) for row in rows
    ]
    # Held like any other use of the table: no schema change midway.
    with definition.subscribe() as model:
        report = importing.TableImport(model, renamed).write()
    if not report.ok:
        problems = report.file_problems + report.problems
        lines = [problem.describe() for problem in problems[:20]]
        if report.problem_count > len(lines):
            lines.append(
                _("... and %(count)d more.") % {"count": report.problem_count - len(lines)}
            )
        raise ImportRefused(
            _("%(count)d values cannot be stored; nothing was imported.")
            % {"count": report.problem_count or len(report.file_problems)},
            lines,
        )


class ColumnForm(forms.Form):
    column = forms.IntegerField(widget=forms.HiddenInput, min_value=0)
    header = forms.CharField(widget=forms.HiddenInput, required=False)
    include = forms.BooleanField(label=_("Keep"), required=False)
    label = forms.CharField(label=_("Field label"), max_length=255, required=False)
    field_type = forms.ChoiceField(
        label=_("Type"), widget=forms.Select(attrs={"class": "form-select"})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["field_type"].choices = [
            (category, [(offer.key, offer.title.capitalize()) for offer in offers])
            for category, offers in type_offers()
        ]

    def clean(self):
        data = super().clean()
        if data.get("include") and not (data.get("label") or "").strip():
            self.add_error("label", _("Give the field a label, or do not keep the column."))
        return data


ColumnFormSet = forms.formset_factory(ColumnForm, extra=0)
